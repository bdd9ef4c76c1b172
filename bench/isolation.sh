#!/usr/bin/env bash
# The cost of each way to make a hot-row stock decrement safe, under contention:
# atomic UPDATE, SELECT ... FOR UPDATE, and SERIALIZABLE with retries.
#   bench/isolation.sh [clients] [seconds]   (default 8 clients, 10 s each; needs the lab loaded)
# Prints TPS, average and p99 latency, and for SERIALIZABLE the serialization failures and retries.
set -euo pipefail
. "$(dirname "$0")/common.sh"
CLIENTS=${1:-8}
SECS=${2:-10}
DB=${CAPSTONE_LAB_DB:-capstone_lab}
read -r TID PID < <("${PSQL[@]}" -d "$DB" -tA -F' ' -c "SELECT tenant_id, product_lo FROM shop.lab_tenant_ranges WHERE tenant_id = 1")
printf '%-14s %8s %10s %10s %10s %10s %12s\n' mode clients tps avg_ms p99_ms failed retried
for mode in atomic for_update serializable; do
  out=$(mktemp -d)
  extra=()
  [ "$mode" = serializable ] && extra=(--max-tries=20 --failures-detailed)
  "${PGBENCH[@]}" -n -c "$CLIENTS" -j 2 -T "$SECS" -D tid="$TID" -D pid="$PID" "${extra[@]}" \
    -f "$ROOT/bench/isolation/$mode.sql" -l --log-prefix="$out/l" "$DB" > "$out/run" 2>&1 || true
  tps=$(grep -oE 'tps = [0-9.]+' "$out/run" | head -n1 | awk '{print $3}')
  avg=$(grep -oE 'latency average = [0-9.]+' "$out/run" | awk '{print $4}')
  failed=$(grep -oE 'number of failed transactions: [0-9]+' "$out/run" | awk '{print $5}')
  retried=$( (grep -oE 'number of transactions retried: [0-9]+' "$out/run" || true) | awk '{print $5}')
  p99=$(latency_pct_ms 99 "$out"/l.*)
  printf '%-14s %8s %10s %10s %10s %10s %12s\n' "$mode" "$CLIENTS" "${tps:-n/a}" "${avg:-n/a}" "$p99" "${failed:-0}" "${retried:-0}"
  rm -rf "$out"
done
