#!/usr/bin/env bash
# Pooling gate, measured: a connection storm that direct connections cannot absorb and
# PgBouncer transaction mode can, and a pool-size sweep that finds the knee and checks
# capstone.pool_size()'s recommendation against it.
#
#   bench/pooling.sh            (against the lab: scripts/lab.sh start)
#
# Phases, each bounded in time:
#   1. a short pooled load while capstone.pool_size() samples it -> the recommended pool
#   2. direct storm:  pgbench -C -c 1000 -j 2 -S against max_connections (100), then the
#      same without -C (a client fleet holding its connections)
#   3. pooled storm:  the same two runs through PgBouncer with default_pool_size from (1),
#      sampling SHOW POOLS / SHOW STATS on the admin console and pg_stat_activity meanwhile
#   4. sweep: 200 clients through PgBouncer at pool sizes 1 2 3 4 6 8 16 32 64, two passes in
#      opposite order; the knee is the smallest size whose mean TPS reaches 90% of the best
#      mean, and, less noisy, N* = X_max x W_pool (operational analysis, from SHOW STATS);
#      is the recommendation within 1.5x of them?
# Prints the tables and stores them in capstone.evidence (gate 'pooling'). Every client it
# starts is killed on exit, and PgBouncer's pool settings are restored.
#
# Settings: CAPSTONE_PG, CAPSTONE_LAB_PORT, CAPSTONE_POOL_PORT (bench/common.sh), and
#   CAPSTONE_STORM_CLIENTS (1000)  CAPSTONE_STORM_SECONDS (15, at most 20)
#   CAPSTONE_SWEEP_CLIENTS (200)   CAPSTONE_SWEEP_SECONDS (15, at most 20)
#   CAPSTONE_SWEEP_SIZES ("1 2 3 4 6 8 16 32 64": from 1, so the knee is never the first size)  CAPSTONE_SWEEP_PASSES (2, alternating order)
#   CAPSTONE_BENCH_SCALE (10, pgbench -i scale)
#   CAPSTONE_POOL_SAMPLE (10 s, the pool_size window)
#   CAPSTONE_EVIDENCE_DB (also copy the evidence rows into this database's capstone.evidence)
set -euo pipefail
. "$(dirname "$0")/common.sh"

STORM_CLIENTS=${CAPSTONE_STORM_CLIENTS:-1000}
STORM_S=${CAPSTONE_STORM_SECONDS:-15}
SWEEP_CLIENTS=${CAPSTONE_SWEEP_CLIENTS:-200}
SWEEP_S=${CAPSTONE_SWEEP_SECONDS:-15}
SWEEP_SIZES=(${CAPSTONE_SWEEP_SIZES:-1 2 3 4 6 8 16 32 64})
SWEEP_PASSES=${CAPSTONE_SWEEP_PASSES:-2}
SCALE=${CAPSTONE_BENCH_SCALE:-10}
SAMPLE_S=${CAPSTONE_POOL_SAMPLE:-10}
DB=bench_pool
[ "$STORM_S" -le 20 ] || { echo "CAPSTONE_STORM_SECONDS must be at most 20" >&2; exit 2; }
[ "$SWEEP_S" -le 20 ] || { echo "CAPSTONE_SWEEP_SECONDS must be at most 20" >&2; exit 2; }

# runuser/sudo reset the soft open-file limit; 1000 clients need more than 1024
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -gt $((STORM_CLIENTS + 100)) ] \
  || echo "warning: open-file limit $(ulimit -n) is below ${STORM_CLIENTS} clients" >&2

WORK=$(mktemp -d /tmp/capstone-pooling.XXXXXX)
chmod 755 "$WORK"
ADMIN=("$BIN/psql" -X -q -h "$HOST" -p "$POOL_PORT" -U postgres -d pgbouncer)
SQL=("${PSQL[@]}" -d "$DB")
POOLBENCH=("$BIN/pgbench" -h "$HOST" -p "$POOL_PORT" -U postgres)
BG=()

admin() { "${ADMIN[@]}" -tA -c "$1"; }
# one value of SHOW CONFIG
config_value() { "${ADMIN[@]}" -tA -F'|' -c "SHOW CONFIG" | awk -F'|' -v k="$1" '$1 == k { print $2; exit }'; }

