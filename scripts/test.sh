#!/usr/bin/env bash
# README command (2): bootstrap, then every test layer on PostgreSQL 15, 16, 17, 18.
#   1. cargo fmt --check, cargo clippy -D warnings
#   2. per version: cargo pgrx test (plain #[test]s and #[pg_test]s inside PostgreSQL)
#   3. per version: golden psql tests (pg_test/) against a private cluster with capstone preloaded
# Prints a per-version summary; exits non-zero if anything failed.
# CAPSTONE_TEST_VERSIONS="15 17" narrows the run (CI always runs all four).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/env.sh
. "$ROOT/scripts/env.sh"
VERSIONS=(${CAPSTONE_TEST_VERSIONS:-${PG_MAJORS[*]}})
OUT=$ROOT/target/test-logs
T0=$(date +%s)

step() { printf '\n[test %s +%ss] %s\n' "$(date +%H:%M:%S)" "$(( $(date +%s) - T0 ))" "$*"; }

# golden files are compared, never rewritten, by this command (pg_test/run.sh refuses too)
if [ -n "${CAPSTONE_GOLDEN_ACCEPT:-}" ]; then
  echo "CAPSTONE_GOLDEN_ACCEPT is set: scripts/test.sh compares golden files and never accepts them; unset it" >&2
  exit 2
fi
export CAPSTONE_TEST_RUN=1
step "bootstrap"
bash "$ROOT/scripts/bootstrap.sh" || { echo "bootstrap failed" >&2; exit 1; }
mkdir -p "$OUT"
# data directories live where the postgres OS user can reach them, wherever the checkout is
SRV=$(server_dir_for "$ROOT")
[ "$SRV" = "$ROOT/target" ] || echo "the postgres OS user cannot enter $ROOT/target: test clusters live in $SRV"
install -d -o postgres -g postgres "$SRV/pgtest"

declare -A UNIT PGT GOLD STATUS
total_pass=0; total_fail=0
lint_ok=1

step "cargo fetch --locked (Cargo.lock is committed and must not drift)"
cargo fetch --locked -q || { echo "Cargo.lock is out of date" >&2; exit 1; }

step "cargo fmt --check"
if ! cargo fmt --all -- --check; then lint_ok=0; echo "cargo fmt: FAIL"; fi
step "cargo clippy --all-targets --features pg17 -- -D warnings"
if ! cargo clippy --locked --all-targets --no-default-features --features "pg17 pg_test" -- -D warnings 2>&1 | tail -n 30; then
  lint_ok=0
fi
# tail hides clippy's status; ask again cheaply (it is cached now)
cargo clippy --locked --all-targets --no-default-features --features "pg17 pg_test" -q -- -D warnings >/dev/null 2>&1 || lint_ok=0
if [ $lint_ok = 1 ]; then total_pass=$((total_pass + 1)); else total_fail=$((total_fail + 1)); fi

count() { # $1 = log, prints "passed failed" summed over cargo's "test result" lines
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
       END { printf "%d %d\n", p, f }' "$1"
}

