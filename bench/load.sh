#!/usr/bin/env bash
# Reliability under load: capstone's read-side functions called by 50 concurrent clients
# while the lab's write workload runs, with the private memory of every calling backend
# sampled over time.
#
#   bench/load.sh            (against the lab: scripts/lab.sh start; lab_install first)
#
# One pgbench invocation runs the five scripts of bench/load/ together, each with a weight
# (-f file@weight): estimate_gap(query) on the lab's read queries with literals filled
# in, bloat_report('shop') in its default fast mode, xmin_holders(), lock_snapshot() and
# triage(). Its connections carry application_name 'capstone-load'. At the same time a
# second pgbench runs lab/workload/place_order.sql (application_name
# 'capstone-load-writer'). Both log every transaction (-l); per function the script
# number in the log gives calls, TPS, p50 / p99 latency and failures.
# Every CAPSTONE_LOAD_SAMPLE_EVERY seconds (5) the script reads RssAnon (private,
# anonymous resident memory: palloc'd contexts and malloc'd Rust allocations, not shared
# buffers) and VmHWM from /proc/<pid>/status of each load backend, so the server must run
# on this machine.
#
# Verdict, fixed before the run:
#   errors: 0 failed transactions, 0 error lines in either pgbench's output, both pgbench
#           exit codes 0, and every function called at least once;
#   memory: no load backend's RssAnon grows, from the first sample at or after the
#           warm-up (CAPSTONE_LOAD_WARMUP, 15 s) to the last sample (1 s before the end),
#           by more than max(CAPSTONE_LOAD_GROWTH_MB (8) MB, CAPSTONE_LOAD_GROWTH_PCT (10)%
#           of its value at the warm-up sample).
# Exit status: 0 pass (and evidence stored), 1 verdict failed, 2 cannot run,
# 3 passed but capstone.evidence refused the row (an extension without gate 'reliability').
# Prints the per-function table, the memory samples and the verdict, and stores one row in
# capstone.evidence (gate 'reliability') with summary, table, chart and verdict.
#
# Settings: CAPSTONE_PG, CAPSTONE_LAB_HOST, CAPSTONE_LAB_PORT (bench/common.sh),
#   CAPSTONE_LAB_DB (capstone_lab), CAPSTONE_LOAD_CLIENTS (50), CAPSTONE_LOAD_SECONDS (60),
#   CAPSTONE_LOAD_WRITERS (4, place_order clients; 0 = none), CAPSTONE_LOAD_JOBS (2),
#   CAPSTONE_LOAD_WEIGHTS ("estimate_gap@40 bloat_report@5 xmin_holders@20
#   lock_snapshot@20 triage@15"), CAPSTONE_LOAD_SAMPLE_EVERY (5), CAPSTONE_LOAD_WARMUP (15),
#   CAPSTONE_LOAD_GROWTH_MB (8), CAPSTONE_LOAD_GROWTH_PCT (10), KEEP_WORK=1 keeps the logs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"

DB=${CAPSTONE_LAB_DB:-capstone_lab}
CLIENTS=${CAPSTONE_LOAD_CLIENTS:-50}
SECS=${CAPSTONE_LOAD_SECONDS:-60}
WRITERS=${CAPSTONE_LOAD_WRITERS:-4}
JOBS=${CAPSTONE_LOAD_JOBS:-2}
EVERY=${CAPSTONE_LOAD_SAMPLE_EVERY:-5}
WARM=${CAPSTONE_LOAD_WARMUP:-15}
TOL_MB=${CAPSTONE_LOAD_GROWTH_MB:-8}
TOL_PCT=${CAPSTONE_LOAD_GROWTH_PCT:-10}
read -r -a WEIGHTS <<< "${CAPSTONE_LOAD_WEIGHTS:-estimate_gap@40 bloat_report@5 xmin_holders@20 lock_snapshot@20 triage@15}"
APP=capstone-load
WAPP=capstone-load-writer
PLACE=$ROOT/lab/workload/place_order.sql

