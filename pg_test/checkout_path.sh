#!/usr/bin/env bash
# README's commands from a checkout the postgres OS user cannot enter: a clone of this
# repository under a 0700 directory in root's home. The lab cluster (scripts/lab.sh, used by
# command 1) and the test clusters (scripts/test.sh, command 2) must still initdb, start and
# run capstone, because their data directories go where postgres can reach them.
#   pg_test/checkout_path.sh MAJOR      (capstone already installed into that tree)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
V=${1:-17}
pass=0; fail=0
ok() { echo "checkout: ok    $*"; pass=$((pass + 1)); }
bad() { echo "checkout: FAIL  $*"; fail=$((fail + 1)); }

base=$(mktemp -d "${HOME:-/root}/capstone-0700-XXXXXX"); chmod 0700 "$base"
clone=$base/repo
git clone -q "$ROOT" "$clone" || { bad "git clone $ROOT"; echo "checkout: $pass passed, $((fail)) failed"; exit 1; }
# shellcheck source=scripts/env.sh
. "$clone/scripts/env.sh"
if (cd / && sudo -u postgres test -x "$clone") 2>/dev/null; then
  bad "the clone under $base is reachable by postgres: this check proves nothing here"
else
  ok "the clone under a 0700 directory ($base) cannot be entered by the postgres OS user"
fi
bin=$(pg_bindir_for "$V")

# command 1's cluster: scripts/lab.sh from the clone, on ports of its own
lab_env=(CAPSTONE_PG="$V" CAPSTONE_LAB_PORT=28840 CAPSTONE_POOL_PORT=28841 CAPSTONE_NODE2_PORT=28842)
if env "${lab_env[@]}" bash "$clone/scripts/lab.sh" start > "$base/lab-start.log" 2>&1; then
  ok "scripts/lab.sh start from the clone: $(grep -o 'data=[^ ]*' "$base/lab-start.log" | head -n1)"
  role=$("$bin/psql" -X -qtA -h 127.0.0.1 -p 28840 -U postgres -d capstone_lab \
    -c "CREATE EXTENSION IF NOT EXISTS capstone" -c "SELECT role FROM capstone.worker_smoke()" 2>&1 | tail -n1)
  [ "$role" = postgres ] && ok "the lab cluster runs capstone (a worker ran as $role)" || bad "capstone in the lab cluster: $role"
else
  bad "scripts/lab.sh start from the clone failed: $(tail -n 3 "$base/lab-start.log")"
fi
env "${lab_env[@]}" bash "$clone/scripts/lab.sh" destroy > /dev/null 2>&1 || true

# command 2's clusters: the same helper scripts/test.sh uses, and one golden file
srv=$(server_dir_for "$clone")
gdir=$srv/pgtest/checkout-$V
if start_test_cluster "$V" "$gdir" 28850 2> "$base/cluster.log"; then
  ok "a test cluster starts from the clone (data in $gdir)"
  if PSQL="$bin/psql" CAPSTONE_GOLDEN_ONLY=foundation CAPSTONE_GOLDEN_RESULTS="$base/golden" \
       bash "$clone/pg_test/run.sh" -h "$gdir" -p 28850 -U postgres > "$base/golden.log" 2>&1; then
    ok "the golden test foundation passes on it"
  else
    bad "golden foundation from the clone: $(tail -n 5 "$base/golden.log")"
  fi
  stop_test_cluster "$V" "$gdir"
else
  bad "a test cluster from the clone did not start: $(tail -n 3 "$base/cluster.log")"
fi
[ "$srv" = "$clone/target" ] || rm -rf "$srv"
rm -rf "$base"
echo "checkout: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
