#!/usr/bin/env bash
# Crash safety of every stateful operation, against a throwaway cluster started by
# scripts/test.sh with capstone preloaded. Each case cuts the operation short and checks
# what is left once the server is back:
#   1. backfill: kill -9 of the worker mid-job (the postmaster restarts, the launcher
#      resumes the job); 2. pg_ctl restart -m immediate mid-job: the same. Each time every
#      row must be updated exactly once (a counter column proves it).
#   3. lab_install, 4. explain_diff's change (a CREATE INDEX), 5. anomaly_demo,
#   6. the bloat scenario's snapshot holder: restart -m immediate mid-operation;
#   7. a catalogue anomaly_demo: cancel, then restart -m immediate, mid lock wait.
# After every restart: no capstone worker but the launcher, no prepared transaction, no
# advisory lock, no half-applied change, and state that tells the truth.
# Every cut is proven to have happened mid-operation: the process existed and is gone, the
# server log shows the kill or the shutdown, the committed progress at the cut was strictly
# between none and all, and a new worker process finished the job.
#   pg_test/crash.sh BINDIR DATADIR SOCKDIR PORT [SERVER_ENV] [SERVER_LOG]
set -uo pipefail
BIN=$1; DATA=$2; SOCK=$3; PORT=$4; SENV=${5:-}; SLOG=${6:-$SOCK/server.log}
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
alive() { kill -0 "$1" 2>/dev/null && echo yes || echo no; }
log_mark() { wc -c < "$SLOG" 2>/dev/null || echo 0; }
log_since() { tail -c +"$(( $1 + 1 ))" "$SLOG" 2>/dev/null; }
# the worker pid that runs job $1 now, once it is not $2 (up to $3 s)
new_worker() {
  for _ in $(seq 1 $(( $3 * 20 ))); do
    p=$("${PSQL[@]}" -c "SELECT worker_pid FROM capstone.backfill_jobs WHERE id = $1 AND state = 'running'" 2>/dev/null)
    [ -n "$p" ] && [ "$p" != "$2" ] && { echo "$p"; return; }
    sleep 0.05
  done
  echo none
}

"$BIN/psql" -X -q -h "$SOCK" -p "$PORT" -U postgres -d postgres -c "DROP DATABASE IF EXISTS capstone_crash" -c "CREATE DATABASE capstone_crash"
"${PSQL[@]}" -c "CREATE EXTENSION capstone" -c "CREATE TABLE crash_t (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0)" \
  -c "INSERT INTO crash_t SELECT g FROM generate_series(1, 100000) g" -c "ANALYZE crash_t"

# 1. kill -9 of the worker mid-job
job=$("${PSQL[@]}" -c "SELECT capstone.backfill_start('crash_t', 'counter = counter + 1', batch_size => 500, pause => '10ms')")
for _ in $(seq 1 50); do
  pid=$("${PSQL[@]}" -c "SELECT worker_pid FROM capstone.backfill_jobs WHERE id = $job AND rows_done > 0")
  [ -n "$pid" ] && break; sleep 0.1
done
check "kill -9 mid-job: the worker process exists before the kill" "$([ -n "$pid" ] && alive "$pid" || echo no)" yes
mark=$(log_mark)
before=$("${PSQL[@]}" -c "SELECT rows_done FROM capstone.backfill_jobs WHERE id = $job")
sudo kill -9 "$pid" 2>/dev/null || kill -9 "$pid"
sleep 0.5
check "kill -9 mid-job: the worker process is gone" "$(alive "$pid")" no
wait_up
check "kill -9 mid-job: the server log shows the kill" \
  "$(log_since "$mark" | grep -c "(PID $pid) was terminated by signal 9")" 1
check "kill -9 mid-job: committed progress at the kill strictly between 0 and 100000" \
  "$([ "${before:-0}" -gt 0 ] && [ "${before:-0}" -lt 100000 ] && echo yes || echo "no ($before)")" yes
