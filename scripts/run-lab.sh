#!/usr/bin/env bash
# README command (1): bootstrap, build, install into the lab cluster, create the
# extension in a fresh lab database, and run every gate's lab stage in order.
#
# Against your own cluster instead of the lab one:
#   CAPSTONE_DSN='host=... port=... dbname=... user=...' CAPSTONE_PG_CONFIG=/path/to/pg_config scripts/run-lab.sh
# (the database named in the DSN is used as is; it is not dropped.)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/env.sh
. "$ROOT/scripts/env.sh"
T0=$(date +%s)
stage() { printf '\n[lab %s +%ss] %s\n' "$(date +%H:%M:%S)" "$(( $(date +%s) - T0 ))" "$*"; }

MAJOR=${CAPSTONE_PG:-17}
PORT=${CAPSTONE_LAB_PORT:-28815}
POOL_PORT=${CAPSTONE_POOL_PORT:-28816}
DB=${CAPSTONE_LAB_DB:-capstone_lab}
OUTDIR=${CAPSTONE_OUT:-$ROOT/target/lab/report}
SCALE=${CAPSTONE_LAB_SCALE:-1}

stage "bootstrap toolchain"
bash scripts/bootstrap.sh

if [ -n "${CAPSTONE_DSN:-}" ]; then
  cfg=${CAPSTONE_PG_CONFIG:?set CAPSTONE_PG_CONFIG to the pg_config of the server behind CAPSTONE_DSN}
  stage "install capstone into $("$cfg" --version)"
  cargo pgrx install --release --pg-config "$cfg" --no-default-features \
    --features "pg$("$cfg" --version | sed -E 's/[^0-9]*([0-9]+).*/\1/')" > /tmp/capstone-install.log 2>&1 \
    || { tail -n 40 /tmp/capstone-install.log; exit 1; }
  PSQL=("$("$cfg" --bindir)/psql" -X -v ON_ERROR_STOP=1 "$CAPSTONE_DSN")
  POOLED=()
