#!/usr/bin/env bash
# Lab generator throughput against pgbench -i, on the same cluster in the same run,
# then pgbench TPS of every lab workload script.
#   bench/lab_load.sh [scale]        (default 1; pgbench -i uses a matching row volume)
# Prints rows/s of both loaders (CAPSTONE_BENCH_REPS alternating loads each, default 3) and
# their ratio (goal >= 0.5), then TPS + p99 per script (skipped with CAPSTONE_LAB_LOAD_WORKLOAD=0).
set -euo pipefail
. "$(dirname "$0")/common.sh"
SCALE=${1:-1}
REPS=${CAPSTONE_BENCH_REPS:-3}
GOAL=0.5   # lab rows/s ÷ pgbench -i rows/s, fixed before the run
DURATION=${CAPSTONE_BENCH_SECONDS:-10}
CLIENTS=${CAPSTONE_BENCH_CLIENTS:-4}
RES=$(mktemp -d)
trap 'rm -rf "$RES"' EXIT

# one load each into a fresh database, after a CHECKPOINT: "rows seconds"
lab_once() {
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS bench_lab WITH (FORCE)" -c "CREATE DATABASE bench_lab"
  "${PSQL[@]}" -d bench_lab -c "CREATE EXTENSION capstone" -c CHECKPOINT
  local t0 t1 rows
  t0=$(now_s)
  rows=$("${PSQL[@]}" -d bench_lab -tA -c "SELECT sum(row_count) FROM capstone.lab_install(scale => $SCALE, seed => 42)")
  t1=$(now_s)
  echo "$rows $(elapsed "$t0" "$t1")"
}
pgbench_once() { # pgbench scale
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS bench_pgbench WITH (FORCE)" -c "CREATE DATABASE bench_pgbench" -c CHECKPOINT
  local t0 t1
  t0=$(now_s)
  "${PGBENCH[@]}" -i -q -s "$1" bench_pgbench > /dev/null 2>&1
  t1=$(now_s)
  echo "$(( $1 * 100000 + $1 * 10 + $1 )) $(elapsed "$t0" "$t1")"
}
rps() { awk '{ printf "%.0f\n", $1 / $2 }'; }

# the lab generator (tables, checks, keys, foreign keys, indexes, triggers, ANALYZE) against
# pgbench -i with about as many rows (100,000 accounts per pgbench scale unit), alternating
read -r lab_rows lab_s < <(lab_once)
echo "$lab_rows $lab_s" | rps > "$RES/lab"
pgb_scale=$(awk -v r="$lab_rows" 'BEGIN { s = int(r / 100000 + 0.5); if (s < 1) s = 1; print s }')
for r in $(seq 1 "$REPS"); do
  pgbench_once "$pgb_scale" | rps >> "$RES/pgb"
  if [ "$r" -lt "$REPS" ]; then lab_once | rps >> "$RES/lab"; fi
done
read -r lab_med lab_min lab_max < <(spread < "$RES/lab")
read -r pgb_med pgb_min pgb_max < <(spread < "$RES/pgb")
rt=$(ratio "$lab_med" "$pgb_med")
echo
echo "== generator vs pgbench -i (PostgreSQL $MAJOR), $REPS alternating loads each, rows/s median [min–max] =="
printf '%-34s %12s %28s\n' "loader" "rows" "rows/s"
printf '%-34s %12s %28s\n' "capstone.lab_install(scale $SCALE)" "$lab_rows" "$(printf '%.0f [%.0f–%.0f]' "$lab_med" "$lab_min" "$lab_max")"
printf '%-34s %12s %28s\n' "pgbench -i -s $pgb_scale" "$(( pgb_scale * 100011 ))" "$(printf '%.0f [%.0f–%.0f]' "$pgb_med" "$pgb_min" "$pgb_max")"
v=$(verdict_of "$rt" ">=" "$GOAL")
echo "ratio lab/pgbench rows/s: $rt   (goal >= $GOAL: $v)"
"${PSQL[@]}" -d bench_lab -c "SELECT key, value FROM shop.lab_meta WHERE key LIKE '%seconds'"
bench_row "lab generator rows/s ÷ pgbench -i rows/s (scale $SCALE, $lab_rows rows)" \
  "$(printf '%.0f [%.0f–%.0f]' "$pgb_med" "$pgb_min" "$pgb_max") rows/s" \
  "$(printf '%.0f [%.0f–%.0f]' "$lab_med" "$lab_min" "$lab_max") rows/s" "$rt" ">= $GOAL" "$v"
[ "${CAPSTONE_LAB_LOAD_WORKLOAD:-1}" = 1 ] || exit 0

# 3. the workload, one script at a time
norders=$("${PSQL[@]}" -d bench_lab -tA -c "SELECT max(order_id) FROM shop.orders")
ntenants=$("${PSQL[@]}" -d bench_lab -tA -c "SELECT count(*) FROM shop.tenants")
echo
echo "== lab workload, $CLIENTS clients, ${DURATION}s each =="
printf '%-22s %10s %10s %10s %8s\n' "script" "tps" "avg_ms" "p99_ms" "failed"
for f in order_by_id recent_orders customer_history open_orders daily_revenue account_balance place_order; do
  log=$(mktemp -d)
  "${PGBENCH[@]}" -n -c "$CLIENTS" -j 2 -T "$DURATION" -D ntenants="$ntenants" -D norders="$norders" \
    -f "$ROOT/lab/workload/$f.sql" -l --log-prefix="$log/l" bench_lab > "$log/out" 2>&1 || true
  tps=$(grep -oE 'tps = [0-9.]+' "$log/out" | head -n1 | awk '{print $3}')
  avg=$(grep -oE 'latency average = [0-9.]+' "$log/out" | awk '{print $4}')
  failed=$(grep -oE 'number of failed transactions: [0-9]+' "$log/out" | awk '{print $5}')
  p99=$(latency_pct_ms 99 "$log"/l.*)
  printf '%-22s %10s %10s %10s %8s\n' "$f" "${tps:-n/a}" "${avg:-n/a}" "$p99" "${failed:-?}"
  grep -E 'error|ERROR' "$log/out" | head -n 3 || true
  rm -rf "$log"
done
