#!/usr/bin/env bash
# The forced bad plan, measured: a query over the three functionally dependent state
# columns of shop.orders, which the planner multiplies as if independent (an underestimate
# of about 1,000x at lab scale 1), so it picks nested loops; the fix is extended statistics
# (CREATE STATISTICS ... (dependencies, mcv)) and ANALYZE. The two states alternate
# (A = without the statistics, B = with them, ANALYZE after each switch), REPS times each;
# the verdict compares the median speedup with the goal written here before the run, and
# shows the join methods and the orders scan's q-error (capstone.estimate_gap) in each state.
#   CAPSTONE_PG=17 bench/bad_plan.sh [reps]   (default 3; a throwaway cluster of its own;
#   lab scale CAPSTONE_BADPLAN_SCALE, default 1; run it under the build lock)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/common.sh"
REPS=${1:-3}
GOAL=10
SCALE=${CAPSTONE_BADPLAN_SCALE:-1}
BPORT=${CAPSTONE_BADPLAN_PORT:-29217}
DIR=$(server_dir_for "$ROOT")/pgtest/bench-badplan-$MAJOR
stop_test_cluster "$MAJOR" "$DIR" >/dev/null 2>&1 || true
start_test_cluster "$MAJOR" "$DIR" "$BPORT"
trap 'stop_test_cluster "$MAJOR" "$DIR" >/dev/null 2>&1 || true' EXIT
Q=("$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$BPORT" -U postgres)
"${Q[@]}" -d postgres -c "CREATE DATABASE bench_badplan"
Q+=(-d bench_badplan)
"${Q[@]}" -c "SET client_min_messages = warning" -c "CREATE EXTENSION capstone" \
  -c "SELECT count(*) > 0 AS lab FROM capstone.lab_install(scale => $SCALE, seed => 42)" -c "VACUUM ANALYZE" >/dev/null

OUT=$(mktemp)
trap 'rm -f "$OUT"; stop_test_cluster "$MAJOR" "$DIR" >/dev/null 2>&1 || true' EXIT
"${Q[@]}" -At -F '|' -v reps="$REPS" > "$OUT" <<'SQL'
SET client_min_messages = warning;
-- the order lines of every product that appears in a refunded order
CREATE TEMP TABLE q (sql text);
INSERT INTO q VALUES ('SELECT l2.tenant_id, l2.product_id, sum(l2.quantity) FROM shop.order_lines l2
 WHERE (l2.tenant_id, l2.product_id) IN (
   SELECT l.tenant_id, l.product_id FROM shop.orders o
     JOIN shop.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.order_id
    WHERE o.status = ''refunded'' AND o.fulfillment_status = ''returned'' AND o.payment_status = ''refunded'')
 GROUP BY 1, 2');
CREATE FUNCTION pg_temp.state(fixed bool) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  DROP STATISTICS IF EXISTS shop.orders_state_stats;
  IF fixed THEN
    CREATE STATISTICS shop.orders_state_stats (dependencies, mcv)
      ON status, fulfillment_status, payment_status FROM shop.orders;
  END IF;
  ANALYZE shop.orders;
END $$;
CREATE FUNCTION pg_temp.run(sql text, OUT ms float8, OUT joins text) LANGUAGE plpgsql AS $$
DECLARE j jsonb;
BEGIN
  EXECUTE 'EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) ' || sql INTO j;
  ms := (j->0->>'Execution Time')::float8;
  SELECT string_agg(t #>> '{}', ', ') INTO joins
    FROM jsonb_path_query(j, 'strict $.**."Node Type"') t
   WHERE t #>> '{}' LIKE '%Join%' OR t #>> '{}' = 'Nested Loop';
END $$;
-- warm both states once (caches, statistics), then alternate
SELECT pg_temp.state(false); SELECT 'warm', ms FROM pg_temp.run((SELECT sql FROM q));
SELECT pg_temp.state(true); SELECT 'warm', ms FROM pg_temp.run((SELECT sql FROM q));
CREATE TEMP TABLE runs (state text, ms float8, joins text);
SELECT set_config('bench.reps', :'reps', false);
DO $$
DECLARE i int; r record;
BEGIN
  FOR i IN 1..current_setting('bench.reps')::int LOOP
    PERFORM pg_temp.state(false);
    SELECT * INTO r FROM pg_temp.run((SELECT sql FROM q));
    INSERT INTO runs VALUES ('A', r.ms, r.joins);
    PERFORM pg_temp.state(true);
    SELECT * INTO r FROM pg_temp.run((SELECT sql FROM q));
    INSERT INTO runs VALUES ('B', r.ms, r.joins);
  END LOOP;
END $$;
SELECT state, ms, joins FROM runs ORDER BY state, ms;
-- the q-error of the orders scan in each state, from capstone's own estimate_gap
SELECT pg_temp.state(false);
SELECT 'qerror A', round(max(q_error)::numeric, 1), max(est_rows)::bigint, max(actual_rows)::bigint
  FROM capstone.estimate_gap((SELECT sql FROM q)) WHERE node LIKE '%on shop.orders o%';
SELECT pg_temp.state(true);
SELECT 'qerror B', round(max(q_error)::numeric, 1), max(est_rows)::bigint, max(actual_rows)::bigint
  FROM capstone.estimate_gap((SELECT sql FROM q)) WHERE node LIKE '%on shop.orders o%';
SQL
grep -qE '^(A|B)\|' "$OUT" || { echo "bad_plan: no measurements" >&2; cat "$OUT" >&2; exit 1; }
read -r a_med a_min a_max < <(awk -F'|' '$1 == "A" { print $2 }' "$OUT" | spread)
read -r b_med b_min b_max < <(awk -F'|' '$1 == "B" { print $2 }' "$OUT" | spread)
a_joins=$(awk -F'|' '$1 == "A" { print $3; exit }' "$OUT")
b_joins=$(awk -F'|' '$1 == "B" { print $3; exit }' "$OUT")
speedup=$(ratio "$a_med" "$b_med")
echo "forced bad plan, PostgreSQL $MAJOR, lab scale $SCALE, $REPS alternating runs per state (EXPLAIN ANALYZE, TIMING OFF)"
printf '%-28s %10s %10s %10s  %s\n' state median_ms min_ms max_ms joins
printf '%-28s %10s %10s %10s  %s\n' "A: no extended statistics" "$a_med" "$a_min" "$a_max" "$a_joins"
printf '%-28s %10s %10s %10s  %s\n' "B: CREATE STATISTICS" "$b_med" "$b_min" "$b_max" "$b_joins"
awk -F'|' '$1 ~ /^qerror/ { printf "%s: orders scan q-error %s (estimated %s rows, actual %s)\n", $1, $2, $3, $4 }' "$OUT"
flip=$([ "$a_joins" != "$b_joins" ] && echo yes || echo no)
verdict=$(awk -v s="$speedup" -v g="$GOAL" -v f="$flip" 'BEGIN { print (s + 0 >= g && f == "yes") ? "met" : "missed" }')
echo "speedup A/B = $speedup (goal >= $GOAL with the join method flip; flip: $flip): $verdict"
bench_row "forced bad plan: before ÷ after CREATE STATISTICS (scale $SCALE)" "$a_med ms [$a_min–$a_max] $a_joins" \
  "$b_med ms [$b_min–$b_max] $b_joins" "$speedup" ">= $GOAL with a join flip" "$verdict"