pid2=$(new_worker "$job" "$pid" 60)
check "kill -9 mid-job: a new worker process resumed the job" "$([ "$pid2" != none ] && [ "$pid2" != "$pid" ] && echo yes || echo no)" yes
check "kill -9 mid-job: resumed and done" "$(wait_state "$job" done 90)" done
check "kill -9 mid-job: every row updated exactly once" \
  "$("${PSQL[@]}" -c "SELECT count(*) FILTER (WHERE counter = 1) || '/' || count(*) FROM crash_t")" "100000/100000"

# 2. immediate shutdown and restart mid-job
job=$("${PSQL[@]}" -c "SELECT capstone.backfill_start('crash_t', 'counter = counter + 1', batch_size => 500, pause => '10ms')")
for _ in $(seq 1 50); do
  n=$("${PSQL[@]}" -c "SELECT rows_done FROM capstone.backfill_jobs WHERE id = $job")
  [ "${n:-0}" -gt 0 ] && break; sleep 0.1
done
pid=$("${PSQL[@]}" -c "SELECT worker_pid FROM capstone.backfill_jobs WHERE id = $job")
check "restart -m immediate mid-job: the worker process exists before the restart" "$([ -n "$pid" ] && alive "$pid" || echo no)" yes
mark=$(log_mark)
before=$("${PSQL[@]}" -c "SELECT rows_done FROM capstone.backfill_jobs WHERE id = $job")
(cd / && sudo -u postgres env $SENV "$BIN/pg_ctl" -D "$DATA" -l "$SLOG" -m immediate -w restart) >/dev/null 2>&1
wait_up
check "restart -m immediate mid-job: the worker process is gone" "$(alive "$pid")" no
check "restart -m immediate mid-job: the server log shows the immediate shutdown" \
  "$(log_since "$mark" | grep -c "received immediate shutdown request")" 1
check "restart -m immediate mid-job: committed progress at the cut strictly between 0 and 100000" \
  "$([ "${before:-0}" -gt 0 ] && [ "${before:-0}" -lt 100000 ] && echo yes || echo "no ($before)")" yes
pid2=$(new_worker "$job" "$pid" 60)
check "restart -m immediate mid-job: a new worker process resumed the job" "$([ "$pid2" != none ] && [ "$pid2" != "$pid" ] && echo yes || echo no)" yes
check "restart -m immediate mid-job: resumed and done" "$(wait_state "$job" done 90)" done
check "restart -m immediate mid-job: every row updated exactly once more" \
  "$("${PSQL[@]}" -c "SELECT count(*) FILTER (WHERE counter = 2) || '/' || count(*) FROM crash_t")" "100000/100000"
check "no orphaned capstone workers" \
  "$("${PSQL[@]}" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'capstone backfill'")" "0"

restart_now() { (cd / && sudo -u postgres env $SENV "$BIN/pg_ctl" -D "$DATA" -l "$SLOG" -m immediate -w restart) >/dev/null 2>&1; wait_up; }
invariants() { # $1 = case name
  local w=""
  for _ in $(seq 1 50); do
    w=$("${PSQL[@]}" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'capstone%' AND backend_type <> 'capstone launcher'")
    [ "$w" = 0 ] && break; sleep 0.1
  done
  check "$1: no capstone worker left but the launcher" "$w" 0
  check "$1: no prepared transaction" "$("${PSQL[@]}" -c "SELECT count(*) FROM pg_prepared_xacts")" 0
  check "$1: no advisory lock held" "$("${PSQL[@]}" -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")" 0
}
# wait (up to $2 s) until the query $1 returns t
wait_for() { for _ in $(seq 1 $(( $2 * 20 ))); do [ "$("${PSQL[@]}" -c "$1" 2>/dev/null)" = t ] && return 0; sleep 0.05; done; return 1; }

# 3. lab_install cut short: transactional, so no shop schema at all, and a rerun works
"${PSQL[@]}" -c "SELECT * FROM capstone.lab_install(scale => 0.2, seed => 7)" >/dev/null 2>&1 &
bg=$!
if wait_for "SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE '%lab_install(scale => 0.2%' AND state = 'active' AND pid <> pg_backend_pid() AND now() - query_start > interval '1 second'" 30; then
  restart_now; wait "$bg" 2>/dev/null
  check "lab_install cut short: no half-loaded shop schema" "$("${PSQL[@]}" -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'shop'")" 0
  invariants "lab_install"
