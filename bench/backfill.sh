#!/usr/bin/env bash
# Backfill worker throughput and impact, measured side by side in one run:
#   1. per table size, the worker's rows/s against one UPDATE ... SET of the whole table
#      (same table, same change), alternating which runs first, ROUNDS rounds;
#   2. the worker's rows/s at the largest size against the smallest (no fixed cost?);
#   3. a pgbench workload writing to that very table: its p99 with the backfill running
#      against without, alternating, and the longest lock wait seen (capstone.lock_watch
#      sampling pg_locks every 20 ms) against the backfill's lock_timeout.
#   bench/backfill.sh [sizes] [rounds]   (default "100000 1000000", 3; add 10000000 for the big one)
# Worker time is the job's own: from backfill_start's row (created_at) to finished_at, so the
# start-up of the worker counts and the polling of this script does not.
# Goals, fixed before the run: worker/single >= 0.90; largest/smallest rows/s in 0.9-1.1;
# p99 with/without <= 1.5; longest lock wait <= lock_timeout.
set -euo pipefail
. "$(dirname "$0")/common.sh"
read -r -a SIZES <<< "${1:-100000 1000000}"
ROUNDS=${2:-3}
BATCH=${CAPSTONE_BACKFILL_BATCH:-5000}
LOCK_MS=${CAPSTONE_BACKFILL_LOCK_MS:-500}
PGB_SECONDS=${CAPSTONE_BACKFILL_PGBENCH_SECONDS:-10}
DB=bench_backfill
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
P=("${PSQL[@]}" -d "$DB")
"${P[@]}" -c "CREATE EXTENSION capstone"
RES=$(mktemp -d)
trap 'rm -rf "$RES"' EXIT

make_table() { # name rows
  "${P[@]}" -c "DROP TABLE IF EXISTS $1" \
    -c "CREATE TABLE $1 (id bigint PRIMARY KEY, price_cents bigint NOT NULL, qty int NOT NULL, total_cents bigint) WITH (fillfactor = 90)" \
    -c "INSERT INTO $1 SELECT g, 100 + g % 997, 1 + g % 7, NULL FROM generate_series(1, $2) g" \
    -c "VACUUM ANALYZE $1" -c CHECKPOINT
}
single_s() { # table -> seconds of one UPDATE, timed by the server
  "${P[@]}" -tA -c "SELECT set_config('bench.t0', clock_timestamp()::text, false)" \
    -c "UPDATE $1 SET total_cents = price_cents * qty" \
    -c "SELECT round(extract(epoch FROM clock_timestamp() - current_setting('bench.t0')::timestamptz)::numeric, 4)" | tail -n1
}
start_job() { # table -> job id
  "${P[@]}" -tA -c "SELECT capstone.backfill_start('$1', 'total_cents = price_cents * qty', batch_size => $BATCH, lock_timeout => '${LOCK_MS} ms')"
}
wait_job() { # job
  while [ "$("${P[@]}" -tA -c "SELECT state FROM capstone.backfill_jobs WHERE id = $1")" != done ]; do sleep 0.05; done
}
job_s() { # job -> seconds from submit to done, and from submit to the worker's start
  "${P[@]}" -tA -F' ' -c "SELECT round(extract(epoch FROM finished_at - created_at)::numeric, 4),
                                 round(extract(epoch FROM started_at - created_at)::numeric, 4)
                            FROM capstone.backfill_jobs WHERE id = $1"
}
med() { spread | cut -d' ' -f1; }
range() { spread | awk '{ printf "%s [%s–%s]", $1, $2, $3 }'; }
range0() { spread | awk '{ printf "%.0f [%.0f–%.0f]", $1, $2, $3 }'; }

echo "== 1. worker vs one UPDATE (batch $BATCH, $ROUNDS rounds, alternating) =="
for n in "${SIZES[@]}"; do
  for r in $(seq 1 "$ROUNDS"); do
    for side in $( [ $((r % 2)) = 1 ] && echo "single worker" || echo "worker single"); do
      make_table big "$n"
      if [ "$side" = single ]; then
        s=$(single_s big)
        awk -v n="$n" -v s="$s" 'BEGIN { printf "%.0f\n", n / s }' >> "$RES/single_$n"
      else
        job=$(start_job big); wait_job "$job"
        read -r s st < <(job_s "$job")
        awk -v n="$n" -v s="$s" 'BEGIN { printf "%.0f\n", n / s }' >> "$RES/worker_$n"
        echo "$st" >> "$RES/start_$n"
      fi
    done
  done