ORIG_POOL=""; ORIG_IDLE=""
cleanup() {
  local rc=$?
  for pid in "${BG[@]}"; do
    kill -INT "$pid" 2>/dev/null || true
  done
  sleep 0.5
  for pid in "${BG[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$ORIG_POOL" ]; then
    admin "SET default_pool_size = $ORIG_POOL" >/dev/null 2>&1 || true
    admin "SET server_idle_timeout = $ORIG_IDLE" >/dev/null 2>&1 || true
    admin "RECONNECT" >/dev/null 2>&1 || true
  fi
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work files kept in $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- preflight and setup ------------------------------------------------------------
"${PSQL[@]}" -d postgres -tAc "SELECT 1" >/dev/null \
  || { echo "no server on $HOST:$PORT (scripts/lab.sh start)" >&2; exit 1; }
admin "SHOW VERSION" >/dev/null \
  || { echo "no PgBouncer admin console on $HOST:$POOL_PORT" >&2; exit 1; }
BOUNCER_VERSION=$(admin "SHOW VERSION")
ORIG_POOL=$(config_value default_pool_size)
ORIG_IDLE=$(config_value server_idle_timeout)
MAX_CONN=$("${PSQL[@]}" -d postgres -tAc "SHOW max_connections")
POOL_MODE=$(config_value pool_mode)
[ "$POOL_MODE" = transaction ] || echo "warning: PgBouncer pool_mode is $POOL_MODE, not transaction" >&2
# idle server connections give their slots back quickly between phases
admin "SET server_idle_timeout = 5" >/dev/null
admin "RECONNECT" >/dev/null
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
"${PGBENCH[@]}" -i -q -s "$SCALE" "$DB" >/dev/null 2>&1
"${SQL[@]}" -c "CREATE EXTENSION IF NOT EXISTS capstone"
"${SQL[@]}" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" 2>/dev/null \
  || echo "note: pg_stat_statements is not available; pool_size uses pg_stat_activity alone"

