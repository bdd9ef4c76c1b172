#!/usr/bin/env bash
# Lab generator throughput against pgbench -i, on the same cluster in the same run,
# then pgbench TPS of every lab workload script.
#   bench/lab_load.sh [scale]        (default 1; pgbench -i uses a matching row volume)
# Prints rows/s of both loaders and their ratio (goal >= 0.5), and TPS + p99 per script.
set -euo pipefail
. "$(dirname "$0")/common.sh"
SCALE=${1:-1}
DURATION=${CAPSTONE_BENCH_SECONDS:-10}
CLIENTS=${CAPSTONE_BENCH_CLIENTS:-4}

"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS bench_pgbench" -c "CREATE DATABASE bench_pgbench" \
  -c "DROP DATABASE IF EXISTS bench_lab" -c "CREATE DATABASE bench_lab"
"${PSQL[@]}" -d bench_lab -c "CREATE EXTENSION capstone"

# 1. the lab generator (tables, constraints, indexes, triggers, ANALYZE)
"${PSQL[@]}" -d postgres -c CHECKPOINT
t0=$(now_s)
lab_rows=$("${PSQL[@]}" -d bench_lab -tA -c "SELECT sum(row_count) FROM capstone.lab_install(scale => $SCALE, seed => 42)")
t1=$(now_s)
lab_s=$(elapsed "$t0" "$t1")

# 2. pgbench -i with about as many rows (100,000 accounts per pgbench scale unit)
pgb_scale=$(awk -v r="$lab_rows" 'BEGIN { s = int(r / 100000 + 0.5); if (s < 1) s = 1; print s }')
"${PSQL[@]}" -d postgres -c CHECKPOINT
t0=$(now_s)
"${PGBENCH[@]}" -i -q -s "$pgb_scale" bench_pgbench > /dev/null 2>&1
t1=$(now_s)
pgb_s=$(elapsed "$t0" "$t1")
pgb_rows=$(( pgb_scale * 100000 + pgb_scale * 10 + pgb_scale ))

lab_rps=$(awk -v r="$lab_rows" -v s="$lab_s" 'BEGIN { printf "%.0f", r / s }')
pgb_rps=$(awk -v r="$pgb_rows" -v s="$pgb_s" 'BEGIN { printf "%.0f", r / s }')
echo
echo "== generator vs pgbench -i (PostgreSQL $MAJOR) =="
printf '%-34s %12s %10s %12s\n' "loader" "rows" "seconds" "rows/s"
printf '%-34s %12s %10s %12s\n' "capstone.lab_install(scale $SCALE)" "$lab_rows" "$lab_s" "$lab_rps"
printf '%-34s %12s %10s %12s\n' "pgbench -i -s $pgb_scale" "$pgb_rows" "$pgb_s" "$pgb_rps"
echo "ratio lab/pgbench rows/s: $(ratio "$lab_rps" "$pgb_rps")   (goal >= 0.5)"
"${PSQL[@]}" -d bench_lab -c "SELECT key, value FROM shop.lab_meta WHERE key LIKE '%seconds'"

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
