#!/usr/bin/env bash
# Every benchmark, one after the other, and one table of their results:
#   bench/all.sh [name ...]     (default: every bench/*.sh; names without .sh)
# Each script prints its goal rows (bench_row in bench/common.sh: benchmark, baseline,
# capstone, ratio, goal, met/missed, each verdict computed by the script from its numbers
# and the goal it wrote down before the run). This script gathers them, with the machine
# and how long each script ran, into the generated section of docs/benchmarks.md
# (CAPSTONE_BENCH_DOC to write elsewhere) and keeps each script's output in
# target/bench-logs/<name>.log.
#
# It starts the lab (scripts/lab.sh start) and loads it into capstone_lab when empty; build
# and install the release first (scripts/lab.sh install), and never run it while building.
# Arguments per script come from CAPSTONE_ARGS_<name> (e.g. CAPSTONE_ARGS_backfill="100000
# 1000000 10000000"), else the defaults below, chosen to keep a full run near an hour on 2 cores.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/common.sh"
DOC=${CAPSTONE_BENCH_DOC:-$ROOT/docs/benchmarks.md}
LOGS=$ROOT/target/bench-logs
mkdir -p "$LOGS"

declare -A ARGS=(
  [bloat]="1 3000000"
  [backfill]="100000 1000000 3"
)
if [ $# -gt 0 ]; then
  NAMES=("$@")
else
  NAMES=()
  for f in "$ROOT"/bench/*.sh; do
    n=$(basename "$f" .sh)
    case $n in all | common | lib_*) continue ;; esac
    NAMES+=("$n")
  done
fi
for n in "${NAMES[@]}"; do
  [ -f "$ROOT/bench/$n.sh" ] || { echo "bench/all.sh: no benchmark bench/$n.sh" >&2; exit 2; }
done

bash "$ROOT/scripts/lab.sh" start > /dev/null
if [ "$("${PSQL[@]}" -d "${CAPSTONE_LAB_DB:-capstone_lab}" -tA -c "SELECT to_regclass('shop.orders') IS NOT NULL" 2>/dev/null)" != t ]; then
  "${PSQL[@]}" -d postgres -c "CREATE DATABASE ${CAPSTONE_LAB_DB:-capstone_lab}" 2>/dev/null || true
  "${PSQL[@]}" -d "${CAPSTONE_LAB_DB:-capstone_lab}" -c "CREATE EXTENSION IF NOT EXISTS capstone" \
    -c "SELECT count(*) AS lab_tables FROM capstone.lab_install(scale => ${CAPSTONE_LAB_SCALE:-1}, seed => 42)" > /dev/null
fi

ROWS=$(mktemp)
RUNS=$(mktemp)
trap 'rm -f "$ROWS" "$RUNS"' EXIT
export CAPSTONE_BENCH_ROWS=$ROWS
for n in "${NAMES[@]}"; do
  var=CAPSTONE_ARGS_$n
  read -r -a args <<< "${!var:-${ARGS[$n]:-}}"
  echo "[all $(date +%H:%M:%S)] bench/$n.sh ${args[*]}"
  before=$(wc -l < "$ROWS")
  t0=$(now_s)
  rc=0
  bash "$ROOT/bench/$n.sh" "${args[@]}" > "$LOGS/$n.log" 2>&1 || rc=$?
  s=$(elapsed "$t0" "$(now_s)")
  got=$(( $(wc -l < "$ROWS") - before ))
  echo "$n|${args[*]}|$rc|$s|$got" >> "$RUNS"
  echo "[all $(date +%H:%M:%S)] bench/$n.sh: exit $rc, ${s} s, $got goal rows"
  [ "$rc" = 0 ] || tail -n 5 "$LOGS/$n.log" | sed 's/^/    /'
done

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
pgv=$("${PSQL[@]}" -d postgres -tA -c "SHOW server_version")
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
  echo "<!-- bench:begin (written by bench/all.sh; edit the text around it, not this part) -->"
  echo "Run of $(date -u '+%Y-%m-%d %H:%M UTC') at commit \`$commit\`, on $(nproc) cores ($cpu), $mem,"
  echo "PostgreSQL $pgv, release build."
  echo
  echo "| benchmark | baseline | capstone | ratio | goal | verdict |"
  echo "|---|---|---|---|---|---|"
  awk -F'|' '$1 == "row" { printf "| %s | %s | %s | %s | %s | %s |\n", $2, $3, $4, $5, $6, $7 }' "$ROWS"
  echo
  echo "| script | arguments | exit | seconds | goal rows |"
  echo "|---|---|---|---:|---:|"
  awk -F'|' '{ printf "| `bench/%s.sh` | %s | %s | %s | %s |\n", $1, ($2 == "" ? "defaults" : "`" $2 "`"), $3, $4, $5 }' "$RUNS"
  echo "<!-- bench:end -->"
} > "$LOGS/table.md"
if [ -f "$DOC" ] && grep -q '<!-- bench:begin' "$DOC"; then
  awk -v t="$LOGS/table.md" '/<!-- bench:begin/ { while ((getline l < t) > 0) print l; skip = 1; next }
    /<!-- bench:end -->/ { skip = 0; next } !skip' "$DOC" > "$DOC.new" && mv "$DOC.new" "$DOC"
else
  cat "$LOGS/table.md" >> "$DOC"
fi
cat "$LOGS/table.md"
echo "written to $DOC"