else
  check "lab_install: was running when cut short" no yes
fi
check "lab_install after the crash: loads" \
  "$("${PSQL[@]}" -c "SELECT count(*) > 0 FROM capstone.lab_install(scale => 0.01, seed => 42, anchor => '2026-06-01 00:00+00')")" t

# 4. explain_diff's change cut short: the index it was building does not exist, and no
# evidence of a diff that never finished
"${PSQL[@]}" -c "CREATE TABLE crash_big AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 1500000) g" -c "ANALYZE crash_big"
ev0=$("${PSQL[@]}" -c "SELECT count(*) FROM capstone.evidence")
"${PSQL[@]}" -c "SELECT * FROM capstone.explain_diff('SELECT * FROM crash_big WHERE h = ''x''', 'CREATE INDEX crash_big_h ON crash_big (h, id)')" >/dev/null 2>&1 &
bg=$!
if wait_for "SELECT count(*) > 0 FROM pg_stat_progress_create_index WHERE relid = 'crash_big'::regclass" 30; then
  restart_now; wait "$bg" 2>/dev/null
  check "explain_diff cut short mid-change: no index, valid or not" "$("${PSQL[@]}" -c "SELECT count(*) FROM pg_class WHERE relname = 'crash_big_h'")" 0
  check "explain_diff cut short: no evidence stored" "$("${PSQL[@]}" -c "SELECT count(*) FROM capstone.evidence")" "$ev0"
  invariants "explain_diff"
else
  check "explain_diff: was building the index when cut short" no yes
fi
"${PSQL[@]}" -c "DROP TABLE crash_big"

# 5. anomaly_demo cut short: its session workers die with the server; the next run sweeps
# the fixture left behind, records the aborted run, and gives the same verdict as always.
# To stop the demo mid-run for sure, another session holds the advisory lock the next
# demo's session A will ask for (mode 'advisory lock': the key is the demo tenant's id,
# the next value of shop.tenants' identity sequence).
want=$("${PSQL[@]}" -c "SELECT result FROM capstone.anomaly_demo('lost_update', 'advisory lock') WHERE session = 'check'")
tseq=$("${PSQL[@]}" -c "SELECT pg_get_serial_sequence('shop.tenants', 'tenant_id')")
"${PSQL[@]}" -c "SELECT pg_advisory_lock(hashtext('capstone-demo-stock'),
                   (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM $tseq)::int),
                 pg_sleep(120)" >/dev/null 2>&1 &
locker=$!
wait_for "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND granted" 10
"${PSQL[@]}" -c "SELECT count(*) FROM capstone.anomaly_demo('lost_update', 'advisory lock')" >/dev/null 2>&1 &
bg=$!
if wait_for "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted" 30; then
  check "anomaly_demo: cut short with its fixture in place" \
    "$("${PSQL[@]}" -c "SELECT count(*) FROM shop.tenants WHERE slug LIKE 'capstone-demo-%'")" 1
  restart_now; wait "$bg" "$locker" 2>/dev/null
  invariants "anomaly_demo"
  check "anomaly_demo after the crash: same verdict" \
    "$("${PSQL[@]}" -c "SELECT result FROM capstone.anomaly_demo('lost_update', 'advisory lock') WHERE session = 'check'" 2>/dev/null)" "$want"
  check "anomaly_demo after the crash: the aborted run is on record" \
    "$("${PSQL[@]}" -c "SELECT count(*) FROM capstone.evidence WHERE label = 'anomaly_demo: aborted run swept'")" 1
  check "anomaly_demo after the crash: no fixture left" "$("${PSQL[@]}" -c "SELECT count(*) FROM shop.tenants WHERE slug LIKE 'capstone-demo-%'")" 0
else
  check "anomaly_demo: was waiting mid-run when cut short" no yes
  kill "$bg" "$locker" 2>/dev/null
fi

