# Shared settings for benchmarks: they run against the lab cluster (scripts/lab.sh start).
# shellcheck shell=bash
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/env.sh
. "$ROOT/scripts/env.sh"
MAJOR=${CAPSTONE_PG:-17}
BIN=$(pg_bindir_for "$MAJOR")
HOST=${CAPSTONE_LAB_HOST:-127.0.0.1}
PORT=${CAPSTONE_LAB_PORT:-28815}
POOL_PORT=${CAPSTONE_POOL_PORT:-28816}
PSQL=("$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U postgres)
PGBENCH=("$BIN/pgbench" -h "$HOST" -p "$PORT" -U postgres)
now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }

# Latency percentiles from pgbench -l per-transaction logs (third field: microseconds).
#   latency_pct_ms P FILE...   the P-th percentile (nearest rank) in ms, or MISSING (default n/a)
latency_pct_ms() {
  local p=$1; shift
  (cat "$@" 2>/dev/null || true) | awk '$3 ~ /^[0-9]+$/ { print $3 }' | sort -n |
    awk -v p="$p" -v missing="${MISSING:-n/a}" '{ a[NR] = $1 }
      END { if (NR) { k = int(NR * p / 100); if (k < NR * p / 100) k++; if (k < 1) k = 1; if (k > NR) k = NR; printf "%.2f", a[k] / 1000 }
            else print missing }'
}

# Median, min and max of the numbers on stdin, as "median min max" (n/a when none).
spread() {
  sort -g | awk '{ a[NR] = $1 } END { if (!NR) { print "n/a n/a n/a"; exit }
    m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f %.3f %.3f\n", m, a[1], a[NR] }'
}

# One row of the benchmark table (bench/all.sh gathers them into docs/benchmarks.md):
#   bench_row NAME BASELINE CAPSTONE RATIO GOAL VERDICT
# BASELINE and CAPSTONE are the measured figures with their units and spread, GOAL the goal
# as the script wrote it before the run, VERDICT met / missed as computed from the numbers.
# Printed as a "row|..." line, and appended to $CAPSTONE_BENCH_ROWS when that is set.
bench_row() {
  local line
  line=$(printf 'row|%s|%s|%s|%s|%s|%s' "$1" "$2" "$3" "$4" "$5" "$6")
  echo "$line"
  if [ -n "${CAPSTONE_BENCH_ROWS:-}" ]; then echo "$line" >> "$CAPSTONE_BENCH_ROWS"; fi
}
# met when the number $1 satisfies "$2 $3" ("<=" 1.10, ">=" 10), missed otherwise
verdict_of() {
  awk -v x="$1" -v op="$2" -v g="$3" 'BEGIN {
    if (x !~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/) { print "missed"; exit }
    ok = (op == "<=") ? (x + 0 <= g + 0) : (op == ">=") ? (x + 0 >= g + 0) : 0
    print ok ? "met" : "missed" }'
}
