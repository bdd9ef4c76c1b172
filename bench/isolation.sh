#!/usr/bin/env bash
# The cost of each fix for the lab's two business anomalies, under contention on one hot
# tenant, measured side by side: the strategies of one anomaly run in turn, in a rotated
# order each round, ROUNDS times; the table shows the median, min and max of each figure.
#   stock decrement (lost update): no fix, atomic UPDATE, SELECT ... FOR UPDATE, SERIALIZABLE + retries
#   credit check (write skew): no fix, tenant row FOR NO KEY UPDATE, advisory lock,
#     SERIALIZABLE + retries; each run starts from the same exposure, with room for
#     ROOM one-cent bookings, and the run's overbooking (cents over the limit) is measured
#   bench/isolation.sh [clients] [seconds] [rounds]  (default 8 clients, 10 s, 3 rounds; needs the lab)
# Verdicts: a fix is "safe" when no committed run overbooked / lost a decrement.
set -euo pipefail
. "$(dirname "$0")/common.sh"
CLIENTS=${1:-8}
SECS=${2:-10}
ROUNDS=${3:-3}
ROOM=${CAPSTONE_BENCH_CREDIT_ROOM:-100}
PARTS=${CAPSTONE_BENCH_PARTS:-stock credit}
DB=${CAPSTONE_LAB_DB:-capstone_lab}
Q=("${PSQL[@]}" -d "$DB" -tA)
read -r TID PID < <("${Q[@]}" -F' ' -c "SELECT tenant_id, product_lo FROM shop.lab_tenant_ranges WHERE tenant_id = 1")
# the credit check runs on the smallest tenant (its exposure sums few orders, so the check
# itself is cheap and the cost measured is the fix's); the stock decrement on tenant 1
CT=$("${Q[@]}" -c "SELECT max(tenant_id) FROM shop.lab_tenant_ranges")
CID=$("${Q[@]}" -c "SELECT min(customer_id) FROM shop.customers WHERE tenant_id = $CT")
LIMIT0=$("${Q[@]}" -c "SELECT credit_limit_cents FROM shop.tenants WHERE tenant_id = $CT")
ONHAND0=$("${Q[@]}" -c "SELECT on_hand FROM shop.stock WHERE tenant_id = $TID AND product_id = $PID")
restore() {
  "${Q[@]}" -c "DELETE FROM shop.orders WHERE tenant_id = $CT AND order_no LIKE 'bench-credit-%'" \
    -c "UPDATE shop.tenants SET credit_limit_cents = $LIMIT0 WHERE tenant_id = $CT" \
    -c "UPDATE shop.stock SET on_hand = $ONHAND0 WHERE tenant_id = $TID AND product_id = $PID" >/dev/null
}
trap restore EXIT
RES=$(mktemp -d)

# one pgbench run: prints "tps avg_ms p99_ms failed retried processed"
run() { # script extra...
  local f=$1 out; shift
  out=$(mktemp -d)
  "${PGBENCH[@]}" -n -c "$CLIENTS" -j 2 -T "$SECS" -D tid="$TID" -D pid="$PID" -D ct="$CT" -D cid="$CID" "$@" \
    -f "$ROOT/bench/isolation/$f.sql" -l --log-prefix="$out/l" "$DB" > "$out/run" 2>&1 || true
  local tps avg failed retried p99 processed
  tps=$(grep -oE 'tps = [0-9.]+' "$out/run" | head -n1 | awk '{print $3}')
  avg=$(grep -oE 'latency average = [0-9.]+' "$out/run" | awk '{print $4}')
  failed=$(grep -oE 'number of failed transactions: [0-9]+' "$out/run" | awk '{print $5}')
  retried=$( (grep -oE 'number of transactions retried: [0-9]+' "$out/run" || true) | awk '{print $5}')
  p99=$(latency_pct_ms 99 "$out"/l.*)
  processed=$(grep -oE 'number of transactions actually processed: [0-9]+' "$out/run" | awk '{print $6}')
  echo "${tps:-0} ${avg:-0} ${p99:-0} ${failed:-0} ${retried:-0} ${processed:-0}"
  rm -rf "$out"
}

