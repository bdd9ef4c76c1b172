#!/usr/bin/env bash
# capstone.lint_migration side by side with squawk (pip install squawk-cli) on a corpus of
# migration statements run against real tables, and the time to lint a 1,000-statement
# migration. What is right is measured, not typed: each case is executed (in a rolled-back
# transaction, or for real and undone when it cannot run in one) and the catalog says what
# it did: a new relfilenode (rewrite), a sequential scan counted in the transaction's
# statistics (scan), the strongest lock it held on the tables, an error, a name that no
# longer resolves, a table left empty.
#   CAPSTONE_PG=16 bench/lint.sh        (against the cluster of bench/common.sh's HOST/PORT)
# Prints one row per case, the recall and false-positive counts, the timings.
set -euo pipefail
. "$(dirname "$0")/common.sh"
DB=bench_lint
CASES="$ROOT/bench/lint/cases.txt"
BIG_ROWS=${CAPSTONE_LINT_BIG_ROWS:-300000}
THRESHOLD=$((10 << 20))
REPEAT=${CAPSTONE_LINT_REPEAT:-7}
command -v squawk >/dev/null || { echo "squawk not found: pip install squawk-cli" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
P=("${PSQL[@]}" -d "$DB")

"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
"${P[@]}" <<SQL
SET client_min_messages = warning;
CREATE EXTENSION capstone;
CREATE TABLE lint_ref (id int PRIMARY KEY);
CREATE DOMAIN lint_pos AS int CHECK (VALUE > 0);
CREATE DOMAIN lint_any AS int;
INSERT INTO lint_ref SELECT g FROM generate_series(1, 1000) g;
CREATE FUNCTION mk(t text, n int) RETURNS void LANGUAGE plpgsql AS \$f\$
BEGIN
  EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, c int, d int, e int, v varchar(10), n numeric(10,2),
                  ts timestamp, name text, ref_id int, status char(3), u int)', t);
  EXECUTE format('INSERT INTO %I SELECT g, g, g, CASE WHEN g %% 2 = 0 THEN g END, left(md5(g::text), 10), g / 7.0,
                  now(), md5(g::text), 1 + g %% 1000, ''abc'', g FROM generate_series(1, %s) g', t, n);
  EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (c IS NOT NULL)', t, t || '_c_nn');
  EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (d > 0) NOT VALID', t, t || '_d_pos');
  EXECUTE format('CREATE INDEX %I ON %I (v)', t || '_v_idx', t);
  EXECUTE format('CREATE UNIQUE INDEX %I ON %I (u)', t || '_u_key', t);
END \$f\$;
SELECT mk('lint_big', $BIG_ROWS), mk('lint_small', 1000), mk('lint_empty', 0);
VACUUM ANALYZE;
CREATE TABLE cases (id int PRIMARY KEY, tbl text, mode text, sql text);
CREATE TABLE truth (id int PRIMARY KEY, failed text, new_file bool, scanned bool, lock int, removes_name bool, emptied bool, heap_bytes bigint);
CREATE TABLE squawk (id int PRIMARY KEY, rules text);
SQL

# expand the templates
id=0
: > "$WORK/cases.tsv"
while IFS=$'\t' read -r mode tmpl; do
  case "$mode" in ''|'#'*) continue ;; esac
  for t in lint_big lint_small lint_empty; do
    id=$((id + 1))
    sql=${tmpl//\{t\}/$t}; sql=${sql//\{r\}/lint_ref}
    printf '%s\t%s\t%s\t%s\n' "$id" "$t" "$mode" "$sql" >> "$WORK/cases.tsv"
  done
done < "$CASES"
"${P[@]}" -c "\\copy cases FROM '$WORK/cases.tsv'"
echo "corpus: $id cases from $(grep -vc '^#' "$CASES") templates on lint_big, lint_small, lint_empty"

RANK="CASE mode WHEN 'AccessShareLock' THEN 1 WHEN 'RowShareLock' THEN 2 WHEN 'RowExclusiveLock' THEN 3
  WHEN 'ShareUpdateExclusiveLock' THEN 4 WHEN 'ShareLock' THEN 5 WHEN 'ShareRowExclusiveLock' THEN 6
  WHEN 'ExclusiveLock' THEN 7 WHEN 'AccessExclusiveLock' THEN 8 END"

# truth: run every case and read what it did from the catalog
measure_tx() { # id table sql -> one TSV line of truth
  local id=$1 t=$2 sql=$3
  "${PSQL[@]}" -d "$DB" -v ON_ERROR_STOP=0 -tA -F $'\t' 2>/dev/null <<SQL | grep "^$id	" | head -1 || true
BEGIN;
SELECT c.oid AS oid, c.relfilenode AS rfn, pg_stat_get_xact_numscans(c.oid) AS scans0, pg_relation_size(c.oid) AS heap,
       (SELECT array_agg(attname::text) FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped)::text AS cols0
  FROM pg_class c WHERE c.oid = '$t'::regclass \gset
$sql;
\if :ERROR
\set err :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT $id, :'err', false, false, 0, false, false, :heap;
\else
SELECT $id, '',
       coalesce((SELECT relfilenode FROM pg_class WHERE oid = :oid), 0) <> :rfn,
       pg_stat_get_xact_numscans(:oid) > :scans0,
       coalesce((SELECT max($RANK) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation' AND granted
                    AND relation IN (:oid, 'lint_ref'::regclass)), 0),
       to_regclass('$t') IS NULL OR NOT ((:'cols0')::text[] <@ coalesce((SELECT array_agg(attname::text) FROM pg_attribute
                    WHERE attrelid = :oid AND attnum > 0 AND NOT attisdropped), '{}')),
       -- rows removed: a new, empty file under the same name (TRUNCATE)
       to_regclass('$t') IS NOT NULL AND :heap > 0
         AND coalesce((SELECT relfilenode FROM pg_class WHERE oid = :oid), 0) <> :rfn AND pg_relation_size(to_regclass('$t')) = 0,
       :heap;
\endif
ROLLBACK;
SQL
}

measure_notx() { # id table sql: run for real, sample its locks from a second session, undo
  local id=$1 t=$2 sql=$3 rfn heap lock new bg
  read -r rfn heap < <("${P[@]}" -tA -F ' ' -c "SELECT relfilenode, pg_relation_size(oid) FROM pg_class WHERE oid = '$t'::regclass")
  PGAPPNAME=lint_case "${P[@]}" -c "$sql" >/dev/null 2>"$WORK/notx.err" &
  bg=$!
  lock=$("${P[@]}" -tA <<SQL
DO \$\$ BEGIN PERFORM set_config('lint.max', '0', false); END \$\$;
CREATE TEMP TABLE s (r int);
DO \$\$
DECLARE seen bool := false; r int;
BEGIN
  FOR i IN 1..20000 LOOP
    PERFORM pg_stat_clear_snapshot();
    SELECT max($RANK) INTO r FROM pg_locks l JOIN pg_stat_activity a USING (pid)
     WHERE a.application_name = 'lint_case' AND l.granted AND l.locktype = 'relation'
       AND l.relation = '$t'::regclass;
    IF EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'lint_case') THEN seen := true;
    ELSIF seen OR i > 2000 THEN EXIT; END IF;
    INSERT INTO s VALUES (r);
    PERFORM pg_sleep(0.001);
  END LOOP;
END \$\$;
SELECT coalesce(max(r), 0) FROM s;
SQL
)
  local failed=""
  wait "$bg" || failed=$(grep -o 'ERROR: .*' "$WORK/notx.err" | head -1 | cut -c1-40)
  new=$("${P[@]}" -tA -c "SELECT coalesce((SELECT relfilenode FROM pg_class WHERE oid = to_regclass('$t')), 0) <> $rfn")
  printf '%s\t%s\t%s\t\t%s\tf\tf\t%s\n' "$id" "$failed" "$new" "${lock:-0}" "$heap"
  "${P[@]}" -q -c "DROP INDEX IF EXISTS ${t}_d_idx, ${t}_d_uidx" -c "CREATE INDEX IF NOT EXISTS ${t}_v_idx ON $t (v)" >/dev/null
}