# 7. a catalogue case cut short: p4 with FOR SHARE ends in a deadlock, so for about
# deadlock_timeout both sessions wait on each other's lock; cancel the caller there, then
# (a second run) restart the server there. Each time: no session left, no lock, no
# prepared transaction; after the restart the next run sweeps the scratch table it left,
# says so on record, and gives the same verdict as a run that was never cut.
want=$("${PSQL[@]}" -c "SELECT result FROM capstone.anomaly_demo('p4', 'for_share') WHERE session = 'check'")
mid_wait="SELECT count(*) >= 2 FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'capstone_demo' AND NOT l.granted"
"${PSQL[@]}" -c "SELECT count(*) FROM capstone.anomaly_demo('p4', 'for_share')" >/dev/null 2>&1 &
bg=$!
if wait_for "$mid_wait" 30; then
  "${PSQL[@]}" -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%anomaly_demo(''p4'', ''for_share'')%' AND pid <> pg_backend_pid()" >/dev/null
  wait "$bg" 2>/dev/null
  w=""
  for _ in $(seq 1 50); do
    w=$("${PSQL[@]}" -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'capstone_demo'")
    [ "$w" = 0 ] && break; sleep 0.1
  done
  check "catalogue demo cancelled mid-wait: no session left" "$w" 0
  check "catalogue demo cancelled mid-wait: no scratch table left" \
    "$("${PSQL[@]}" -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'capstone_scratch'")" 0
  invariants "catalogue demo cancelled"
else
  check "catalogue demo: both sessions were waiting when cancelled" no yes
  wait "$bg" 2>/dev/null
fi
swept0=$("${PSQL[@]}" -c "SELECT count(*) FROM capstone.evidence WHERE label = 'anomaly_demo: aborted run swept'")
"${PSQL[@]}" -c "SELECT count(*) FROM capstone.anomaly_demo('p4', 'for_share')" >/dev/null 2>&1 &
bg=$!
if wait_for "$mid_wait" 30; then
  check "catalogue demo: cut short with its scratch table in place" \
    "$("${PSQL[@]}" -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'capstone_scratch'")" 1
  restart_now; wait "$bg" 2>/dev/null
  invariants "catalogue demo"
  check "catalogue demo after the crash: same verdict" \
    "$("${PSQL[@]}" -c "SELECT result FROM capstone.anomaly_demo('p4', 'for_share') WHERE session = 'check'" 2>/dev/null | sed 's/isolation_[0-9]*/isolation_N/g')" \
    "$(sed 's/isolation_[0-9]*/isolation_N/g' <<< "$want")"
  check "catalogue demo after the crash: the swept table is on record" \
    "$("${PSQL[@]}" -c "SELECT count(*) - $swept0 FROM capstone.evidence WHERE label = 'anomaly_demo: aborted run swept'")" 1
  check "catalogue demo after the crash: no scratch table left" \
    "$("${PSQL[@]}" -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'capstone_scratch'")" 0
else
  check "catalogue demo: both sessions were waiting when cut short" no yes
  wait "$bg" 2>/dev/null
fi

# 6. the bloat scenario's snapshot holder: gone after the restart, the horizon released,
# and finishing the scenario says the holder ended instead of measuring a wrong thing
sid=$("${PSQL[@]}" -c "SELECT DISTINCT scenario_id FROM capstone.bloat_scenario(updates => 20000, hold => '10 min')")
check "bloat scenario: holder running before the crash" \
  "$("${PSQL[@]}" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'capstone bloat holder'")" 1
restart_now
invariants "bloat scenario"
check "bloat scenario after the crash: no session holds the xmin horizon" \
  "$("${PSQL[@]}" -c "SELECT count(*) FROM capstone.xmin_holders() WHERE holder_kind NOT LIKE '%slot%'")" 0
err=$("$BIN/psql" -X -q -tA -h "$SOCK" -p "$PORT" -U postgres -d capstone_crash -v VERBOSITY=verbose \
  -c "SELECT * FROM capstone.bloat_scenario_finish($sid)" 2>&1 >/dev/null)
check "bloat scenario after the crash: finish says the holder ended (55000)" \
  "$(grep -c '55000.*has already ended' <<< "$err")" 1

echo "crash: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