# stock: the decrement count is the committed transactions; on_hand must drop by exactly that
stock_round() { # mode
  local extra=() r fell
  [ "$1" = serializable ] && extra=(--max-tries=20 --failures-detailed)
  "${Q[@]}" -c "UPDATE shop.stock SET on_hand = 100000000 WHERE tenant_id = $TID AND product_id = $PID" >/dev/null
  r=$(run "stock_$1" "${extra[@]}")
  fell=$("${Q[@]}" -c "SELECT 100000000 - on_hand FROM shop.stock WHERE tenant_id = $TID AND product_id = $PID")
  # every committed transaction decremented once: lost = committed - how far the stock fell
  echo "$r $(awk -v c="$(cut -d' ' -f6 <<< "$r")" -v d="$fell" 'BEGIN { x = c - d; print (x < 0) ? 0 : x }')" >> "$RES/stock_$1"
}

# credit: each run starts with room for ROOM bookings; overbooking = exposure - limit
credit_round() { # mode
  local extra=() over
  [ "$1" = serializable ] && extra=(--max-tries=20 --failures-detailed)
  "${Q[@]}" -c "DELETE FROM shop.orders WHERE tenant_id = $CT AND order_no LIKE 'bench-credit-%'" \
    -c "UPDATE shop.tenants SET credit_limit_cents = coalesce((SELECT sum(total_cents) FROM shop.orders WHERE tenant_id = $CT AND status = 'pending'), 0) + $ROOM WHERE tenant_id = $CT" >/dev/null
  local r
  r=$(run "credit_$1" "${extra[@]}")
  over=$("${Q[@]}" -c "SELECT greatest(0, coalesce((SELECT sum(total_cents) FROM shop.orders WHERE tenant_id = $CT AND status = 'pending'), 0) - credit_limit_cents) FROM shop.tenants WHERE tenant_id = $CT")
  echo "$r $over" >> "$RES/credit_$1"
}

STOCK=(none atomic for_update serializable)
CREDIT=(none for_no_key_update advisory_lock serializable)
for r in $(seq 1 "$ROUNDS"); do
  n=${#STOCK[@]}
  case " $PARTS " in *" stock "*) for i in $(seq 0 $((n - 1))); do stock_round "${STOCK[$(( (i + r) % n ))]}"; done ;; esac
  n=${#CREDIT[@]}
  case " $PARTS " in *" credit "*) for i in $(seq 0 $((n - 1))); do credit_round "${CREDIT[$(( (i + r) % n ))]}"; done ;; esac
done

col() { awk -v k="$2" '{ print $k }' "$1" | spread | awk '{ printf "%s [%s–%s]", $1, $2, $3 }'; }
echo "PostgreSQL $("${Q[@]}" -c 'SHOW server_version'), $CLIENTS clients, $SECS s per run, $ROUNDS rounds (median [min–max])"
printf '%-28s | %-28s | %-28s | %-28s | %-10s | %-10s | %s\n' strategy tps avg_ms p99_ms failed retried verdict
for m in "${STOCK[@]}"; do
  f=$RES/stock_$m
  [ -f "$f" ] || continue
  worst=$(awk '{ print $7 }' "$f" | sort -g | tail -n1)
  v=$(awk -v w="$worst" 'BEGIN { print (w > 0) ? "LOST UPDATES: up to " w " decrements per run" : "safe: on_hand fell by every commit" }')
  printf '%-28s | %-28s | %-28s | %-28s | %-10s | %-10s | %s\n' "stock: $m" "$(col "$f" 1)" "$(col "$f" 2)" "$(col "$f" 3)" \
    "$(awk '{ s += $4 } END { print s }' "$f")" "$(awk '{ s += $5 } END { print s }' "$f")" "$v"
done
for m in "${CREDIT[@]}"; do
  f=$RES/credit_$m
  [ -f "$f" ] || continue
  worst=$(awk '{ print $7 }' "$f" | sort -g | tail -n1)
  v=$(awk -v w="$worst" 'BEGIN { print (w > 0) ? "OVERBOOKED by up to " w " cents" : "safe: never over the limit" }')
  printf '%-28s | %-28s | %-28s | %-28s | %-10s | %-10s | %s\n' "credit: $m" "$(col "$f" 1)" "$(col "$f" 2)" "$(col "$f" 3)" \
    "$(awk '{ s += $4 } END { print s }' "$f")" "$(awk '{ s += $5 } END { print s }' "$f")" "$v"
done
rm -rf "$RES"
