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