while IFS=$'\t' read -r id t mode sql; do
  if [ "$mode" = tx ]; then measure_tx "$id" "$t" "$sql"; else measure_notx "$id" "$t" "$sql"; fi
done < "$WORK/cases.tsv" > "$WORK/truth.tsv"
"${P[@]}" -c "\\copy truth FROM '$WORK/truth.tsv' WITH (NULL '')"

# squawk on each case, as a file of its own
while IFS=$'\t' read -r id t mode sql; do
  printf '%s;\n' "$sql" > "$WORK/case.sql"
  rules=$(squawk --pg-version="$MAJOR.0" --reporter json "$WORK/case.sql" 2>/dev/null \
    | python3 -c 'import json,sys
try: d = json.load(sys.stdin)
except Exception: d = []
print(",".join(sorted({x.get("rule_name", "") for x in d})))' || true)
  printf '%s\t%s\n' "$id" "$rules"
done < "$WORK/cases.tsv" > "$WORK/squawk.tsv"
"${P[@]}" -c "\\copy squawk FROM '$WORK/squawk.tsv' WITH (NULL '\\N')"

# the side-by-side table, recall and false positives, all computed here
"${P[@]}" <<SQL
\pset footer off
-- rules about hygiene or the session, not about what the statement does to the table:
-- both tools' are left out of the hazard comparison
CREATE TABLE meta (rule text PRIMARY KEY);
INSERT INTO meta VALUES ('require-lock-timeout'), ('require-statement-timeout'), ('prefer-robust-stmts'),
  ('prefer-bigint-over-int'), ('prefer-bigint-over-smallint'), ('prefer-identity'), ('prefer-text-field'),
  ('prefer-timestamptz'), ('ban-char-field'), ('prefer-jsonb'), ('require-table-schema'), ('identifier-too-long'),
  ('transaction-nesting'), ('ban-uncommitted-transaction'), ('index-too-many-columns');
CREATE TABLE verdict AS
SELECT c.id, c.tbl, c.sql,
       coalesce((SELECT string_agg(r, ',' ORDER BY r) FROM unnest(string_to_array(s.rules, ',')) r
                  WHERE r <> '' AND r NOT IN (SELECT rule FROM meta)), '') AS squawk,
       coalesce((SELECT string_agg(DISTINCT l.rule, ',') FROM capstone.lint_migration(c.sql) l
                  WHERE l.severity IN ('error', 'high', 'medium') AND l.rule NOT IN (SELECT rule FROM meta)), '') AS capstone,
       CASE WHEN t.failed <> '' THEN 'fails (' || t.failed || ')'
            WHEN t.removes_name THEN 'removes a name'
            WHEN t.emptied THEN 'removes the rows'
            WHEN (t.new_file OR t.scanned) AND t.lock >= 5 AND t.heap_bytes >= $THRESHOLD
              THEN CASE WHEN t.new_file THEN 'rewrite' ELSE 'scan' END || ' under a write-blocking lock, ' || pg_size_pretty(t.heap_bytes)
            WHEN (t.new_file OR t.scanned) AND t.lock >= 5 THEN 'harmless: ' || CASE WHEN t.new_file THEN 'rewrite' ELSE 'scan' END || ' of ' || pg_size_pretty(t.heap_bytes)
            WHEN t.new_file OR t.scanned THEN 'harmless: writes go on'
            ELSE 'harmless: catalog only' END AS truth
  FROM cases c JOIN truth t USING (id) JOIN squawk s USING (id);
ALTER TABLE verdict ADD hazard bool;
UPDATE verdict SET hazard = truth NOT LIKE 'harmless%';
SELECT id, left(sql, 62) AS statement, squawk, capstone, truth,
       CASE WHEN (squawk <> '') = hazard THEN 'right' ELSE 'wrong' END AS squawk_is,
       CASE WHEN (capstone <> '') = hazard THEN 'right' ELSE 'wrong' END AS capstone_is
  FROM verdict ORDER BY id;
SELECT count(*) AS cases,
       count(*) FILTER (WHERE hazard) AS true_hazards,
       count(*) FILTER (WHERE hazard AND squawk <> '') AS squawk_true_hazards,
       count(*) FILTER (WHERE hazard AND squawk <> '' AND capstone <> '') AS of_them_capstone_finds,
       round(count(*) FILTER (WHERE hazard AND squawk <> '' AND capstone <> '')::numeric
             / nullif(count(*) FILTER (WHERE hazard AND squawk <> ''), 0), 3) AS recall_vs_squawk,
       count(*) FILTER (WHERE hazard AND capstone <> '') AS capstone_true_hazards,
       count(*) FILTER (WHERE NOT hazard AND squawk <> '') AS squawk_false_positives,
       count(*) FILTER (WHERE NOT hazard AND capstone <> '') AS capstone_false_positives,
       count(*) FILTER (WHERE hazard AND squawk = '') AS squawk_missed,
       count(*) FILTER (WHERE hazard AND capstone = '') AS capstone_missed
  FROM verdict \gset v_
SELECT :v_cases AS cases, :v_true_hazards AS true_hazards, :v_squawk_true_hazards AS squawk_true_hazards,
       :v_of_them_capstone_finds AS capstone_finds_of_those, :v_recall_vs_squawk AS recall_vs_squawk,
       :v_capstone_true_hazards AS capstone_true_hazards, :v_squawk_missed AS squawk_missed, :v_capstone_missed AS capstone_missed,
       :v_squawk_false_positives AS squawk_false_positives, :v_capstone_false_positives AS capstone_false_positives,
       CASE WHEN :v_recall_vs_squawk = 1 AND :v_capstone_false_positives < :v_squawk_false_positives
            THEN 'PASS: recall 1.0 against squawk''s true hazards, fewer false positives'
            ELSE 'FAIL: recall ' || :v_recall_vs_squawk || ', false positives ' || :v_capstone_false_positives || ' vs ' || :v_squawk_false_positives END AS verdict;
SQL

# the duration estimate against a real rewrite of lint_big
"${P[@]}" -tA <<'SQL'
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
BEGIN;
ALTER TABLE lint_big ADD COLUMN x float8 DEFAULT random();
SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
ROLLBACK;
SELECT format('rewrite of lint_big (%s with indexes): measured %s ms = %s MB/s; estimated at the default 100 MB/s: %s ms',
              pg_size_pretty(pg_total_relation_size('lint_big')), round(((:t1 - :t0) * 1000)::numeric, 1),
              round((pg_total_relation_size('lint_big') / 1048576.0 / (:t1 - :t0))::numeric, 1),
              (SELECT round(estimated_ms::numeric, 1) FROM capstone.lint_migration('ALTER TABLE lint_big ADD COLUMN x float8 DEFAULT random()')
                WHERE rule = 'adding-field-with-default'));
SQL

# 1,000 statements: the corpus's statements on lint_big, cycled; capstone and squawk alternate
"${P[@]}" -tA -c "SELECT string_agg(sql, E';\n' ORDER BY g) || ';' FROM generate_series(0, 999) g
  JOIN (SELECT row_number() OVER (ORDER BY id) - 1 AS k, sql FROM cases WHERE tbl = 'lint_big') c
    ON c.k = g % (SELECT count(*) FROM cases WHERE tbl = 'lint_big')" > "$WORK/m1000.sql"
n=$(grep -c ';$' "$WORK/m1000.sql")
: > "$WORK/cap.ms"; : > "$WORK/sq.ms"
for _ in $(seq 1 "$REPEAT"); do
  "${P[@]}" -tA -v m="$(cat "$WORK/m1000.sql")" >> "$WORK/cap.ms" <<'SQL'
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(*) AS findings FROM capstone.lint_migration(:'m') \gset
SELECT round(((extract(epoch FROM clock_timestamp()) - :t0) * 1000)::numeric, 3);
SQL
  t0=$(now_s); squawk --pg-version="$MAJOR.0" "$WORK/m1000.sql" >/dev/null 2>&1 || true; t1=$(now_s)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) * 1000 }' >> "$WORK/sq.ms"
done
read -r cm cmin cmax < <(spread < "$WORK/cap.ms")
read -r sm smin smax < <(spread < "$WORK/sq.ms")
echo "lint of a $n-statement migration, $REPEAT runs each, alternating (ms median min max):"
echo "  capstone.lint_migration: $cm $cmin $cmax (in the server)"
echo "  squawk $(squawk --version | cut -d' ' -f2):           $sm $smin $smax (process start included)"
awk -v m="$cm" 'BEGIN { if (m < 1000) print "  verdict: PASS (median " m " ms < 1000 ms)"; else print "  verdict: FAIL (median " m " ms >= 1000 ms)" }'
