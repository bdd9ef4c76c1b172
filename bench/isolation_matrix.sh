#!/usr/bin/env bash
# Determinism of the isolation matrix: capstone.isolation_matrix() RUNS times (default 100)
# in one database where capstone is installed; every anomaly x level cell must give the same
# outcome each time. Prints one line per cell (runs, distinct outcomes, the outcome) and the
# time per matrix; exits non-zero if any cell had more than one outcome.
#   bench/isolation_matrix.sh [runs]   (CAPSTONE_LAB_DB picks the database, default capstone_lab)
set -euo pipefail
. "$(dirname "$0")/common.sh"
RUNS=${1:-100}
DB=${CAPSTONE_LAB_DB:-capstone_lab}
t0=$(now_s)
"${PSQL[@]}" -d "$DB" -v runs="$RUNS" <<'SQL'
CREATE TEMP TABLE cells (anomaly text, level text, cell text);
SELECT set_config('capstone_bench.runs', :'runs', false) IS NOT NULL AS set \gset
DO $$
BEGIN
  FOR i IN 1..current_setting('capstone_bench.runs')::int LOOP
    INSERT INTO cells SELECT m.anomaly, l.level, l.cell
      FROM capstone.isolation_matrix() m,
           LATERAL (VALUES ('read committed', m.read_committed), ('repeatable read', m.repeatable_read),
                           ('serializable', m.serializable)) l(level, cell);
  END LOOP;
END $$;
SELECT anomaly, level, count(*) AS runs, count(DISTINCT cell) AS outcomes, min(cell) AS outcome
  FROM cells GROUP BY anomaly, level ORDER BY min(ctid), level;
SELECT CASE WHEN max(n) = 1 THEN 'deterministic' ELSE 'NOT deterministic' END AS matrix,
       count(*) AS cells
  FROM (SELECT count(DISTINCT cell) AS n FROM cells GROUP BY anomaly, level) c \gset
\echo :matrix: :cells cells
SELECT :'matrix' = 'deterministic' AS ok \gset
\if :ok
\else
  \echo a cell gave more than one outcome
  SELECT 1 / 0 AS fail;
\endif
SQL
t1=$(now_s)
echo "$RUNS matrices in $(elapsed "$t0" "$t1") s ($(awk -v a="$t0" -v b="$t1" -v n="$RUNS" 'BEGIN { printf "%.3f", (b - a) / n }') s each)"
