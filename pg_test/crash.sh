#!/usr/bin/env bash
# Crash safety of the backfill worker, against a throwaway cluster started by scripts/test.sh
# with capstone preloaded:
#   1. kill -9 of the worker mid-job: the postmaster restarts, the launcher resumes the job;
#   2. pg_ctl restart -m immediate mid-job: the same.
# Each time every row must be updated exactly once (a counter column proves it).
#   pg_test/crash.sh BINDIR DATADIR SOCKDIR PORT [SERVER_ENV]
set -uo pipefail
BIN=$1; DATA=$2; SOCK=$3; PORT=$4; SENV=${5:-}
PSQL=("$BIN/psql" -X -q -tA -h "$SOCK" -p "$PORT" -U postgres -d capstone_crash)
pass=0; fail=0
check() { if [ "$2" = "$3" ]; then echo "crash: ok    $1"; pass=$((pass + 1)); else echo "crash: FAIL  $1 (got '$2', want '$3')"; fail=$((fail + 1)); fi; }
wait_state() { # job want seconds
  for _ in $(seq 1 $(( $3 * 10 ))); do
    s=$("${PSQL[@]}" -c "SELECT state FROM capstone.backfill_jobs WHERE id = $1" 2>/dev/null)
    [ "$s" = "$2" ] && { echo "$s"; return; }
    sleep 0.1
  done
  echo "${s:-unreachable}"
}
wait_up() { for _ in $(seq 1 100); do "${PSQL[@]}" -c "SELECT 1" >/dev/null 2>&1 && return; sleep 0.2; done; }

"$BIN/psql" -X -q -h "$SOCK" -p "$PORT" -U postgres -d postgres -c "DROP DATABASE IF EXISTS capstone_crash" -c "CREATE DATABASE capstone_crash"
"${PSQL[@]}" -c "CREATE EXTENSION capstone" -c "CREATE TABLE crash_t (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0)" \
  -c "INSERT INTO crash_t SELECT g FROM generate_series(1, 100000) g" -c "ANALYZE crash_t"

# 1. kill -9 of the worker mid-job
job=$("${PSQL[@]}" -c "SELECT capstone.backfill_start('crash_t', 'counter = counter + 1', batch_size => 500, pause => '10ms')")
for _ in $(seq 1 50); do
  pid=$("${PSQL[@]}" -c "SELECT worker_pid FROM capstone.backfill_jobs WHERE id = $job AND rows_done > 0")
  [ -n "$pid" ] && break; sleep 0.1
done
before=$("${PSQL[@]}" -c "SELECT rows_done FROM capstone.backfill_jobs WHERE id = $job")
sudo kill -9 "$pid" 2>/dev/null || kill -9 "$pid"
sleep 2; wait_up
check "kill -9 mid-job: the job was cut short" "$([ "${before:-0}" -lt 100000 ] && echo yes || echo no)" yes
check "kill -9 mid-job: resumed and done" "$(wait_state "$job" done 90)" done
check "kill -9 mid-job: every row updated exactly once" \
  "$("${PSQL[@]}" -c "SELECT count(*) FILTER (WHERE counter = 1) || '/' || count(*) FROM crash_t")" "100000/100000"

# 2. immediate shutdown and restart mid-job
job=$("${PSQL[@]}" -c "SELECT capstone.backfill_start('crash_t', 'counter = counter + 1', batch_size => 500, pause => '10ms')")
for _ in $(seq 1 50); do
  n=$("${PSQL[@]}" -c "SELECT rows_done FROM capstone.backfill_jobs WHERE id = $job")
  [ "${n:-0}" -gt 0 ] && break; sleep 0.1
done
sudo -u postgres env $SENV "$BIN/pg_ctl" -D "$DATA" -m immediate -w restart >/dev/null 2>&1
wait_up
check "restart -m immediate mid-job: resumed and done" "$(wait_state "$job" done 90)" done
check "restart -m immediate mid-job: every row updated exactly once more" \
  "$("${PSQL[@]}" -c "SELECT count(*) FILTER (WHERE counter = 2) || '/' || count(*) FROM crash_t")" "100000/100000"
check "no orphaned capstone workers" \
  "$("${PSQL[@]}" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'capstone backfill'")" "0"
echo "crash: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
