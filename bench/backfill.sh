#!/usr/bin/env bash
# Backfill worker throughput and impact, in one run:
#   1. worker rows/s vs one UPDATE ... SET of the whole table (same table, same change);
#   2. worker rows/s on a large table vs on a 100k-row table (flat as the table grows?);
#   3. concurrent pgbench p99 (lab place_order) with the backfill running vs without.
#   bench/backfill.sh [rows]   (default 10,000,000; batch size CAPSTONE_BACKFILL_BATCH, default 5000)
set -euo pipefail
. "$(dirname "$0")/common.sh"
ROWS=${1:-10000000}
BATCH=${CAPSTONE_BACKFILL_BATCH:-5000}
DB=bench_backfill
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
P=("${PSQL[@]}" -d "$DB")
"${P[@]}" -c "CREATE EXTENSION capstone"

make_table() { # name rows
  "${P[@]}" -c "DROP TABLE IF EXISTS $1" \
    -c "CREATE TABLE $1 (id bigint PRIMARY KEY, price_cents bigint NOT NULL, qty int NOT NULL, total_cents bigint) WITH (fillfactor = 90)" \
    -c "INSERT INTO $1 SELECT g, 100 + g % 997, 1 + g % 7, NULL FROM generate_series(1, $2) g" \
    -c "VACUUM ANALYZE $1" -c CHECKPOINT
}
run_job() { # table -> prints seconds
  local job t0 t1
  t0=$(now_s)
  job=$("${P[@]}" -tA -c "SELECT capstone.backfill_start('$1', 'total_cents = price_cents * qty', batch_size => $BATCH)")
  while [ "$("${P[@]}" -tA -c "SELECT state FROM capstone.backfill_jobs WHERE id = $job")" != done ]; do sleep 0.2; done
  t1=$(now_s)
  elapsed "$t0" "$t1"
}
p99_of() { latency_pct_ms 99 "$@"; }

echo "== 1. worker vs one UPDATE, $ROWS rows, batch $BATCH =="
make_table big "$ROWS"
t0=$(now_s); "${P[@]}" -c "UPDATE big SET total_cents = price_cents * qty"; t1=$(now_s)
single=$(elapsed "$t0" "$t1")
make_table big "$ROWS"
worker=$(run_job big)
single_rps=$(awk -v r="$ROWS" -v s="$single" 'BEGIN { printf "%.0f", r / s }')
worker_rps=$(awk -v r="$ROWS" -v s="$worker" 'BEGIN { printf "%.0f", r / s }')
echo "single UPDATE: $single s ($single_rps rows/s); worker: $worker s ($worker_rps rows/s); ratio worker/single = $(ratio "$worker_rps" "$single_rps") (goal >= 0.8)"

echo "== 2. worker on 100,000 rows =="
make_table small 100000
small=$(run_job small)
small_rps=$(awk -v s="$small" 'BEGIN { printf "%.0f", 100000 / s }')
echo "worker: $small s ($small_rps rows/s); ratio large/small = $(ratio "$worker_rps" "$small_rps") (goal >= 0.8)"

echo "== 3. place_order p99 without and with a backfill running =="
if "${PSQL[@]}" -d "${CAPSTONE_LAB_DB:-capstone_lab}" -tAc "SELECT to_regclass('shop.orders') IS NOT NULL" | grep -q t; then
  LAB=${CAPSTONE_LAB_DB:-capstone_lab}
  nt=$("${PSQL[@]}" -d "$LAB" -tAc "SELECT count(*) FROM shop.tenants"); no=$("${PSQL[@]}" -d "$LAB" -tAc "SELECT max(order_id) FROM shop.orders")
  d=$(mktemp -d)
  "${PGBENCH[@]}" -n -c 2 -j 1 -T 15 -D ntenants="$nt" -D norders="$no" -f "$ROOT/lab/workload/place_order.sql" -l --log-prefix="$d/base" "$LAB" > "$d/base.out" 2>&1
  make_table big "$ROWS"
  job=$("${P[@]}" -tA -c "SELECT capstone.backfill_start('big', 'total_cents = price_cents * qty', batch_size => $BATCH)")
  "${PGBENCH[@]}" -n -c 2 -j 1 -T 15 -D ntenants="$nt" -D norders="$no" -f "$ROOT/lab/workload/place_order.sql" -l --log-prefix="$d/with" "$LAB" > "$d/with.out" 2>&1
  "${P[@]}" -c "SELECT capstone.backfill_cancel($job)" >/dev/null
  b=$(p99_of "$d"/base.*[0-9]); w=$(p99_of "$d"/with.*[0-9])
  echo "p99 without: $b ms; with backfill: $w ms; ratio = $(ratio "$w" "$b") (goal <= 1.5)"
  rm -rf "$d"
else
  echo "skipped: load the lab first (scripts/run-lab.sh)"
fi
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