# Wait until no other client backends hold slots on the server (PgBouncer's idle
# server connections are closed by RECONNECT / server_idle_timeout).
drain() {
  local n=0
  admin "RECONNECT" >/dev/null
  for _ in $(seq 1 100); do
    n=$("${PSQL[@]}" -d postgres -tAc "SELECT count(*) FROM pg_stat_activity
          WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
    [ "$n" -le 0 ] && return 0
    sleep 0.1
  done
  echo "note: $n client backends still connected before the next phase" >&2
}

# -C storms leave client sockets in TIME_WAIT; let them clear before the next one
ports_settle() {
  local tw
  for _ in $(seq 1 60); do
    tw=$(ss -tan state time-wait 2>/dev/null | wc -l)
    [ "$tw" -lt 12000 ] && return 0
    sleep 1
  done
}

# p99 (ms) of a pgbench -l log set: third field is the latency in microseconds
p99_of() { latency_pct_ms 99 "$1".*; }

# sampler of the server's backends on one persistent connection (a superuser may take
# the reserved slots, so it keeps working while the storm exhausts the rest)
# (both set LAST_BG to the sampler's pid; cleanup() kills whatever is left in BG)
start_activity_sampler() { # $1 = output file
  printf '%s\n' "SELECT 'S', extract(epoch FROM clock_timestamp())::numeric(12,1),
      count(*) FILTER (WHERE backend_type = 'client backend'),
      count(*) FILTER (WHERE backend_type = 'client backend' AND state = 'active')
    FROM pg_stat_activity WHERE pid <> pg_backend_pid();" '\watch 1' \
    | "${PSQL[@]}" -d postgres -tA -F' ' > "$1" 2>&1 &
  LAST_BG=$!; BG+=("$LAST_BG")
}
# SHOW POOLS every second on the admin console
start_pools_sampler() { # $1 = output file
  printf '%s\n' "SHOW POOLS;" '\watch 1' | "${ADMIN[@]}" -A -F'|' > "$1" 2>&1 &
  LAST_BG=$!; BG+=("$LAST_BG")
}
stop_sampler() { kill -INT "$1" 2>/dev/null || true; sleep 0.3; kill -KILL "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# SHOW POOLS samples of our database: "samples max_cl_waiting max_cl_active max_sv_active max_maxwait_ms"
pools_summary() {
  awk -F'|' -v db="$DB" '
    $1 == "database" { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == db && ("cl_waiting" in col) {
      n++; w = $(col["cl_waiting"]) + 0; a = $(col["cl_active"]) + 0; s = $(col["sv_active"]) + 0
      mw = $(col["maxwait"]) * 1000 + (("maxwait_us" in col) ? $(col["maxwait_us"]) / 1000 : 0)
      if (w > mw_w) mw_w = w; if (a > ma) ma = a; if (s > ms) ms = s; if (mw > mm) mm = mw
      sw += w; ss += s
    }
    END { if (n) printf "%d %d %d %d %.1f %.1f %.1f\n", n, mw_w, ma, ms, mm, sw / n, ss / n; else print "0 0 0 0 0 0 0" }' "$1"
}
# pg_stat_activity samples: "samples max_backends mean_backends max_active"
activity_summary() {
  awk '$1 == "S" { n++; if ($3 > mb) mb = $3; sb += $3; if ($4 > ma) ma = $4 }
       END { if (n) printf "%d %d %.1f %d\n", n, mb, sb / n, ma; else print "0 0 0 0" }' "$1"
}
# SHOW STATS totals of our database: "xact_count xact_time_us wait_time_us"
stats_totals() {
  "${ADMIN[@]}" -A -F'|' -c "SHOW STATS" | awk -F'|' -v db="$DB" '
    $1 == "database" { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == db { print $(col["total_xact_count"]), $(col["total_xact_time"]), $(col["total_wait_time"]) }'
}

# PgBouncer's view of Little's law from two SHOW STATS readings and the run length:
# a server connection is held for (xact_time - wait_time) per transaction (PgBouncer
# starts the transaction clock when the client's query arrives, so its xact_time
# includes the wait), and L_pool = lambda x that. Prints "W_pool_ms L_pool".
pool_little() { # $1 = "x0 t0 w0 x1 t1 w1", $2 = seconds
  echo "$1" | awk -v s="$2" '{
      dx = $4 - $1; dt = ($5 - $2) - ($6 - $3)
      if (dx > 0 && NF == 6) printf "%.3f %.2f\n", dt / dx / 1000, dt / s / 1e6; else print "n/a n/a" }'
}

# one pgbench run; prints "tps avg_ms p99_ms aborted too_many exit_code tx"
run_pgbench() { # $1 = label, $2 = port, rest = pgbench options
  local label=$1 port=$2; shift 2
  local out=$WORK/$label
  set +e
  "$BIN/pgbench" -h "$HOST" -p "$port" -U postgres -n -S -M simple -j 2 -l --log-prefix="$out.log" \
    "$@" "$DB" > "$out.out" 2> "$out.err"
  local rc=$?
  set -e
  local tps avg tx aborted toomany
  # a run refused at once prints no summary: every grep here may find nothing
  tps=$( (grep -oE '^tps = [0-9.]+' "$out.out" || true) | head -n1 | awk '{ printf "%.0f", $3 }')
  avg=$( (grep -oE 'latency average = [0-9.]+' "$out.out" || true) | awk '{ print $4 }')
  tx=$( (grep -oE 'number of transactions actually processed: [0-9]+' "$out.out" || true) | awk '{ print $NF }')
  # with -C each refused client prints "client N aborted while establishing connection";
  # without -C pgbench stops at the first refusal ("could not create connection")
  # count occurrences, not lines: two threads' messages can share a line
  aborted=$( (grep -oE 'aborted while establishing connection|could not create connection' "$out.err" || true) | wc -l)
  toomany=$( (grep -o 'too many clients' "$out.err" || true) | wc -l)
  echo "${tps:-0} ${avg:-n/a} $(p99_of "$out.log") ${aborted:-0} ${toomany:-0} $rc ${tx:-0}"
}

T0=$(now_s)
echo "== pooling gate: PostgreSQL $MAJOR on $HOST:$PORT (max_connections $MAX_CONN), $BOUNCER_VERSION on :$POOL_PORT ($POOL_MODE); $(nproc) CPUs, load average $(cut -d" " -f1-3 /proc/loadavg) =="

# --- 1. the recommendation, measured under a representative pooled load --------------
echo
echo "-- 1. capstone.pool_size(sample => '$SAMPLE_S s') while ${SWEEP_CLIENTS} clients run through PgBouncer (pool $ORIG_POOL)"
drain
"${POOLBENCH[@]}" -n -S -M simple -c "$SWEEP_CLIENTS" -j 2 -T $((SAMPLE_S + 3)) "$DB" > "$WORK/warm.out" 2>&1 &
WARM=$!; BG+=($WARM)
sleep 2
"${SQL[@]}" -c "SELECT term, round(value::numeric, 3) AS value, unit FROM capstone.pool_size(sample => '$SAMPLE_S s')
                 WHERE section IN ('cores', 'littles_law', 'recommendation')" | tee "$WORK/pool_size.txt"
wait "$WARM" || true
REC=$(awk -F'|' '$1 ~ /default_pool_size/ { gsub(/ /, "", $2); printf "%d", $2 }' "$WORK/pool_size.txt")
REC_EVIDENCE=$(awk -F'|' '$1 ~ /evidence_id/ { gsub(/ /, "", $2); printf "%d", $2 }' "$WORK/pool_size.txt")
REC_BASIS=$("${SQL[@]}" -tAc "SELECT payload -> 'recommendation' ->> 'basis' FROM capstone.evidence WHERE id = ${REC_EVIDENCE:-0}")
[ -n "$REC" ] && [ "$REC" -gt 0 ] || { echo "pool_size() gave no default_pool_size" >&2; exit 1; }
echo "recommended default_pool_size = $REC (basis $REC_BASIS, evidence $REC_EVIDENCE)"

# --- 2 + 3. the storm, direct then pooled ---------------------------------------------
declare -A R
storm() { # $1 = label, $2 = port, $3 = connect mode ("-C" or "")
  local label=$1 port=$2 mode=$3 act pools st0 st1
  drain
  [ "$mode" = "-C" ] && ports_settle
  start_activity_sampler "$WORK/$label.act"; act=$LAST_BG
  start_pools_sampler "$WORK/$label.pools"; pools=$LAST_BG
  st0=$(stats_totals)
  # shellcheck disable=SC2086
  R[$label]=$(run_pgbench "$label" "$port" $mode -c "$STORM_CLIENTS" -T "$STORM_S")
  st1=$(stats_totals)
  stop_sampler "$act"; stop_sampler "$pools"
  R[$label.act]=$(activity_summary "$WORK/$label.act")
  R[$label.pools]=$(pools_summary "$WORK/$label.pools")
  R[$label.stats]="$st0 $st1"
}

echo
echo "-- 2. direct storm: $STORM_CLIENTS clients against max_connections $MAX_CONN, ${STORM_S}s"
storm direct_C "$PORT" -C
storm direct "$PORT" ""
echo "-- 3. pooled storm: the same through PgBouncer, default_pool_size = $REC"
admin "SET default_pool_size = $REC" >/dev/null
storm pooled_C "$POOL_PORT" -C
storm pooled "$POOL_PORT" ""

echo
printf '%-31s %8s %8s %9s %9s %10s %9s %5s %13s %11s %12s %11s\n' run xacts tps avg_ms p99_ms conn_fail too_many exit backends_max active_max cl_wait_max maxwait_ms
for label in direct_C direct pooled_C pooled; do
  read -r tps avg p99 aborted toomany rc tx <<< "${R[$label]}"
  read -r _ bmax _ amax <<< "${R[$label.act]}"
  read -r pn wmax _ _ mw _ _ <<< "${R[$label.pools]}"
  case $label in
    direct_C) name="direct, reconnect (-C)" ;;
    direct) name="direct, persistent" ;;
    pooled_C) name="PgBouncer pool $REC, -C" ;;
    pooled) name="PgBouncer pool $REC, persistent" ;;
  esac
  if [[ $label == pooled* ]]; then pw=$wmax; pm=$mw; else pw=-; pm=-; fi
  printf '%-31s %8s %8s %9s %9s %10s %9s %5s %13s %11s %12s %11s\n' "$name" "$tx" "$tps" "$avg" "$p99" "$aborted" "$toomany" "$rc" "$bmax" "$amax" "$pw" "$pm"