for v in "${VERSIONS[@]}"; do
  cfg=$(pg_config_for "$v")
  bindir=$("$cfg" --bindir)
  # cargo pgrx test installs into the PostgreSQL tree; a running lab cluster of the same
  # major has that library mapped and would crash when it is overwritten
  labdata=${CAPSTONE_LAB_DIR:-$SRV/lab}/pg$v/data
  if [ -f "$labdata/postmaster.pid" ]; then
    echo "stopping the PostgreSQL $v lab cluster (its library is about to be replaced)"
    CAPSTONE_PG=$v bash "$ROOT/scripts/lab.sh" stop || true
  fi
  step "PostgreSQL $v: cargo pgrx test"
  log=$OUT/pgrx-test-pg$v.log
  cargo pgrx test "pg$v" --runas postgres --pgdata "$SRV/pgtest" > "$log" 2>&1
  rc=$?
  read -r p f < <(count "$log")
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; tail -n 60 "$log"; fi
  grep -E '^test .* (FAILED|failed)|panicked|^error' "$log" | head -n 40
  UNIT[$v]="$p passed, $f failed"
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))

  step "PostgreSQL $v: golden psql tests"
  glog=$OUT/golden-pg$v.log
  # install the plain (non-test) build, then a throwaway preloaded cluster
  cargo pgrx install --pg-config "$cfg" --no-default-features --features "pg$v" > "$OUT/install-pg$v.log" 2>&1 \
    || { tail -n 40 "$OUT/install-pg$v.log"; }
  gdir=$SRV/pgtest/golden-$v
  port=$((28900 + v))
  start_test_cluster "$v" "$gdir" "$port"
  PSQL="$bindir/psql" CAPSTONE_GOLDEN_RESULTS="$OUT/golden-pg$v" \
    bash "$ROOT/pg_test/run.sh" -h "$gdir" -p "$port" -U postgres > "$glog" 2>&1
  cat "$glog"
  gp=$(grep -oE '[0-9]+ passed' "$glog" | tail -n1 | cut -d' ' -f1); gf=$(grep -oE '[0-9]+ failed' "$glog" | tail -n1 | cut -d' ' -f1)
  gp=${gp:-0}; gf=${gf:-1}
  if grep -q "terminated by signal" "$gdir/server.log"; then echo "server crashed during golden tests"; gf=$((gf + 1)); fi
  step "PostgreSQL $v: bad-input sweep (pg_test/sweep/cases.txt: every case must end in its SQLSTATE, never XX000 or a crash)"
  slog=$OUT/sweep-pg$v.log
  PSQL="$bindir/psql" CAPSTONE_SWEEP_LOG="$gdir/server.log" bash "$ROOT/pg_test/sweep.sh" -h "$gdir" -p "$port" -U postgres > "$slog" 2>&1
  src=$?
  grep -E '^sweep: (FAIL|CRASH|[0-9]+ cases)|lab checksum|left' "$slog" | head -n 40
  if [ $src -eq 0 ]; then gp=$((gp + 1)); else gf=$((gf + 1)); fi
  step "PostgreSQL $v: the bad-input sweep again, every case as a non-superuser role holding README's grants"
  rlog=$OUT/sweep-granted-pg$v.log
  PSQL="$bindir/psql" CAPSTONE_SWEEP_LOG="$gdir/server.log" CAPSTONE_SWEEP_ROLE=capstone_sweep_dba \
    bash "$ROOT/pg_test/sweep.sh" -h "$gdir" -p "$port" -U postgres > "$rlog" 2>&1
  src=$?
  grep -E '^sweep: (FAIL|CRASH|[0-9]+ cases|cases run as)|lab checksum|left' "$rlog" | head -n 40
  if [ $src -eq 0 ]; then gp=$((gp + 1)); else gf=$((gf + 1)); fi
  step "PostgreSQL $v: crash safety (kill -9 and immediate restart mid-operation: backfill, lab_install, explain_diff, anomaly_demo on the lab and on the catalogue, bloat holder)"
  clog=$OUT/crash-pg$v.log
  bash "$ROOT/pg_test/crash.sh" "$bindir" "$gdir/data" "$gdir" "$port" "$(pg_server_env_for "$v")" > "$clog" 2>&1
  grep -E '^crash:' "$clog"
  cp_=$(grep -oE '[0-9]+ passed' "$clog" | tail -n1 | cut -d' ' -f1); cf_=$(grep -oE '[0-9]+ failed' "$clog" | tail -n1 | cut -d' ' -f1)
  gp=$((gp + ${cp_:-0})); gf=$((gf + ${cf_:-1}))
  step "PostgreSQL $v: upgrade path (ALTER EXTENSION UPDATE from every released version) and released-script immutability"
  ulog=$OUT/upgrade-pg$v.log
  CAPSTONE_UPGRADE_RESULTS="$OUT/upgrade-pg$v" bash "$ROOT/pg_test/upgrade.sh" "$cfg" -h "$gdir" -p "$port" -U postgres > "$ulog" 2>&1
  grep -E '^upgrade:|^    ' "$ulog" | head -n 60
  up_=$(grep -oE '[0-9]+ passed' "$ulog" | tail -n1 | cut -d' ' -f1); uf_=$(grep -oE '[0-9]+ failed' "$ulog" | tail -n1 | cut -d' ' -f1)
  gp=$((gp + ${up_:-0})); gf=$((gf + ${uf_:-1}))
  stop_test_cluster "$v" "$gdir"
  GOLD[$v]="$gp passed, $gf failed"
  total_pass=$((total_pass + gp)); total_fail=$((total_fail + gf))
done

vlast=${VERSIONS[${#VERSIONS[@]}-1]}
step "any checkout path: a clone under a 0700 directory runs the lab and test clusters (PostgreSQL $vlast)"
colog=$OUT/checkout-path.log
bash "$ROOT/pg_test/checkout_path.sh" "$vlast" > "$colog" 2>&1
grep -E '^checkout:' "$colog"
co_p=$(grep -oE '[0-9]+ passed' "$colog" | tail -n1 | cut -d' ' -f1); co_f=$(grep -oE '[0-9]+ failed' "$colog" | tail -n1 | cut -d' ' -f1)
total_pass=$((total_pass + ${co_p:-0})); total_fail=$((total_fail + ${co_f:-1}))

step "summary"
printf '%-12s %-28s %-24s\n' "PostgreSQL" "cargo pgrx test" "golden, crash, upgrade"
for v in "${VERSIONS[@]}"; do
  printf '%-12s %-28s %-24s\n' "$v" "${UNIT[$v]}" "${GOLD[$v]}"
done
[ $lint_ok = 1 ] && echo "fmt + clippy: ok" || echo "fmt + clippy: FAIL"
echo "wall time: $(( $(date +%s) - T0 )) s"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
