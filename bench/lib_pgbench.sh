# Shared by bench/ceiling.sh and bench/two_node.sh: one measured pgbench step with
# TPS, latency percentiles from the per-transaction log, CPU and I/O from vmstat, and
# the server's WAL / checkpoint / backend-write counters around it.
# shellcheck shell=bash

# Server counters as one line: commits wal_bytes wal_records wal_fpi checkpoints
# checkpoint_buffers backend_writes. PostgreSQL 15 keeps checkpoint and backend
# writes in pg_stat_bgwriter; 16 adds pg_stat_io; 17 moves checkpoints to
# pg_stat_checkpointer.
snap_sql() {
  local major=$1
  local ckpt ckbuf bwrites
  if [ "$major" -ge 17 ]; then
    ckpt="(SELECT num_timed + num_requested FROM pg_stat_checkpointer)"
    ckbuf="(SELECT buffers_written FROM pg_stat_checkpointer)"
  else
    ckpt="(SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter)"
    ckbuf="(SELECT buffers_checkpoint FROM pg_stat_bgwriter)"
  fi
  if [ "$major" -ge 16 ]; then
    bwrites="(SELECT coalesce(sum(writes), 0)::bigint FROM pg_stat_io WHERE backend_type = 'client backend')"
  else
    bwrites="(SELECT buffers_backend FROM pg_stat_bgwriter)"
  fi
  echo "SELECT (SELECT sum(xact_commit) FROM pg_stat_database)::bigint, wal_bytes::bigint, wal_records, wal_fpi,
               $ckpt, $ckbuf, $bwrites FROM pg_stat_wal"
}

# pct_latency LOGDIR P: the P-th percentile of per-transaction latency in ms (bench/common.sh)
pct_latency() { MISSING=nan latency_pct_ms "$2" "$1"/l.*; }

# measure NAME CLIENTS SECONDS SCRIPT PORT [extra pgbench args...]
# Appends one tab-separated line to $RESULTS:
#   name clients tps avg_ms p50_ms p99_ms failed cpu_us cpu_sy cpu_idle cpu_wa io_bo_kBps
#   wal_bytes_per_txn fpi_per_txn checkpoints backend_writes load1
# and prints it. Needs: BIN, HOST, DB, WORK, RESULTS, SNAP (SQL from snap_sql), PGB_VARS (array).
measure() {
  local name=$1 clients=$2 secs=$3 script=$4 port=$5
  shift 5
  local dir="$WORK/run-$name-$clients-$RANDOM"
  mkdir -p "$dir"
  local j=2; [ "$clients" -lt 2 ] && j=1
  local s0 s1
  s0=$("$BIN/psql" -X -q -tA -F' ' -h "$HOST" -p "$PORT" -U postgres -d "$DB" -c "$SNAP")
  vmstat -n 1 "$((secs + 1))" > "$dir/vmstat" 2>/dev/null &
  local vm=$!
  "$BIN/pgbench" -h "$HOST" -p "$port" -U postgres -n -c "$clients" -j "$j" -T "$secs" \
    "${PGB_VARS[@]}" -f "$script" -l --log-prefix="$dir/l" "$@" "$DB" > "$dir/out" 2>&1 || true
  wait "$vm" 2>/dev/null || true
  s1=$("$BIN/psql" -X -q -tA -F' ' -h "$HOST" -p "$PORT" -U postgres -d "$DB" -c "$SNAP")
  local tps avg failed p50 p99 load1
  tps=$(grep -oE 'tps = [0-9.]+' "$dir/out" | head -n1 | awk '{print $3}')
  avg=$(grep -oE 'latency average = [0-9.]+' "$dir/out" | awk '{print $4}')
  failed=$(grep -oE 'number of failed transactions: [0-9]+' "$dir/out" | awk '{print $5}')
  if grep -qE 'ERROR|FATAL|aborted' "$dir/out"; then
    grep -E 'ERROR|FATAL|aborted' "$dir/out" | head -n 3 >&2
  fi
  p50=$(pct_latency "$dir" 50)
  p99=$(pct_latency "$dir" 99)
  load1=$(cut -d' ' -f1 /proc/loadavg)
  # vmstat: skip the two header lines and the first sample (averages since boot)
  local vmcols
  vmcols=$(awk 'NR > 3 { us += $13; sy += $14; id += $15; wa += $16; bo += $10; n++ }
               END { if (n) printf "%.0f\t%.0f\t%.0f\t%.0f\t%.0f", us/n, sy/n, id/n, wa/n, bo/n; else printf "nan\tnan\tnan\tnan\tnan" }' "$dir/vmstat")
  # per pgbench transaction (the script's \gset lookups commit on their own)
  local ntx
  ntx=$(grep -oE 'number of transactions actually processed: [0-9]+' "$dir/out" | awk '{print $6}')
  local deltas
  deltas=$(awk -v a="$s0" -v b="$s1" -v n="${ntx:-0}" 'BEGIN { split(a, x, " "); split(b, y, " ");
      tx = n; if (tx < 1) tx = 1;
      printf "%.0f\t%.2f\t%d\t%d", (y[2] - x[2]) / tx, (y[4] - x[4]) / tx, y[5] - x[5], y[7] - x[7] }')
  local line
  line=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$name" "$clients" "${tps:-nan}" "${avg:-nan}" \
    "$p50" "$p99" "${failed:-0}" "$vmcols" "$deltas" "$load1")
  echo "$line" >> "$RESULTS"
  printf '  %-28s c=%-3s tps=%-9s avg=%-7s p99=%-7s cpu us/sy/id/wa=%s wal/txn,fpi/txn,ckpt,bwrites=%s load=%s\n' \
    "$name" "$clients" "${tps:-nan}" "${avg:-nan}" "$p99" "$(echo "$vmcols" | cut -f1-4 | tr '\t' /)" \
    "$(echo "$deltas" | tr '\t' ,)" "$load1"
}