done
echo "(conn_fail = 'aborted while establishing connection' / 'could not create connection' lines on"
echo " pgbench's stderr: its failed-transaction count stays 0 for those, its exit code is 2 (-C) or 1."
echo " Without -C pgbench stops at the first refusal, so that run has no TPS at all.)"
for label in pooled_C pooled; do
  read -r w l <<< "$(pool_little "${R[$label.stats]}" "$STORM_S")"
  echo "PgBouncer's Little's law, $label: a server connection is held ${w} ms per transaction, L_pool = ${l} of pool $REC"
done
echo "SHOW POOLS during the pooled persistent storm, one line per second (cl_active cl_waiting sv_active sv_idle maxwait_us):"
awk -F'|' -v db="$DB" '$1 == "database" { for (i = 1; i <= NF; i++) col[$i] = i; next }
  $1 == db && ("cl_waiting" in col) { printf "  %s %s %s %s %s\n", $(col["cl_active"]), $(col["cl_waiting"]), $(col["sv_active"]), $(col["sv_idle"]), (("maxwait_us" in col) ? $(col["maxwait"]) * 1000000 + $(col["maxwait_us"]) : $(col["maxwait"]) * 1000000) }' \
  "$WORK/pooled.pools" | head -n 20 | tee "$WORK/pooled.pools.lines"

