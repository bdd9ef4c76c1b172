#!/usr/bin/env bash
# plan_import + estimate_gap on plans capstone did not run: a 10,000-node plan in EXPLAIN
# text and in JSON (goal: under 100 ms each), and the same at 1,000 nodes to show the cost
# grows linearly (time at 10x nodes / time at 1x <= 12). The plans are real EXPLAIN ANALYZE
# output of a UNION ALL of (Aggregate -> Function Scan) branches, captured once; each
# measurement is server-side (clock_timestamp) in one session, the four cases alternate,
# RUNS rounds after a warm-up; median/min/max per case.
#   bench/plan_import.sh [runs]   (default 7; any database where capstone can be created:
#   CAPSTONE_BENCH_DB, default postgres; connection as in bench/common.sh)
set -euo pipefail
. "$(dirname "$0")/common.sh"
RUNS=${1:-7}
DB=${CAPSTONE_BENCH_DB:-postgres}
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
"${PSQL[@]}" -d "$DB" -At -v runs="$RUNS" > "$OUT" <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS capstone;
CREATE TEMP TABLE bench_plan (size int, format text, src text);
CREATE FUNCTION pg_temp.explain_text(q text, opts text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; o text := '';
BEGIN
  FOR r IN EXECUTE 'EXPLAIN (' || opts || ') ' || q LOOP o := o || r || E'\n'; END LOOP;
  RETURN o;
END $$;
-- branches x 2 nodes + the Append: 1,001 and 10,001 nodes
CREATE FUNCTION pg_temp.union_of(branches int) RETURNS text LANGUAGE sql AS $$
  SELECT string_agg(format('SELECT count(*) FROM generate_series(1, %s)', 1 + g % 3), ' UNION ALL ')
    FROM generate_series(1, branches) g $$;
INSERT INTO bench_plan
SELECT s, f, pg_temp.explain_text(pg_temp.union_of(s / 2), CASE f WHEN 'json' THEN 'ANALYZE, BUFFERS, FORMAT JSON' ELSE 'ANALYZE, BUFFERS' END)
  FROM (VALUES (1000), (10000)) v(s), (VALUES ('text'), ('json')) w(f);
CREATE FUNCTION pg_temp.once(s text) RETURNS TABLE (ms float8, nodes int) LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; id bigint;
BEGIN
  t0 := clock_timestamp();
  SELECT evidence_id, p.nodes INTO id, nodes FROM capstone.plan_import(s) p;
  PERFORM count(*) FROM capstone.estimate_gap(id);
  ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
  RETURN NEXT;
END $$;
-- warm-up, then alternate the four cases
SELECT count(*) FROM bench_plan b, pg_temp.once(b.src) \g /dev/null
SELECT b.format || ' ' || b.size || ' ' || o.nodes || ' ' || round(o.ms::numeric, 3)
  FROM generate_series(1, :runs) r, LATERAL (SELECT * FROM bench_plan ORDER BY format, size) b, LATERAL pg_temp.once(b.src) o
 ORDER BY r, b.format, b.size;
DELETE FROM capstone.evidence WHERE payload ? 'imported_source' AND label IS NULL AND captured_by = current_user
   AND (payload->'imported'->>'nodes')::int IN (1001, 10001);
SQL
echo "plan_import + estimate_gap, $RUNS rounds, PG $("${PSQL[@]}" -d "$DB" -Atc 'SHOW server_version')"
printf '%-6s %7s %7s %10s %10s %10s\n' format nodes runs median_ms min_ms max_ms
declare -A MED
for f in text json; do
  for s in 1000 10000; do
    nodes=$(awk -v f="$f" -v s="$s" '$1 == f && $2 == s { print $3; exit }' "$OUT")
    read -r med min max < <(awk -v f="$f" -v s="$s" '$1 == f && $2 == s { print $4 }' "$OUT" | spread)
    MED[$f$s]=$med
    printf '%-6s %7s %7s %10s %10s %10s\n' "$f" "$nodes" "$RUNS" "$med" "$min" "$max"
  done
done
rc=0
for f in text json; do
  r=$(ratio "${MED[${f}10000]}" "${MED[${f}1000]}")
  ok_time=$(awk -v m="${MED[${f}10000]}" 'BEGIN { print (m < 100) ? "pass" : "FAIL" }')
  ok_lin=$(awk -v r="$r" 'BEGIN { print (r <= 12) ? "pass" : "FAIL" }')
  echo "$f: 10,000 nodes in ${MED[${f}10000]} ms (goal < 100 ms: $ok_time); 10x nodes / 1x = $r (goal <= 12: $ok_lin)"
  [ "$ok_time" = pass ] && [ "$ok_lin" = pass ] || rc=1
done
exit $rc