done
printf '%-10s | %-28s | %-28s | %-8s | %-16s | %s\n' rows "single UPDATE rows/s" "worker rows/s" ratio "worker start s" "verdict (>= 0.90)"
for n in "${SIZES[@]}"; do
  sm=$(med < "$RES/single_$n"); wm=$(med < "$RES/worker_$n")
  rt=$(ratio "$wm" "$sm")
  v=$(awk -v r="$rt" 'BEGIN { print (r >= 0.90) ? "met" : "missed" }')
  printf '%-10s | %-28s | %-28s | %-8s | %-16s | %s\n' "$n" "$(range0 < "$RES/single_$n")" "$(range0 < "$RES/worker_$n")" "$rt" "$(med < "$RES/start_$n")" "$v"
  bench_row "backfill worker rows/s ÷ one UPDATE, $n rows" "$(range0 < "$RES/single_$n") rows/s" "$(range0 < "$RES/worker_$n") rows/s" "$rt" ">= 0.90" "$v"
done

lo=${SIZES[0]}; hi=${SIZES[${#SIZES[@]}-1]}
if [ "$lo" != "$hi" ]; then
  g=$(ratio "$(med < "$RES/worker_$hi")" "$(med < "$RES/worker_$lo")")
  gv=$(awk -v r="$g" 'BEGIN { print (r >= 0.9 && r <= 1.1) ? "met" : "missed" }')
  echo "== 2. worker rows/s at $hi rows / at $lo rows = $g ($gv: goal 0.9-1.1) =="
  bench_row "backfill worker rows/s at $hi rows ÷ at $lo rows" "$(range0 < "$RES/worker_$lo") rows/s" "$(range0 < "$RES/worker_$hi") rows/s" "$g" "0.9–1.1" "$gv"
fi

echo "== 3. pgbench writing to the same table ($hi rows), p99 without and with the backfill, $ROUNDS rounds =="
cat > "$RES/touch.sql" <<EOF
\set id random(1, $hi)
UPDATE big SET qty = qty WHERE id = :id;
EOF
for r in $(seq 1 "$ROUNDS"); do
  for side in $( [ $((r % 2)) = 1 ] && echo "without with" || echo "with without"); do
    make_table big "$hi"
    d=$(mktemp -d)
    if [ "$side" = with ]; then
      job=$(start_job big)
      "${P[@]}" -tA -c "SELECT coalesce(max(max_wait_ms), 0) FROM capstone.lock_watch('${PGB_SECONDS} s', '20 ms')" > "$d/wait" &
      watcher=$!
    fi
    "${PGBENCH[@]}" -n -c 2 -j 1 -T "$PGB_SECONDS" -f "$RES/touch.sql" -l --log-prefix="$d/l" "$DB" > "$d/out" 2>&1 || true
    echo "$(latency_pct_ms 99 "$d"/l.*)" >> "$RES/p99_$side"
    if [ "$side" = with ]; then
      wait "$watcher"; cat "$d/wait" >> "$RES/wait"
      "${P[@]}" -c "SELECT capstone.backfill_cancel($job)" >/dev/null 2>&1 || true
    fi
    rm -rf "$d"
  done
done
pw=$(med < "$RES/p99_with"); po=$(med < "$RES/p99_without"); pr=$(ratio "$pw" "$po")
mw=$(sort -g "$RES/wait" | tail -n1)
pv=$(verdict_of "$pr" "<=" 1.5); wv=$(verdict_of "$mw" "<=" "$LOCK_MS")
echo "p99 without: $(range < "$RES/p99_without") ms; with the backfill: $(range < "$RES/p99_with") ms; ratio $pr ($pv: goal <= 1.5)"
echo "longest lock wait seen: $mw ms; lock_timeout $LOCK_MS ms ($wv)"
bench_row "pgbench p99 on the table being backfilled ($hi rows): with ÷ without" "$(range < "$RES/p99_without") ms" "$(range < "$RES/p99_with") ms" "$pr" "<= 1.5" "$pv"
bench_row "longest lock wait during the backfill (pg_locks every 20 ms)" "lock_timeout $LOCK_MS ms" "$mw ms" "$(ratio "$mw" "$LOCK_MS")" "<= 1 (of lock_timeout)" "$wv"
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
