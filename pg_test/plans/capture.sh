#!/usr/bin/env bash
# Capture the plan corpus on one PostgreSQL major: a throwaway cluster (no capstone
# needed), the schema of setup.sql, every query of queries.txt as EXPLAIN text (psql's
# aligned output, header and footer included, as users paste it) and JSON, a few as YAML
# and XML, a 1,200-node UNION ALL, and auto_explain log excerpts in text and JSON.
#   pg_test/plans/capture.sh MAJOR PORT      -> pg_test/plans/pgMAJOR/
set -euo pipefail
V=$1; PORT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../../scripts/env.sh"
BIN=$(pg_bindir_for "$V")
DIR=/tmp/capstone-plan-corpus-$V
OUT=$HERE/pg$V
(cd / && sudo -u postgres "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop) >/dev/null 2>&1 || true
rm -rf "$DIR"; install -d -o postgres -g postgres "$DIR"
(cd / && sudo -u postgres "$BIN/initdb" -D "$DIR/data" --locale=C.UTF-8 -A trust -U postgres) >/dev/null
(cd / && sudo -u postgres env $(pg_server_env_for "$V") "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
  -o "-p $PORT -k $DIR -c listen_addresses='' -c log_line_prefix='%m [%p] ' -c max_parallel_workers=8 -c track_io_timing=on -c jit=off" start) >/dev/null
trap '(cd / && sudo -u postgres "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop) >/dev/null 2>&1 || true' EXIT
PSQL=("$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres)
"${PSQL[@]}" -f "$HERE/setup.sql" >/dev/null
rm -rf "$OUT"; mkdir -p "$OUT"

explain() { # NAME OPTIONS SETTINGS QUERY FILE [psql flags]
  local opts=$2 settings=$3 query=$4 file=$5; shift 5
  printf 'SET search_path = corpus;\nBEGIN;\n%s\nEXPLAIN (%s) %s;\nROLLBACK;\n' "$settings" "$opts" "$query" |
    "${PSQL[@]}" "$@" -f - > "$file"
}

while IFS='|' read -r name settings query; do
  case "$name" in ''|'#'*) continue ;; esac
  opts="ANALYZE, BUFFERS, SETTINGS"
  [ "$name" = verbose_join ] && opts="$opts, VERBOSE"
  explain "$name" "$opts" "$settings" "$query" "$OUT/$name.txt"
  explain "$name" "$opts, FORMAT JSON" "$settings" "$query" "$OUT/$name.json" -At
done < "$HERE/queries.txt"

for name in seq_filter cte initplan_subplan; do
  line=$(grep "^$name|" "$HERE/queries.txt")
  settings=$(echo "$line" | cut -d'|' -f2); query=$(echo "$line" | cut -d'|' -f3)
  explain "$name" "ANALYZE, BUFFERS, FORMAT YAML" "$settings" "$query" "$OUT/$name.yaml" -At
  explain "$name" "ANALYZE, BUFFERS, FORMAT XML" "$settings" "$query" "$OUT/$name.xml" -At
done

# 600 branches of (Aggregate -> Index Only Scan) under one Append: 1,202 nodes
union=$(seq 1 600 | sed 's/.*/SELECT count(*) FROM customers WHERE id = &/' | paste -sd'\n' | sed ':a;N;$!ba;s/\n/ UNION ALL /g')
explain large_union "ANALYZE, BUFFERS" "" "$union" "$OUT/large_union.txt"
explain large_union "ANALYZE, BUFFERS, FORMAT JSON" "" "$union" "$OUT/large_union.json" -At

# auto_explain, as the server log has it (log_line_prefix '%m [%p] ')
for fmt in text json; do
  : > "$DIR/server.log.mark"
  start=$(wc -l < "$DIR/server.log")
  "${PSQL[@]}" >/dev/null <<SQL
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_format = $fmt;
SET search_path = corpus;
SELECT count(*) FROM orders WHERE status = 'paid' AND amount > 500;
SELECT c.region, count(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id < 1000 GROUP BY c.region;
SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE amount = 999) ORDER BY id LIMIT 5;
SQL
  sleep 0.5
  tail -n +"$((start + 1))" "$DIR/server.log" > "$OUT/auto_explain_$fmt.log"
done
echo "captured $(ls "$OUT" | wc -l) files in $OUT"