else
  stage "build and install capstone into PostgreSQL $MAJOR"
  bash scripts/lab.sh install
  stage "start the lab cluster and PgBouncer"
  bash scripts/lab.sh start
  BIN=$(pg_bindir_for "$MAJOR")
  # a fresh lab database per run: evidence is regenerated, never mixed with an older run
  "$BIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres \
    -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
  # PgBouncer may hold a server connection to the dropped database
  "$BIN/psql" -X -q -h 127.0.0.1 -p "$POOL_PORT" -U postgres -d pgbouncer -c "RECONNECT" >/dev/null 2>&1 || true
  PSQL=("$BIN/psql" -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d "$DB")
  POOLED=("$BIN/psql" -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$POOL_PORT" -U postgres -d "$DB")
fi
mkdir -p "$OUTDIR"

stage "health: CREATE EXTENSION capstone and capstone.version()"
"${PSQL[@]}" -q -c "CREATE EXTENSION IF NOT EXISTS capstone CASCADE"
"${PSQL[@]}" -c "SELECT * FROM capstone.version()"
if [ ${#POOLED[@]} -gt 0 ]; then
  echo "through PgBouncer (transaction mode, port $POOL_PORT):"
  "${POOLED[@]}" -c "SELECT * FROM capstone.version()"
fi
"${PSQL[@]}" -c "SELECT worker_pid, database, role, backend_type, round(elapsed_ms::numeric, 1) AS elapsed_ms FROM capstone.worker_smoke()"

stage "lab: capstone.lab_install(scale => $SCALE) — schema, generator, constraints, ANALYZE"
"${PSQL[@]}" -c "SELECT * FROM capstone.lab_install(scale => $SCALE, seed => 42, replace => true)" | tee "$OUTDIR/lab_install.txt"
"${PSQL[@]}" -c "SELECT key, value FROM shop.lab_meta ORDER BY key" | tee -a "$OUTDIR/lab_install.txt"
# what autovacuum would do soon after a bulk load: set the visibility map so index-only scans are real
"${PSQL[@]}" -q -c "VACUUM (ANALYZE) shop.orders, shop.order_lines, shop.payments, shop.journal_entries, shop.postings, shop.customers, shop.products, shop.stock"

stage "schema gate: every lab constraint refuses what it should, and the owned denormalization is exact"
"${PSQL[@]}" -f lab/evidence/schema.sql | tee "$OUTDIR/schema.txt"

stage "index + statistics gates: every lab index proven with explain_diff, the forced bad plan and its fix"
"${PSQL[@]}" -f lab/evidence/plans.sql | tee "$OUTDIR/plans.txt"

stage "isolation gate: lost update and write skew, two real sessions, under every isolation level and locking strategy"
"${PSQL[@]}" -q -c "CREATE EXTENSION IF NOT EXISTS dblink"
for anomaly in lost_update write_skew; do
  "${PSQL[@]}" -At -c "SELECT unnest(ARRAY['read committed', 'repeatable read', 'serializable', 'select for update', 'for no key update', 'atomic update', 'advisory lock'])" \
    | while read -r mode; do
        echo "SELECT :'a' AS anomaly, :'m' AS mode, result FROM capstone.anomaly_demo(:'a', :'m') WHERE session = 'check'" \
          | "${PSQL[@]}" -At -F ' | ' -v a="$anomaly" -v m="$mode"
      done
done | tee "$OUTDIR/isolation.txt"

if [ -z "${CAPSTONE_DSN:-}" ]; then
  stage "migration gate: expand-contract of customers.full_name under load, with the backfill worker and lock evidence"
  CAPSTONE_PG=$MAJOR bash lab/evidence/migration.sh "$OUTDIR" | tee "$OUTDIR/migration.txt"
fi

if [ -z "${CAPSTONE_DSN:-}" ]; then
  stage "pooling gate: pool_size, the 1000-client storm direct vs PgBouncer, and the pool-size sweep"
  CAPSTONE_PG=$MAJOR CAPSTONE_STORM_SECONDS=${CAPSTONE_STORM_SECONDS:-10} CAPSTONE_SWEEP_SECONDS=${CAPSTONE_SWEEP_SECONDS:-8} \
    CAPSTONE_SWEEP_PASSES=${CAPSTONE_SWEEP_PASSES:-1} CAPSTONE_EVIDENCE_DB=$DB bash bench/pooling.sh | tee "$OUTDIR/pooling.txt"
fi

stage "bloat gate: xmin holders, the long-transaction scenario with a snapshot-holding worker, estimates vs pgstattuple"
# stderr too: VACUUM (VERBOSE) reports as INFO messages
"${PSQL[@]}" -f lab/evidence/bloat.sql 2>&1 | tee "$OUTDIR/bloat.txt"

stage "sharding: rank shard keys and plan the distribution"
"${PSQL[@]}" -c "SELECT rank, key_column, round(score::numeric, 1) AS score, cardinality, hot_values, reference_tables, cross_shard_joins FROM capstone.shard_advice('shop')" | tee "$OUTDIR/sharding.txt"
"${PSQL[@]}" -c "SELECT step, action, object, ddl FROM capstone.shard_plan('shop')" | tee -a "$OUTDIR/sharding.txt"

if [ -z "${CAPSTONE_DSN:-}" ]; then
  stage "sharding: the single-node write ceiling (short ramp; bench/ceiling.sh runs the full one with the levers)"
  CAPSTONE_PG=$MAJOR CAPSTONE_CEILING_SECONDS=${CAPSTONE_CEILING_SECONDS:-5} \
    CAPSTONE_CEILING_CLIENTS=${CAPSTONE_CEILING_CLIENTS:-"1 2 4 8 16 32"} CAPSTONE_CEILING_LEVERS=${CAPSTONE_CEILING_LEVERS-} \
    bash bench/ceiling.sh | tee "$OUTDIR/ceiling.txt"
  stage "sharding: the 2-node layout (postgres_fdw hash partitions on a second cluster) against one node"
  CAPSTONE_PG=$MAJOR bash scripts/lab.sh node2 start
  CAPSTONE_PG=$MAJOR CAPSTONE_TWO_NODE_SECONDS=${CAPSTONE_TWO_NODE_SECONDS:-8} bash bench/two_node.sh | tee "$OUTDIR/two_node.txt"
  # the evidence is stored; the layouts would only crowd the triage that follows
  "${PSQL[@]}" -q -c "DROP SCHEMA IF EXISTS shard_local, shard_2n CASCADE"
fi

if [ -z "${CAPSTONE_DSN:-}" ]; then
  stage "reliability: the read-side functions under 50 clients beside the write load (short; bench/load.sh runs 60 s)"
  CAPSTONE_PG=$MAJOR CAPSTONE_LOAD_SECONDS=${CAPSTONE_LOAD_SECONDS:-30} bash bench/load.sh | tee "$OUTDIR/load.txt"
fi

stage "triage: the on-call first look"
"${PSQL[@]}" -c "SELECT mode, severity, finding, first_fix, probe_ms FROM capstone.triage()" | tee "$OUTDIR/triage.txt"

stage "evidence report: $OUTDIR/REPORT.md"
# charts of an earlier run would sit beside these under other evidence ids
rm -rf "$OUTDIR/charts"
mkdir -p "$OUTDIR/charts"
"${PSQL[@]}" -qAt -c "SELECT capstone.report()" > "$OUTDIR/REPORT.md"
# one SVG and one CSV per chart; names come from capstone.report_charts()
"${PSQL[@]}" -qAt -c "SELECT file_name FROM capstone.report_charts()" | while read -r name; do
  [ -n "$name" ] || continue
  echo "SELECT svg FROM capstone.report_charts() WHERE file_name = :'n'" | "${PSQL[@]}" -qAt -v n="$name" > "$OUTDIR/charts/$name.svg"
  echo "SELECT csv FROM capstone.report_charts() WHERE file_name = :'n'" | "${PSQL[@]}" -qAt -v n="$name" > "$OUTDIR/charts/$name.csv"
done
echo "charts: $(ls "$OUTDIR/charts" | wc -l) files in $OUTDIR/charts"

stage "done in $(( $(date +%s) - T0 )) s; evidence directory: $OUTDIR"