# --- 4. the sweep ---------------------------------------------------------------------
# Two passes in opposite order (2..64, then 64..2): on a shared host the CPU left to us
# drifts, and an A-B-B-A order cancels a linear drift. The knee comes from the mean.
echo
echo "-- 4. pool-size sweep: $SWEEP_CLIENTS clients through PgBouncer, ${SWEEP_S}s per size, $SWEEP_PASSES passes (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%5s %6s %9s %9s %9s %12s %12s %12s %10s\n' pass pool tps avg_ms p99_ms cl_wait_avg sv_active_avg W_pool_ms L_pool
SWEEP_ROWS=()
for pass in $(seq 1 "$SWEEP_PASSES"); do
  if [ $((pass % 2)) -eq 1 ]; then order=("${SWEEP_SIZES[@]}"); else
    order=(); for ((k = ${#SWEEP_SIZES[@]} - 1; k >= 0; k--)); do order+=("${SWEEP_SIZES[$k]}"); done; fi
  for n in "${order[@]}"; do
    admin "SET default_pool_size = $n" >/dev/null
    drain
    start_pools_sampler "$WORK/sweep$pass.$n.pools"; pools=$LAST_BG
    st0=$(stats_totals)
    r=$(run_pgbench "sweep$pass.$n" "$POOL_PORT" -c "$SWEEP_CLIENTS" -T "$SWEEP_S")
    st1=$(stats_totals)
    stop_sampler "$pools"
    read -r tps avg p99 _ _ _ _ <<< "$r"
    read -r _ _ _ _ _ wavg savg <<< "$(pools_summary "$WORK/sweep$pass.$n.pools")"
    read -r wpool lpool <<< "$(pool_little "$st0 $st1" "$SWEEP_S")"
    printf '%5s %6s %9s %9s %9s %12s %12s %12s %10s\n' "$pass" "$n" "$tps" "$avg" "$p99" "$wavg" "$savg" "$wpool" "$lpool"
    SWEEP_ROWS+=("$n $tps $avg $p99 $wavg $savg $wpool $lpool $pass")
  done
done
printf '%s\n' "${SWEEP_ROWS[@]}" > "$WORK/sweep.tsv"
# mean per pool size, in pool order: "pool tps avg_ms p99_ms spread_pct"
awk '{ n[$1]++; t[$1] += $2; a[$1] += $3; p[$1] += $4
       if (!($1 in lo) || $2 < lo[$1]) lo[$1] = $2; if ($2 > hi[$1]) hi[$1] = $2 }
     END { for (k in n) printf "%d %.0f %.3f %.2f %.0f\n", k, t[k] / n[k], a[k] / n[k], p[k] / n[k], 100 * (hi[k] - lo[k]) / (t[k] / n[k]) }' \
  "$WORK/sweep.tsv" | sort -n > "$WORK/sweep.mean"
echo
echo "mean of $SWEEP_PASSES passes (load average after: $(cut -d' ' -f1-3 /proc/loadavg)):"
printf '%6s %9s %9s %9s %10s\n' pool tps avg_ms p99_ms spread_%
while read -r n tps avg p99 spread; do printf '%6s %9s %9s %9s %10s\n' "$n" "$tps" "$avg" "$p99" "$spread"; done < "$WORK/sweep.mean"
read -r KNEE PEAK BEST <<< "$(awk '{ t[NR] = $2; p[NR] = $1; if ($2 > best) { best = $2; peak = $1 } }
  END { for (i = 1; i <= NR; i++) if (t[i] >= 0.9 * best) { print p[i], peak, best; exit } }' "$WORK/sweep.mean")"
RATIO=$(awk -v a="$REC" -v b="${KNEE:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print 0 }')
WITHIN=$(awk -v r="$RATIO" 'BEGIN { print (r >= 1 / 1.5 && r <= 1.5) ? "yes" : "no" }')
# The knee of operational analysis: N* = X_max x W_min, the best throughput times the time
# a server connection is held per transaction when the pool is too small for queueing
# inside the server (PgBouncer's SHOW STATS at the smallest pool). Below N* the pool limits
# throughput; above it something else does. It uses all the runs, not one noisy maximum.
WMIN=$(awk -v n="${SWEEP_SIZES[0]}" '$1 == n && $7 != "n/a" { s += $7; c++ } END { if (c) printf "%.3f", s / c; else print 0 }' "$WORK/sweep.tsv")
NSTAR=$(awk -v x="$BEST" -v w="$WMIN" 'BEGIN { printf "%.1f", x * w / 1000 }')
RATIO_NSTAR=$(awk -v a="$REC" -v b="$NSTAR" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print 0 }')
WITHIN_NSTAR=$(awk -v r="$RATIO_NSTAR" 'BEGIN { print (r >= 1 / 1.5 && r <= 1.5) ? "yes" : "no" }')
echo
echo "knee (smallest pool reaching 90% of the best mean TPS, $BEST): $KNEE; best mean TPS at pool $PEAK"
echo "knee by operational analysis N* = X_max x W_pool at pool ${SWEEP_SIZES[0]} = $BEST/s x $WMIN ms = $NSTAR"
echo "capstone.pool_size() recommended $REC ($REC_BASIS): $RATIO x the TPS knee -> within 1.5x: $WITHIN;" \
  "$RATIO_NSTAR x N* -> within 1.5x: $WITHIN_NSTAR"
[ "$KNEE" != "${SWEEP_SIZES[0]}" ] || echo "note: the knee is the sweep's smallest pool; start the sweep lower (CAPSTONE_SWEEP_SIZES)"
# goal, fixed before the run: the recommendation within 1.5x of N* (the verdict's knee), and
# of the 90%-TPS knee as a second reading
bench_row "pool_size() recommendation ÷ N* = X_max × W_pool" "N* $NSTAR ($BEST TPS × $WMIN ms)" "pool $REC" \
  "$RATIO_NSTAR" "within 1.5×" "$([ "$WITHIN_NSTAR" = yes ] && echo met || echo missed)"
bench_row "pool_size() recommendation ÷ 90%-TPS knee" "knee $KNEE (best $BEST TPS at $PEAK)" "pool $REC" \
  "$RATIO" "within 1.5×" "$([ "$WITHIN" = yes ] && echo met || echo missed)"

# --- evidence -------------------------------------------------------------------------
{
  for label in direct_C direct pooled_C pooled; do
    echo "storm $label ${R[$label]} ${R[$label.act]} ${R[$label.pools]} $(pool_little "${R[$label.stats]}" "$STORM_S")"
  done
  for row in "${SWEEP_ROWS[@]}"; do echo "sweep $row"; done
  sed 's/^/mean /' "$WORK/sweep.mean"
} > "$WORK/evidence.txt"
chmod 644 "$WORK/evidence.txt"
EVID=$("${SQL[@]}" -tA -v rec="$REC" -v knee="$KNEE" -v peak="$PEAK" -v ratio="$RATIO" -v within="$WITHIN" \
  -v bouncer="$BOUNCER_VERSION" -v clients="$STORM_CLIENTS" -v storm_s="$STORM_S" -v sweep_clients="$SWEEP_CLIENTS" \
  -v sweep_s="$SWEEP_S" -v passes="$SWEEP_PASSES" -v nstar="$NSTAR" -v wmin="$WMIN" \
  -v ratio_nstar="$RATIO_NSTAR" -v within_nstar="$WITHIN_NSTAR" -v rec_evidence="${REC_EVIDENCE:-0}" -v basis="$REC_BASIS" <<SQL
CREATE TEMP TABLE raw (line text);
\copy raw FROM '$WORK/evidence.txt'
WITH f AS (SELECT string_to_array(line, ' ') AS a FROM raw),
d AS (
  SELECT jsonb_build_object(
         'recommended_pool', :'rec'::int, 'recommendation_basis', :'basis',
         'pool_size_evidence_id', :'rec_evidence'::bigint,
         'knee', :'knee'::int, 'best_tps_pool', :'peak'::int,
         'ratio_to_knee', :'ratio'::numeric, 'within_1_5x', :'within' = 'yes',
         'knee_operational', :'nstar'::numeric, 'w_pool_min_ms', :'wmin'::numeric,
         'ratio_to_knee_operational', :'ratio_nstar'::numeric, 'within_1_5x_operational', :'within_nstar' = 'yes',
         'storm', (SELECT jsonb_object_agg(a[2], jsonb_build_object(
             'tps', a[3]::numeric, 'avg_ms', nullif(a[4], 'n/a')::numeric, 'p99_ms', nullif(a[5], 'n/a')::numeric,
             'connection_failures', a[6]::int, 'too_many_clients_lines', a[7]::int, 'pgbench_exit', a[8]::int,
             'transactions', a[9]::bigint, 'backends_max', a[11]::int, 'backends_mean', a[12]::numeric,
             'active_max', a[13]::int, 'show_pools_samples', a[14]::int, 'cl_waiting_max', a[15]::int,
             'cl_active_max', a[16]::int, 'sv_active_max', a[17]::int, 'maxwait_ms_max', a[18]::numeric,
             'cl_waiting_avg', a[19]::numeric, 'sv_active_avg', a[20]::numeric,
             'w_pool_ms', nullif(a[21], 'n/a')::numeric, 'l_pool', nullif(a[22], 'n/a')::numeric))
             FROM f WHERE a[1] = 'storm'),
         'sweep', (SELECT jsonb_agg(jsonb_build_object(
             'pool', a[2]::int, 'tps', a[3]::numeric, 'avg_ms', nullif(a[4], 'n/a')::numeric,
             'p99_ms', nullif(a[5], 'n/a')::numeric, 'cl_waiting_avg', a[6]::numeric, 'sv_active_avg', a[7]::numeric,
             'w_pool_ms', nullif(a[8], 'n/a')::numeric, 'l_pool', nullif(a[9], 'n/a')::numeric, 'pass', a[10]::int)
             ORDER BY a[10]::int, a[2]::int)
             FROM f WHERE a[1] = 'sweep'),
         'sweep_mean', (SELECT jsonb_agg(jsonb_build_object(
             'pool', a[2]::int, 'tps', a[3]::numeric, 'avg_ms', a[4]::numeric, 'p99_ms', a[5]::numeric,
             'spread_pct', a[6]::numeric) ORDER BY a[2]::int)
             FROM f WHERE a[1] = 'mean')) AS p,
         -- what capstone.report() renders: the storm as a table, the sweep as a chart
         (SELECT jsonb_agg(jsonb_build_object(
             'run', CASE a[2] WHEN 'direct_C' THEN 'direct, reconnect (-C)' WHEN 'direct' THEN 'direct, persistent'
                             WHEN 'pooled_C' THEN 'PgBouncer, -C' ELSE 'PgBouncer, persistent' END,
             'transactions', a[9]::bigint, 'tps', a[3]::numeric, 'p99_ms', nullif(a[5], 'n/a')::numeric,
             'connection_failures', a[6]::int, 'server_backends_max', a[11]::int,
             'cl_waiting_max', CASE WHEN a[2] LIKE 'pooled%' THEN a[15]::int END)
             ORDER BY array_position(ARRAY['direct_C', 'direct', 'pooled_C', 'pooled'], a[2]))
            FROM f WHERE a[1] = 'storm') AS tab,
         (SELECT jsonb_agg(jsonb_build_object('name', name, 'points', pts) ORDER BY name)
            FROM (SELECT 'mean' AS name, jsonb_agg(jsonb_build_array(a[2]::int, a[3]::numeric) ORDER BY a[2]::int) AS pts
                    FROM f WHERE a[1] = 'mean'
                  UNION ALL
                  SELECT 'pass ' || a[10], jsonb_agg(jsonb_build_array(a[2]::int, a[3]::numeric) ORDER BY a[2]::int)
                    FROM f WHERE a[1] = 'sweep' GROUP BY a[10]) s) AS series
)
INSERT INTO capstone.evidence (gate, label, settings, payload)
SELECT 'pooling', 'storm',
       jsonb_build_object('max_connections', current_setting('max_connections')::int, 'pgbouncer', :'bouncer',
                          'storm_clients', :'clients'::int, 'storm_seconds', :'storm_s'::int,
                          'sweep_clients', :'sweep_clients'::int, 'sweep_seconds', :'sweep_s'::int,
                          'sweep_passes', :'passes'::int,
                          'pgbench', 'pgbench -S -M simple -j 2'),
       p || jsonb_build_object(
         'summary', format('%s clients for %s s against max_connections %s. Direct: %s refused, %s TPS, p99 %s ms. '
                           'Through PgBouncer (transaction mode, pool %s from capstone.pool_size): %s refused, %s TPS, p99 %s ms '
                           '(persistent clients: %s TPS, p99 %s ms, up to %s waiting). Sweep of %s clients: TPS knee at pool %s, '
                           'N* = X_max x W_pool = %s; the recommendation is %sx the knee and %sx N*.',
                           :'clients', :'storm_s', current_setting('max_connections'),
                           p #>> '{storm,direct_C,connection_failures}', p #>> '{storm,direct_C,tps}', p #>> '{storm,direct_C,p99_ms}',
                           :'rec', p #>> '{storm,pooled_C,connection_failures}', p #>> '{storm,pooled_C,tps}', p #>> '{storm,pooled_C,p99_ms}',
                           p #>> '{storm,pooled,tps}', p #>> '{storm,pooled,p99_ms}', p #>> '{storm,pooled,cl_waiting_max}',
                           :'sweep_clients', :'knee', :'nstar', :'ratio', :'ratio_nstar'),
         -- goal: direct, the storm is refused connections; through PgBouncer none is, and the
         -- recommended pool lies within 1.5x of N* (the verdict says which part failed)
         'verdict', format('%s: %s connection failures through PgBouncer vs %s direct (%s); recommended pool %s within 1.5x of N*: %s, of the 90%% TPS knee: %s',
                           CASE WHEN (p #>> '{storm,pooled_C,connection_failures}')::int = 0
                                     AND (p #>> '{storm,direct_C,connection_failures}')::int > 0
                                     AND :'within_nstar' = 'yes' THEN 'PASS' ELSE 'FAIL' END,
                           p #>> '{storm,pooled_C,connection_failures}', p #>> '{storm,direct_C,connection_failures}',
                           CASE WHEN (p #>> '{storm,direct_C,connection_failures}')::int = 0
                                THEN 'the storm did not exceed max_connections, so it proves nothing'
                                WHEN (p #>> '{storm,pooled_C,connection_failures}')::int = 0 THEN 'the storm was absorbed'
                                ELSE 'the storm was not absorbed' END,
                           :'rec', :'within_nstar', :'within'),
         'passed', (p #>> '{storm,pooled_C,connection_failures}')::int = 0
                   AND (p #>> '{storm,direct_C,connection_failures}')::int > 0 AND :'within_nstar' = 'yes',
         'table', tab,
         'chart', jsonb_build_object('title', 'Pool-size sweep through PgBouncer', 'kind', 'line',
                                     'x_label', 'default_pool_size', 'y_label', 'transactions/s', 'series', series),
         -- the storm itself: latency and refused connections per run (a run that aborted has no p99)
         'charts', jsonb_build_array(jsonb_build_object(
           'title', format('Connection storm, %s clients: p99 latency and refused connections, direct vs PgBouncer', :'clients'),
           'kind', 'bar', 'x_label', 'run', 'y_label', 'p99 ms / refused connections', 'log_y', false,
           'categories', (SELECT jsonb_agg(x ->> 'run' ORDER BY o) FROM jsonb_array_elements(tab) WITH ORDINALITY e(x, o)),
           'series', jsonb_build_array(
             jsonb_build_object('name', 'p99 ms', 'points',
               coalesce((SELECT jsonb_agg(jsonb_build_array(o - 1, x -> 'p99_ms') ORDER BY o)
                           FROM jsonb_array_elements(tab) WITH ORDINALITY e(x, o)
                          WHERE jsonb_typeof(x -> 'p99_ms') = 'number'), '[]')),
             jsonb_build_object('name', 'refused connections', 'points',
               (SELECT jsonb_agg(jsonb_build_array(o - 1, x -> 'connection_failures') ORDER BY o)
                  FROM jsonb_array_elements(tab) WITH ORDINALITY e(x, o)))))))
  FROM d
RETURNING id;
SQL
)
STORM_ID=$(echo "$EVID" | grep -E '^[0-9]+$' | head -n1)
echo "stored as capstone.evidence id $STORM_ID (gate 'pooling', label 'storm'); pool_size capture id $REC_EVIDENCE"
# the measurements belong to this benchmark's own database; a copy goes where the
# evidence report is read (README command (1) sets CAPSTONE_EVIDENCE_DB to the lab's)
if [ -n "${CAPSTONE_EVIDENCE_DB:-}" ] && [ "$CAPSTONE_EVIDENCE_DB" != "$DB" ] && [ -n "$STORM_ID" ]; then
  "${SQL[@]}" -qc "COPY (SELECT gate, label, query, settings, pg_version, captured_at, payload FROM capstone.evidence
                          WHERE id IN (${REC_EVIDENCE:-0}, $STORM_ID) ORDER BY id) TO STDOUT" \
    | "${PSQL[@]}" -d "$CAPSTONE_EVIDENCE_DB" -qc "COPY capstone.evidence (gate, label, query, settings, pg_version, captured_at, payload) FROM STDIN" \
    && echo "copied both into capstone.evidence of $CAPSTONE_EVIDENCE_DB"
fi
echo "wall time $(elapsed "$T0" "$(now_s)") s"