for v in CLIENTS SECS WRITERS JOBS EVERY WARM TOL_MB TOL_PCT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "load: $v must be a whole number (got '${!v}')" >&2; exit 2; }
done
[ "$CLIENTS" -ge 1 ] || { echo "load: CAPSTONE_LOAD_CLIENTS must be at least 1" >&2; exit 2; }
[ "$SECS" -ge 10 ] || { echo "load: CAPSTONE_LOAD_SECONDS must be at least 10" >&2; exit 2; }
[ "$EVERY" -ge 1 ] || { echo "load: CAPSTONE_LOAD_SAMPLE_EVERY must be at least 1" >&2; exit 2; }
[ "$JOBS" -ge 1 ] && [ "$JOBS" -le "$CLIENTS" ] || JOBS=1
NAMES=(); FILES=(); WTS=()
for w in "${WEIGHTS[@]}"; do
  name=${w%@*}; wt=${w#*@}
  [ -f "$HERE/load/$name.sql" ] || { echo "load: no script bench/load/$name.sql" >&2; exit 2; }
  [[ $wt =~ ^[0-9]+$ ]] && [ "$wt" -ge 1 ] || { echo "load: bad weight in '$w'" >&2; exit 2; }
  NAMES+=("$name"); FILES+=("$HERE/load/$name.sql"); WTS+=("$wt")
done

WORK=$(mktemp -d /tmp/capstone-load.XXXXXX)
chmod 755 "$WORK"
Q=("${PSQL[@]}" -d "$DB" -tA)
BG=()
cleanup() {
  local rc=$?
  for pid in "${BG[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${BG[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work files kept in $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- preflight ----------------------------------------------------------------------
"${Q[@]}" -c "SELECT 1 FROM shop.orders LIMIT 1" > /dev/null 2>&1 || {
  echo "load: no lab in $DB on $HOST:$PORT (SELECT * FROM capstone.lab_install(scale => 0.2))" >&2; exit 2; }
"${Q[@]}" -c "SELECT 1 FROM pg_extension WHERE extname = 'capstone'" 2>/dev/null | grep -q 1 || {
  echo "load: capstone is not installed in $DB" >&2; exit 2; }
SERVER_VERSION=$("${Q[@]}" -c "SHOW server_version")
MAX_CONN=$("${Q[@]}" -c "SHOW max_connections")
IN_USE=$("${Q[@]}" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
NEED=$((CLIENTS + WRITERS + 2))
[ $((MAX_CONN - IN_USE)) -ge "$NEED" ] || {
  echo "load: needs $NEED connections, $((MAX_CONN - IN_USE)) of max_connections $MAX_CONN are free" >&2; exit 2; }
# /proc must show the server's processes: its checkpointer must be a postgres process here
MYPID=$("${Q[@]}" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
if ! grep -q '^RssAnon:' "/proc/$MYPID/status" 2>/dev/null || [ "$(cat "/proc/$MYPID/comm" 2>/dev/null)" != postgres ]; then
  echo "load: the server's checkpointer (pid $MYPID) is not visible in /proc here; run on the server's machine (memory is read from /proc/<pid>/status)" >&2
  exit 2
fi
# the evidence row is refused by an extension whose evidence_gate_check predates gate 'reliability'
GATE_OK=yes
"${PSQL[@]}" -d "$DB" -tA -c "BEGIN" -c "INSERT INTO capstone.evidence (gate, payload) VALUES ('reliability', '{}')" \
  -c "ROLLBACK" > /dev/null 2>"$WORK/gate.err" || GATE_OK=no
if [ "$GATE_OK" = no ]; then
  echo "warning: capstone.evidence refuses gate 'reliability' here ($(grep -m1 -oE 'ERROR:.*' "$WORK/gate.err" || echo unknown));" >&2
  echo "         the run is measured and printed, but no evidence row can be stored (exit 3 if it passes)" >&2
fi
NT=$("${Q[@]}" -c "SELECT count(*) FROM shop.tenants")
NO=$("${Q[@]}" -c "SELECT max(order_id) FROM shop.orders")
PGB_VARS=(-D "ntenants=$NT" -D "norders=$NO")

# sample times: every $EVERY s while pgbench runs, and a last one 1 s before its end
TIMES=()
for ((t = EVERY; t < SECS - 1; t += EVERY)); do TIMES+=("$t"); done
TIMES+=("$((SECS - 1))")
BASE=""
for t in "${TIMES[@]:0:${#TIMES[@]}-1}"; do
  if [ "$t" -ge "$WARM" ]; then BASE=$t; break; fi
done
BASE_NOTE=""
if [ -z "$BASE" ]; then
  BASE=${TIMES[0]}
  BASE_NOTE=" (run too short for the ${WARM} s warm-up: growth measured from the first sample)"
fi
LAST=${TIMES[-1]}

SPEC=""
for i in "${!NAMES[@]}"; do SPEC+="${NAMES[$i]}@${WTS[$i]} "; done
echo "== load: capstone read-side functions, $CLIENTS clients x ${SECS}s (-j $JOBS), with place_order.sql at $WRITERS clients =="
echo "   PostgreSQL $SERVER_VERSION on $HOST:$PORT, database $DB ($NT tenants, $NO orders), max_connections $MAX_CONN; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   scripts (weight): ${SPEC% }"
echo "   memory: RssAnon of each '$APP' backend every ${EVERY}s; tolerance: per-backend growth from ${BASE}s to ${LAST}s at most max(${TOL_MB} MB, ${TOL_PCT}%)$BASE_NOTE"

# --- the run ------------------------------------------------------------------------
sleep_until() { # seconds after T0
  local d
  d=$(awk -v s="$T0" -v t="$1" -v n="$(date +%s.%N)" 'BEGIN { d = s + t - n; printf "%.3f", (d > 0 ? d : 0) }')
  sleep "$d"
}
# one memory sample: "t pid rss_anon_kB vm_hwm_kB" per load backend, and "t S in_pg_stat_activity measured"
sample_memory() {
  local t=$1 pids n=0 m=0 line
  pids=$("${Q[@]}" -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$APP' AND backend_type = 'client backend'" 2>/dev/null) || pids=""
  for pid in $pids; do
    n=$((n + 1))
    line=$(awk -v t="$t" -v pid="$pid" '/^RssAnon:/ { a = $2 } /^VmHWM:/ { h = $2 }
                 END { if (a != "") print t, pid, a, h }' "/proc/$pid/status" 2>/dev/null) || line=""
    [ -n "$line" ] && { echo "$line" >> "$WORK/mem.txt"; m=$((m + 1)); }
  done
  echo "$t S $n $m" >> "$WORK/mem.txt"
}

ARGS=()
for i in "${!FILES[@]}"; do ARGS+=(-f "${FILES[$i]}@${WTS[$i]}"); done
: > "$WORK/mem.txt"
T0=$(now_s)
PGAPPNAME=$APP "$BIN/pgbench" -h "$HOST" -p "$PORT" -U postgres -n -M simple -c "$CLIENTS" -j "$JOBS" -T "$SECS" \
  "${PGB_VARS[@]}" "${ARGS[@]}" -l --log-prefix="$WORK/load" "$DB" > "$WORK/load.out" 2> "$WORK/load.err" &
LOADPID=$!; BG+=("$LOADPID")
WRITERPID=""
if [ "$WRITERS" -gt 0 ]; then
  PGAPPNAME=$WAPP "$BIN/pgbench" -h "$HOST" -p "$PORT" -U postgres -n -M simple -c "$WRITERS" -j 1 -T "$SECS" \
    "${PGB_VARS[@]}" -f "$PLACE" -l --log-prefix="$WORK/writer" "$DB" > "$WORK/writer.out" 2> "$WORK/writer.err" &
  WRITERPID=$!; BG+=("$WRITERPID")
fi
(
  for t in "${TIMES[@]}"; do
    sleep_until "$t"
    kill -0 "$LOADPID" 2>/dev/null || break
    sample_memory "$t"
  done
) &
SAMPLER=$!; BG+=("$SAMPLER")
set +e
wait "$LOADPID"; LOAD_RC=$?
WRITER_RC=0
[ -n "$WRITERPID" ] && { wait "$WRITERPID"; WRITER_RC=$?; }
wait "$SAMPLER"
set -e
BG=()
echo "   ran $(elapsed "$T0" "$(now_s)") s; pgbench exit codes: load $LOAD_RC, writer $WRITER_RC"

# --- per function, from the per-transaction log ----------------------------------------
# log line: client_id transaction_no time_us|failed script_no epoch epoch_us (script_no from 0)
lines_of_errors() { # error lines in a pgbench output pair (client aborts, server errors, lost connections),
  # not counting pgbench's closing "Run was aborted" (the exit code carries that)
  cat "$1" "$2" 2>/dev/null | grep -iE '(^|[^a-z])error|fatal|panic|aborted|server closed|terminating' \
    | grep -vc 'Run was aborted' || true
}
: > "$WORK/lat.txt"
for f in "$WORK"/load.[0-9]*; do [ -f "$f" ] && cat "$f" >> "$WORK/lat.txt"; done
# aborted clients per script: "client N script S aborted in command ..."
grep -oE 'script [0-9]+ aborted' "$WORK/load.err" "$WORK/load.out" 2>/dev/null | awk '{ print $2 }' | sort | uniq -c \
  | awk '{ print $2, $1 }' > "$WORK/aborted.txt" || true
: > "$WORK/funcs.txt"
for i in "${!NAMES[@]}"; do
  stats=$(awk -v s="$i" '$4 == s && $3 ~ /^[0-9]+$/ { print $3 }' "$WORK/lat.txt" | sort -n |
    awk '{ a[NR] = $1; sum += $1 }
         END { if (NR == 0) { print "0 nan nan nan nan"; exit }
               k50 = int(NR * 0.50); if (k50 < NR * 0.50) k50++; if (k50 < 1) k50 = 1
               k99 = int(NR * 0.99); if (k99 < NR * 0.99) k99++; if (k99 < 1) k99 = 1
               printf "%d %.3f %.3f %.3f %.3f\n", NR, sum / NR / 1000, a[k50] / 1000, a[k99] / 1000, a[NR] / 1000 }')
  failed=$(awk -v s="$i" '$4 == s && $3 !~ /^[0-9]+$/ { n++ } END { print n + 0 }' "$WORK/lat.txt")
  aborted=$(awk -v s="$i" '$1 == s { print $2 }' "$WORK/aborted.txt"); aborted=${aborted:-0}
  read -r calls avg p50 p99 mx <<< "$stats"
  tps=$(awk -v n="$calls" -v s="$SECS" 'BEGIN { printf "%.1f", n / s }')
  echo "${NAMES[$i]} ${WTS[$i]} $calls $tps $avg $p50 $p99 $mx $failed $aborted" >> "$WORK/funcs.txt"
done
LOAD_ERR_LINES=$(lines_of_errors "$WORK/load.out" "$WORK/load.err")
# triage calls in which at least one probe hit its timeout (bench/load/triage.sql's NOTICE)
TRIAGE_TIMEOUTS=$( (grep -o 'a probe timed out under load' "$WORK/load.err" || true) | wc -l)
LOAD_FAILED=$(awk '{ s += $9 } END { print s + 0 }' "$WORK/funcs.txt")
LOAD_CALLS=$(awk '{ s += $3 } END { print s + 0 }' "$WORK/funcs.txt")
UNCALLED=$(awk '$3 == 0 { printf "%s%s", sep, $1; sep = ", " }' "$WORK/funcs.txt")
W_CALLS=0; W_FAILED=0; W_ERR_LINES=0; W_TPS=0; W_P50=nan; W_P99=nan
if [ "$WRITERS" -gt 0 ]; then
  read -r W_CALLS W_P50 W_P99 W_FAILED <<< "$(cat "$WORK"/writer.[0-9]* 2>/dev/null | awk '$3 ~ /^[0-9]+$/ { print $3; next } { f++ } END { print "F", f + 0 }' |
    sort -n | awk '$1 == "F" { f = $2; next } { a[++n] = $1 }
      END { if (n == 0) { print 0, "nan", "nan", f + 0; exit }
            k50 = int(n * 0.50); if (k50 < n * 0.50) k50++; if (k50 < 1) k50 = 1
            k99 = int(n * 0.99); if (k99 < n * 0.99) k99++; if (k99 < 1) k99 = 1
            printf "%d %.3f %.3f %d\n", n, a[k50] / 1000, a[k99] / 1000, f + 0 }')"
  W_TPS=$(awk -v n="$W_CALLS" -v s="$SECS" 'BEGIN { printf "%.1f", n / s }')
  W_ERR_LINES=$(lines_of_errors "$WORK/writer.out" "$WORK/writer.err")
fi

echo
printf '%-16s %6s %8s %9s %9s %9s %9s %7s %8s\n' function weight calls tps p50_ms p99_ms max_ms failed aborted
while read -r name wt calls tps avg p50 p99 mx failed aborted; do
  printf '%-16s %6s %8s %9s %9s %9s %9s %7s %8s\n' "$name" "$wt" "$calls" "$tps" "$p50" "$p99" "$mx" "$failed" "$aborted"
done < "$WORK/funcs.txt"
[ "$WRITERS" -gt 0 ] && printf '%-16s %6s %8s %9s %9s %9s %9s %7s %8s\n' "place_order (w)" "-" "$W_CALLS" "$W_TPS" "$W_P50" "$W_P99" "-" "$W_FAILED" "-"
echo "(tps = completed calls / ${SECS} s; latency from pgbench -l, nearest rank; failed = failed transactions in the log;"
echo " aborted = clients pgbench stopped on an error in that script; (w) = the write workload, $WRITERS clients)"
echo "error lines in pgbench output: load $LOAD_ERR_LINES, writer $W_ERR_LINES"
echo "triage calls with a probe cut short by its timeout (status 'timeout', not an error): $TRIAGE_TIMEOUTS"
if [ "$LOAD_ERR_LINES" -gt 0 ] || [ "$W_ERR_LINES" -gt 0 ]; then
  echo "first distinct error lines:"
  cat "$WORK/load.err" "$WORK/load.out" "$WORK/writer.err" "$WORK/writer.out" 2>/dev/null \
    | grep -iE '(^|[^a-z])error|fatal|panic|aborted|server closed|terminating' \
    | sed -E 's/client [0-9]+/client N/' | sort | uniq -c | sort -rn | head -n 8 | sed 's/^/  /'
fi

# --- memory -----------------------------------------------------------------------------
# per sample: t backends_seen backends_measured median_kB max_kB max_hwm_kB
awk '$2 != "S" { print $1, $3, $4 }' "$WORK/mem.txt" | sort -k1,1n -k2,2n | awk '
  function flush() { if (n) { m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2; printf "%s %d %.0f %d %d\n", cur, n, m, v[n], hw } }
  $1 != cur { flush(); cur = $1; n = 0; hw = 0 }
  { v[++n] = $2; if ($3 > hw) hw = $3 }
  END { flush() }' > "$WORK/memsum0.txt"
awk 'NR == FNR { if ($2 == "S") seen[$1] = $3; next } { print $1, seen[$1] + 0, $2, $3, $4, $5 }' \
  "$WORK/mem.txt" "$WORK/memsum0.txt" > "$WORK/memsum.txt"
# per backend growth from BASE to LAST: pid base_kB last_kB growth_kB growth_pct
awk -v b="$BASE" -v l="$LAST" '$2 != "S" && $1 == b { base[$2] = $3 } $2 != "S" && $1 == l { last[$2] = $3 }
  END { for (p in base) if (p in last) printf "%s %d %d %d %.2f\n", p, base[p], last[p], last[p] - base[p], (base[p] > 0 ? 100 * (last[p] - base[p]) / base[p] : 0) }' \
  "$WORK/mem.txt" | sort -k4,4n > "$WORK/growth.txt"
NGROW=$(wc -l < "$WORK/growth.txt")
read -r G_PID G_BASE G_LAST G_KB G_PCT <<< "$(tail -n 1 "$WORK/growth.txt")"
G_MED_KB=$(awk '{ v[NR] = $4 } END { if (NR) printf "%.0f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; else print 0 }' "$WORK/growth.txt")
G_MIN_KB=$(awk 'NR == 1 { print $4 }' "$WORK/growth.txt")
# backends beyond tolerance: growth > max(TOL_MB, TOL_PCT% of base)
OVER=$(awk -v mb="$TOL_MB" -v pct="$TOL_PCT" '{ lim = mb * 1024; p = $2 * pct / 100; if (p > lim) lim = p; if ($4 > lim) n++ } END { print n + 0 }' "$WORK/growth.txt")
mb() { awk -v k="$1" 'BEGIN { if (k == "" || k == "nan") print "nan"; else printf "%.1f", k / 1024 }'; }

echo
echo "memory of the '$APP' backends (RssAnon = private anonymous resident memory; VmHWM = peak RSS, includes shared buffers touched):"
printf '%6s %9s %9s %19s %16s %14s\n' t_s backends measured median_RssAnon_MB max_RssAnon_MB max_VmHWM_MB
while read -r t seen n med mx hw; do
  printf '%6s %9s %9s %19s %16s %14s\n' "$t" "$seen" "$n" "$(mb "$med")" "$(mb "$mx")" "$(mb "$hw")"
done < "$WORK/memsum.txt"
MEASURED_LAST=$(awk -v l="$LAST" '$1 == l { print $3 }' "$WORK/memsum.txt"); MEASURED_LAST=${MEASURED_LAST:-0}
if [ "$NGROW" -gt 0 ]; then
  echo "growth ${BASE}s -> ${LAST}s over $NGROW backends: largest +$(mb "$G_KB") MB (${G_PCT}%, pid $G_PID: $(mb "$G_BASE") -> $(mb "$G_LAST") MB)," \
       "median +$(mb "$G_MED_KB") MB, smallest $(mb "$G_MIN_KB") MB; beyond max(${TOL_MB} MB, ${TOL_PCT}%): $OVER"
else
  echo "growth: no backend was measured at both ${BASE}s and ${LAST}s"
fi

# --- verdict ------------------------------------------------------------------------------
REASONS=()
ERRORS=$((LOAD_FAILED + LOAD_ERR_LINES + W_FAILED + W_ERR_LINES))
[ "$ERRORS" -eq 0 ] || REASONS+=("$ERRORS errors (failed transactions $LOAD_FAILED + $W_FAILED, error lines $LOAD_ERR_LINES + $W_ERR_LINES)")
[ "$LOAD_RC" -eq 0 ] || REASONS+=("load pgbench exited $LOAD_RC")
[ "$WRITER_RC" -eq 0 ] || REASONS+=("writer pgbench exited $WRITER_RC")
[ -z "$UNCALLED" ] || REASONS+=("never called: $UNCALLED")
[ "$NGROW" -gt 0 ] || REASONS+=("memory not measured")
[ "$NGROW" -ge "$CLIENTS" ] || [ "$NGROW" -eq 0 ] || REASONS+=("memory measured for $NGROW of $CLIENTS backends")
[ "$OVER" -eq 0 ] || REASONS+=("$OVER backend(s) grew beyond max(${TOL_MB} MB, ${TOL_PCT}%), largest +$(mb "$G_KB") MB (${G_PCT}%)")
if [ ${#REASONS[@]} -eq 0 ]; then
  VERDICT="PASS: 0 errors in $LOAD_CALLS calls ($W_CALLS place_order transactions alongside); largest per-backend RssAnon growth ${BASE}s->${LAST}s +$(mb "$G_KB") MB (${G_PCT}%), within max(${TOL_MB} MB, ${TOL_PCT}%)"
  RC=0
else
  VERDICT="FAIL: $(IFS=';'; echo "${REASONS[*]}" | sed 's/;/; /g')"
  RC=1
fi
echo
echo "verdict: $VERDICT"

# --- evidence -----------------------------------------------------------------------------
if [ "$GATE_OK" = no ]; then
  echo "not stored: capstone.evidence here does not admit gate 'reliability' (evidence_gate_check)" >&2
  [ "$RC" -eq 0 ] && RC=3
  exit "$RC"
fi
chmod 644 "$WORK"/*.txt
EVID=$("${PSQL[@]}" -d "$DB" -tA -v clients="$CLIENTS" -v secs="$SECS" -v writers="$WRITERS" -v jobs="$JOBS" \
  -v spec="${SPEC% }" -v every="$EVERY" -v base="$BASE" -v last="$LAST" -v tol_mb="$TOL_MB" -v tol_pct="$TOL_PCT" \
  -v verdict="$VERDICT" -v pass="$([ "$RC" -eq 0 ] && echo true || echo false)" -v errors="$ERRORS" \
  -v load_err_lines="$LOAD_ERR_LINES" -v w_err_lines="$W_ERR_LINES" -v load_rc="$LOAD_RC" -v writer_rc="$WRITER_RC" \
  -v w_calls="$W_CALLS" -v w_tps="$W_TPS" -v w_p50="$W_P50" -v w_p99="$W_P99" -v w_failed="$W_FAILED" \
  -v g_kb="${G_KB:-0}" -v g_pct="${G_PCT:-0}" -v g_med_kb="$G_MED_KB" -v over="$OVER" -v ngrow="$NGROW" \
  -v triage_timeouts="$TRIAGE_TIMEOUTS" -v cores="$(nproc)" -v ntenants="$NT" -v norders="$NO" <<SQL
\set ON_ERROR_STOP on
CREATE TEMP TABLE f (name text, weight int, calls bigint, tps numeric, avg_ms text, p50_ms text, p99_ms text,
                     max_ms text, failed bigint, aborted bigint, seq serial);
\copy f (name, weight, calls, tps, avg_ms, p50_ms, p99_ms, max_ms, failed, aborted) FROM '$WORK/funcs.txt' WITH (DELIMITER ' ')
CREATE TEMP TABLE m (t int, seen int, n int, med_kb numeric, max_kb numeric, hwm_kb numeric);
\copy m FROM '$WORK/memsum.txt' WITH (DELIMITER ' ')
CREATE TEMP VIEW fv AS
SELECT name, weight, calls, tps, nullif(avg_ms, 'nan')::numeric AS avg_ms, nullif(p50_ms, 'nan')::numeric AS p50_ms,
       nullif(p99_ms, 'nan')::numeric AS p99_ms, nullif(max_ms, 'nan')::numeric AS max_ms, failed, aborted, seq FROM f;
INSERT INTO capstone.evidence (gate, label, query, settings, payload)
SELECT 'reliability', 'load: read-side functions under ' || :'clients' || ' clients',
       'pgbench -n -M simple -c ' || :'clients' || ' -j ' || :'jobs' || ' -T ' || :'secs' || ' ' || :'spec'
         || '  +  place_order.sql at ' || :'writers' || ' clients',
       jsonb_build_object('clients', :'clients'::int, 'seconds', :'secs'::int, 'pgbench_threads', :'jobs'::int,
                          'writer_clients', :'writers'::int, 'weights', :'spec', 'cores', :'cores'::int,
                          'max_connections', current_setting('max_connections')::int,
                          'lab_tenants', :'ntenants'::bigint, 'lab_orders', :'norders'::bigint,
                          'memory_sample_every_s', :'every'::int, 'growth_from_s', :'base'::int, 'growth_to_s', :'last'::int,
                          'tolerance', format('per-backend RssAnon growth <= max(%s MB, %s%%)', :'tol_mb', :'tol_pct')),
       jsonb_build_object(
         'summary', format('%s clients called capstone''s read-side functions for %s s in one pgbench run (weights %s), '
                           'while lab/workload/place_order.sql ran at %s clients (%s TPS). %s calls in all, %s errors. '
                           'Private memory (RssAnon) of the %s calling backends, sampled every %s s: median %s MB, max %s MB at %s s; '
                           'from %s s to %s s the largest per-backend growth was %s MB (%s%%), the median %s MB '
                           '(tolerance: max(%s MB, %s%%) per backend).',
                           :'clients', :'secs', :'spec', :'writers', :'w_tps', (SELECT sum(calls) FROM f), :'errors',
                           :'clients', :'every',
                           (SELECT round(med_kb / 1024, 1) FROM m WHERE t = :'last'::int),
                           (SELECT round(max_kb / 1024, 1) FROM m WHERE t = :'last'::int), :'last',
                           :'base', :'last', round(:'g_kb'::numeric / 1024, 2), :'g_pct', round(:'g_med_kb'::numeric / 1024, 2),
                           :'tol_mb', :'tol_pct'),
         'table', (SELECT jsonb_agg(jsonb_build_object('function', name, 'weight', weight, 'calls', calls, 'tps', tps,
                                                       'p50 ms', p50_ms, 'p99 ms', p99_ms, 'max ms', max_ms,
                                                       'errors', failed + aborted) ORDER BY seq) FROM fv)
                  || CASE WHEN :'writers'::int > 0 THEN jsonb_build_array(jsonb_build_object(
                       'function', 'place_order.sql (writer)', 'weight', NULL, 'calls', :'w_calls'::bigint,
                       'tps', :'w_tps'::numeric, 'p50 ms', nullif(:'w_p50', 'nan')::numeric,
                       'p99 ms', nullif(:'w_p99', 'nan')::numeric, 'max ms', NULL, 'errors', :'w_failed'::bigint))
                     ELSE '[]'::jsonb END,
         'functions', (SELECT jsonb_agg(to_jsonb(fv) - 'seq' ORDER BY seq) FROM fv),
         'writer', jsonb_build_object('clients', :'writers'::int, 'transactions', :'w_calls'::bigint, 'tps', :'w_tps'::numeric,
                                      'p50_ms', nullif(:'w_p50', 'nan')::numeric, 'p99_ms', nullif(:'w_p99', 'nan')::numeric,
                                      'failed', :'w_failed'::bigint, 'error_lines', :'w_err_lines'::int, 'exit', :'writer_rc'::int),
         'errors', jsonb_build_object('total', :'errors'::int, 'load_error_lines', :'load_err_lines'::int,
                                      'load_exit', :'load_rc'::int,
                                      'triage_calls_with_probe_timeout', :'triage_timeouts'::int),
         'memory', jsonb_build_object(
             'samples', (SELECT jsonb_agg(jsonb_build_object('t_s', t, 'backends', seen, 'measured', n,
                                                             'median_rss_anon_kb', med_kb, 'max_rss_anon_kb', max_kb,
                                                             'max_vm_hwm_kb', hwm_kb) ORDER BY t) FROM m),
             'growth_backends', :'ngrow'::int, 'max_growth_kb', :'g_kb'::bigint, 'max_growth_pct', :'g_pct'::numeric,
             'median_growth_kb', :'g_med_kb'::bigint, 'backends_beyond_tolerance', :'over'::int),
         'pass', :'pass'::boolean,
         'chart', jsonb_build_object('title', format('RssAnon of the %s load backends over the run', :'clients'), 'kind', 'line',
                                     'x_label', 'seconds into the run', 'y_label', 'RssAnon, MB',
                                     'series', jsonb_build_array(
                                        jsonb_build_object('name', 'median', 'points',
                                          (SELECT jsonb_agg(jsonb_build_array(t, round(med_kb / 1024, 2)) ORDER BY t) FROM m)),
                                        jsonb_build_object('name', 'max', 'points',
                                          (SELECT jsonb_agg(jsonb_build_array(t, round(max_kb / 1024, 2)) ORDER BY t) FROM m)))),
         'verdict', :'verdict')
RETURNING id;
SQL
) || { echo "load: could not store the evidence row" >&2; [ "$RC" -eq 0 ] && RC=3; exit "$RC"; }
echo "stored as capstone.evidence id $(echo "$EVID" | grep -E '^[0-9]+$' | head -n1) (gate 'reliability', label 'load: read-side functions under $CLIENTS clients')"
exit "$RC"
