#!/usr/bin/env bash
# Shard or not, in miniature: the lab's write path hash-partitioned by tenant_id, with
# half of the partitions on a second node through postgres_fdw, against the same
# partitioning on one node and against the lab itself.
#   scripts/lab.sh start; scripts/lab.sh node2 start; bench/two_node.sh
# Layouts, all in the lab database of the lab cluster (the coordinator):
#   shop         the lab: plain tables, foreign keys, triggers (lab/workload/place_order.sql)
#   shard_local  orders, order_lines, payments, journal_entries, postings, stock, each
#                PARTITION BY HASH (tenant_id) into 8, every partition local
#   shard_2n     the same, partitions with remainder 4-7 are postgres_fdw foreign tables
#                on node2 (server capstone_node2, async_capable 'true'), co-located: a
#                tenant's order, lines, payment, ledger rows and stock share a node
# Both partitioned layouts carry the lab's primary keys, unique keys and indexes per
# partition, and no foreign keys or triggers (a partitioned table with foreign partitions
# can have neither), so lab/workload/place_order_sharded.sql computes the order total
# itself. Measured: the bulk load, the write load (TPS, p99) at CAPSTONE_TWO_NODE_CLIENTS,
# statements per remote transaction on node2, and four queries per layout (global daily
# revenue as written and rewritten to aggregate per tenant, and one tenant's daily
# revenue for a local and for a remote tenant): median execution time of 5 and the plan.
# Stores everything in capstone.evidence (gate 'sharding'); the layouts stay for
# inspection until the next run (DROP SCHEMA shard_local, shard_2n CASCADE).
# Settings: CAPSTONE_PG, CAPSTONE_LAB_PORT, CAPSTONE_NODE2_PORT (28817), CAPSTONE_LAB_DB,
#   CAPSTONE_TWO_NODE_SECONDS (20), CAPSTONE_TWO_NODE_CLIENTS (8).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
. "$HERE/lib_pgbench.sh"
DB=${CAPSTONE_LAB_DB:-capstone_lab}
NODE2_PORT=${CAPSTONE_NODE2_PORT:-28817}
STEP=${CAPSTONE_TWO_NODE_SECONDS:-20}
CLIENTS=${CAPSTONE_TWO_NODE_CLIENTS:-8}
PARTS=8
REMOTE_FROM=4     # remainders 4..7 live on node2
WORK=$(mktemp -d /tmp/capstone-two-node.XXXXXX)
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
RESULTS=$WORK/results.tsv
: > "$RESULTS"
Q=("${PSQL[@]}" -d "$DB" -tA)
N2=("$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$NODE2_PORT" -U postgres -d "$DB")

"${Q[@]}" -c "SELECT 1 FROM shop.orders LIMIT 1" > /dev/null 2>&1 || {
  echo "two_node: no lab in $DB on port $PORT: SELECT * FROM capstone.lab_install(scale => 1)" >&2; exit 2; }
"${N2[@]}" -tA -c "SELECT 1" > /dev/null 2>&1 || {
  echo "two_node: node2 is not answering on port $NODE2_PORT: scripts/lab.sh node2 start" >&2; exit 2; }
M1=$("${Q[@]}" -c "SELECT current_setting('server_version_num')::int / 10000")
M2=$("${N2[@]}" -tA -c "SELECT current_setting('server_version_num')::int / 10000")
[ "$M1" = "$M2" ] || { echo "two_node: node2 runs PostgreSQL $M2, the lab $M1: same major needed" >&2; exit 2; }
SNAP=$(snap_sql "$M1")
NT=$("${Q[@]}" -c "SELECT count(*) FROM shop.tenants")
NO=$("${Q[@]}" -c "SELECT max(order_id) FROM shop.orders")
PGB_VARS=(-D "ntenants=$NT" -D "norders=$NO")
TABLES=(orders order_lines payments journal_entries postings stock)

# Column lists as in lab/schema.sql (identity columns become sequence defaults on the parent).
columns() {
  case $1 in
    orders) echo "tenant_id bigint NOT NULL, order_id bigint NOT NULL, order_no text NOT NULL, customer_id bigint NOT NULL,
      status text NOT NULL, fulfillment_status text NOT NULL, payment_status text NOT NULL, currency text NOT NULL,
      total_cents bigint NOT NULL DEFAULT 0, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL" ;;
    order_lines) echo "tenant_id bigint NOT NULL, order_id bigint NOT NULL, line_no smallint NOT NULL, product_id bigint NOT NULL,
      quantity integer NOT NULL, unit_price_cents bigint NOT NULL" ;;
    payments) echo "tenant_id bigint NOT NULL, payment_id bigint NOT NULL, order_id bigint NOT NULL, method text NOT NULL,
      status text NOT NULL, amount_cents bigint NOT NULL, provider_ref text NOT NULL, created_at timestamptz NOT NULL" ;;
    journal_entries) echo "tenant_id bigint NOT NULL, entry_id bigint NOT NULL, order_id bigint, memo text NOT NULL,
      posted_at timestamptz NOT NULL" ;;
    postings) echo "tenant_id bigint NOT NULL, entry_id bigint NOT NULL, posting_no smallint NOT NULL, account_id bigint NOT NULL,
      amount_cents bigint NOT NULL" ;;
    stock) echo "tenant_id bigint NOT NULL, product_id bigint NOT NULL, on_hand integer NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now()" ;;
  esac
}
# The lab's keys and indexes for one partition S.T_pR (lab/schema.sql, shop.lab_finish()).
indexes() {
  local s=$1 p=$2
  cat <<SQL
ALTER TABLE $s.orders$p ADD PRIMARY KEY (tenant_id, order_id), ADD UNIQUE (tenant_id, order_no);
CREATE INDEX ON $s.orders$p (tenant_id, created_at DESC, order_id DESC) INCLUDE (status, total_cents);
CREATE INDEX ON $s.orders$p (tenant_id, customer_id, created_at DESC);
CREATE INDEX ON $s.orders$p (tenant_id, created_at) WHERE status = 'paid';
ALTER TABLE $s.order_lines$p ADD PRIMARY KEY (tenant_id, order_id, line_no);
CREATE INDEX ON $s.order_lines$p (tenant_id, product_id);
ALTER TABLE $s.payments$p ADD PRIMARY KEY (tenant_id, payment_id), ADD UNIQUE (tenant_id, provider_ref);
CREATE INDEX ON $s.payments$p (tenant_id, order_id);
ALTER TABLE $s.journal_entries$p ADD PRIMARY KEY (tenant_id, entry_id);
CREATE INDEX ON $s.journal_entries$p (tenant_id, order_id) WHERE order_id IS NOT NULL;
ALTER TABLE $s.postings$p ADD PRIMARY KEY (tenant_id, entry_id, posting_no);
CREATE INDEX ON $s.postings$p (tenant_id, account_id) INCLUDE (amount_cents);
ALTER TABLE $s.stock$p ADD PRIMARY KEY (tenant_id, product_id);
SQL
}
remote() { [ "$1" = shard_2n ] && [ "$2" -ge "$REMOTE_FROM" ]; }

echo "== two-node layout: postgres_fdw, PostgreSQL $M1, node2 on port $NODE2_PORT =="
declare -A LOAD_S
if [ -n "${CAPSTONE_TWO_NODE_REUSE:-}" ] && "${Q[@]}" -c "SELECT 1 FROM pg_class WHERE relname = 'orders_p7' AND relnamespace = 'shard_2n'::regnamespace" 2>/dev/null | grep -q 1; then
  echo "   reusing the layouts of the previous run (CAPSTONE_TWO_NODE_REUSE)"
  LOAD_S[shard_local]=reused; LOAD_S[shard_2n]=reused
else
"${N2[@]}" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" -c "DROP SCHEMA IF EXISTS shard_2n CASCADE" \
  -c "CREATE SCHEMA shard_2n" 2>&1 | grep -v NOTICE || true
"${PSQL[@]}" -d "$DB" -q -v port="$NODE2_PORT" -v db="$DB" <<'SQL' 2>&1 | grep -v NOTICE || true
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS postgres_fdw;
DROP SCHEMA IF EXISTS shard_local CASCADE;
DROP SCHEMA IF EXISTS shard_2n CASCADE;
DROP SERVER IF EXISTS capstone_node2 CASCADE;
-- async_capable: an Append over foreign partitions runs their scans concurrently;
-- fdw_tuple_cost 0.2 is PostgreSQL 17's default (0.01 before), so shipping rows is not
-- costed as nearly free against pushing an aggregate down
CREATE SERVER capstone_node2 FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '127.0.0.1', port :'port', dbname :'db', async_capable 'true', fetch_size '1000',
           batch_size '1000', fdw_tuple_cost '0.2');
CREATE USER MAPPING FOR CURRENT_USER SERVER capstone_node2 OPTIONS (user 'postgres');
SQL

for L in shard_local shard_2n; do
  {
    echo "CREATE SCHEMA $L;"
    for sq in orders.order_id payments.payment_id journal_entries.entry_id; do
      t=${sq%.*}; c=${sq#*.}
      echo "CREATE SEQUENCE $L.${t}_${c}_seq; SELECT setval('$L.${t}_${c}_seq', (SELECT max($c) FROM shop.$t));"
    done
    for t in "${TABLES[@]}"; do
      echo "CREATE TABLE $L.$t ($(columns "$t")) PARTITION BY HASH (tenant_id);"
    done
    echo "ALTER TABLE $L.orders ALTER COLUMN order_id SET DEFAULT nextval('$L.orders_order_id_seq');"
    echo "ALTER TABLE $L.payments ALTER COLUMN payment_id SET DEFAULT nextval('$L.payments_payment_id_seq');"
    echo "ALTER TABLE $L.journal_entries ALTER COLUMN entry_id SET DEFAULT nextval('$L.journal_entries_entry_id_seq');"
    for ((r = 0; r < PARTS; r++)); do
      for t in "${TABLES[@]}"; do
        if remote "$L" "$r"; then
          echo "CREATE FOREIGN TABLE $L.${t}_p$r PARTITION OF $L.$t FOR VALUES WITH (MODULUS $PARTS, REMAINDER $r)
                  SERVER capstone_node2 OPTIONS (schema_name '$L', table_name '${t}_p$r');"
        else
          echo "CREATE TABLE $L.${t}_p$r PARTITION OF $L.$t FOR VALUES WITH (MODULUS $PARTS, REMAINDER $r);"
        fi
      done
    done
  } | "${PSQL[@]}" -d "$DB" -q > /dev/null
  if [ "$L" = shard_2n ]; then
    for ((r = REMOTE_FROM; r < PARTS; r++)); do
      for t in "${TABLES[@]}"; do echo "CREATE TABLE shard_2n.${t}_p$r ($(columns "$t"));"; done
    done | "${N2[@]}" > /dev/null
  fi
  # load, then keys and indexes (as the lab generator does)
  t0=$(now_s)
  for t in "${TABLES[@]}"; do
    "${Q[@]}" -q -c "INSERT INTO $L.$t SELECT * FROM shop.$t"
  done
  LOAD_S[$L]=$(elapsed "$t0" "$(now_s)")
  t0=$(now_s)
  for ((r = 0; r < PARTS; r++)); do
    if remote "$L" "$r"; then indexes "$L" "_p$r" | "${N2[@]}" > /dev/null
    else indexes "$L" "_p$r" | "${PSQL[@]}" -d "$DB" -q > /dev/null; fi
  done
  [ "$L" = shard_2n ] && "${N2[@]}" -c "VACUUM (ANALYZE)" > /dev/null
  # foreign tables are analyzed only when named (postgres_fdw samples node2)
  for ((r = 0; r < PARTS; r++)); do
    for t in "${TABLES[@]}"; do
      if remote "$L" "$r"; then "${Q[@]}" -q -c "ANALYZE $L.${t}_p$r"
      else "${Q[@]}" -q -c "VACUUM (ANALYZE) $L.${t}_p$r"; fi
    done
  done
  for t in "${TABLES[@]}"; do "${Q[@]}" -q -c "ANALYZE $L.$t" 2>/dev/null; done
  echo "   $L: loaded $(printf '%s ' "${TABLES[@]}")in ${LOAD_S[$L]} s, keys and indexes in $(elapsed "$t0" "$(now_s)") s"
done
fi

# where the data went: the share of orders (and of the lab's Zipf-skewed load) on node2;
# both layouts use the same bounds, so the all-local one answers without crossing nodes
read -r REMOTE_ROWS TOTAL_ROWS < <("${Q[@]}" -F' ' -c "
  SELECT count(*) FILTER (WHERE right(tableoid::regclass::text, 1)::int >= $REMOTE_FROM), count(*) FROM shard_local.orders")
REMOTE_SHARE=$(awk -v a="$REMOTE_ROWS" -v b="$TOTAL_ROWS" 'BEGIN { printf "%.1f", 100 * a / b }')
read -r T_LOCAL T_REMOTE < <("${Q[@]}" -F' ' -c "
  WITH t AS (SELECT tenant_id, right(tableoid::regclass::text, 1)::int >= $REMOTE_FROM AS remote, count(*) AS n
               FROM shard_local.orders GROUP BY 1, 2)
  SELECT (SELECT tenant_id FROM t WHERE NOT remote ORDER BY n DESC LIMIT 1),
         (SELECT tenant_id FROM t WHERE remote ORDER BY n DESC LIMIT 1)")
echo "   node2 holds $REMOTE_SHARE% of the orders; largest local tenant $T_LOCAL, largest remote tenant $T_REMOTE"
PART_SHARES=$("${Q[@]}" -c "SELECT string_agg(format('p%s %s%%', right(p::text, 1), round(100.0 * n / tot, 1)), ', ' ORDER BY p::text)
  FROM (SELECT tableoid::regclass AS p, count(*) AS n, sum(count(*)) OVER () AS tot FROM shard_local.orders GROUP BY 1) x")
echo "   orders per partition (p4-p7 on node2 in shard_2n): $PART_SHARES"

# --- the write load ---------------------------------------------------------------
echo "== write load: ${STEP}s at $CLIENTS clients, each layout twice, alternating =="
n2_stats() { "${N2[@]}" -tA -F' ' -c "SELECT (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())),
  (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
  (SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables WHERE schemaname = 'shard_2n' AND relname LIKE 'orders_p%')"; }
local_orders() { "${Q[@]}" -c "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables WHERE schemaname = 'shard_2n' AND relname LIKE 'orders_p%'"; }
RT=$WORK/remote.tsv
: > "$RT"
for round in 1 2; do
  "${Q[@]}" -q -c "CHECKPOINT"; "${N2[@]}" -c "CHECKPOINT" > /dev/null
  measure "write:shop" "$CLIENTS" "$STEP" "$ROOT/lab/workload/place_order.sql" "$PORT"
  "${Q[@]}" -q -c "CHECKPOINT"
  PGOPTIONS="-c search_path=shard_local,shop" measure "write:shard_local" "$CLIENTS" "$STEP" "$ROOT/lab/workload/place_order_sharded.sql" "$PORT"
  "${Q[@]}" -q -c "CHECKPOINT"; "${N2[@]}" -c "CHECKPOINT" -c "SELECT pg_stat_statements_reset()" > /dev/null
  read -r c0 x0 r0 < <(n2_stats); l0=$(local_orders)
  PGOPTIONS="-c search_path=shard_2n,shop" measure "write:shard_2n" "$CLIENTS" "$STEP" "$ROOT/lab/workload/place_order_sharded.sql" "$PORT"
  sleep 1
  read -r c1 x1 r1 < <(n2_stats); l1=$(local_orders)
  printf '%s\t%s\t%s\t%s\n' "$((c1 - c0))" "$((x1 - x0))" "$((r1 - r0))" "$((l1 - l0))" >> "$RT"
  awk -F'\t' 'END { printf "   node2: %d statements in %d commits (%.1f per remote transaction); orders written remotely %d, locally %d\n", $1, $2, $1 / ($2 ? $2 : 1), $3, $4 }' "$RT"
done

# --- the queries ------------------------------------------------------------------
CUTOFF=$("${Q[@]}" -c "SELECT (now() - interval '30 days')::timestamptz(0)")
# postgres_fdw ships only immutable expressions without a collatable input of their own:
# now() is stable, so the cutoff is a literal (as an application would bind it), and
# date_trunc('day', ...) takes a text argument, so days are date_bin() buckets (UTC days)
DAY="date_bin('1 day', created_at, '2000-01-01 00:00+00')"
FILTER="created_at >= '$CUTOFF' AND status IN ('paid', 'shipped', 'delivered')"
declare -A QUERY
QUERY[global_daily_revenue]="SELECT $DAY AS day, count(*) AS orders, sum(total_cents) AS revenue_cents FROM orders WHERE $FILTER GROUP BY 1 ORDER BY 1"
QUERY[global_daily_revenue_per_tenant_first]="SELECT day, sum(orders) AS orders, sum(revenue_cents) AS revenue_cents FROM (SELECT tenant_id, $DAY AS day, count(*) AS orders, sum(total_cents) AS revenue_cents FROM orders WHERE $FILTER GROUP BY 1, 2) per_tenant GROUP BY 1 ORDER BY 1"
# one tenant: grouping by tenant_id as well (a constant here) makes the aggregate whole per
# partition, so postgres_fdw can push it down instead of shipping the tenant's rows
QUERY[tenant_daily_revenue_local_tenant]="SELECT $DAY AS day, count(*) AS orders, sum(total_cents) AS revenue_cents FROM orders WHERE tenant_id = $T_LOCAL AND $FILTER GROUP BY tenant_id, 1 ORDER BY 1"
QUERY[tenant_daily_revenue_remote_tenant]="SELECT $DAY AS day, count(*) AS orders, sum(total_cents) AS revenue_cents FROM orders WHERE tenant_id = $T_REMOTE AND $FILTER GROUP BY tenant_id, 1 ORDER BY 1"
QT=$WORK/queries.tsv
: > "$QT"
echo "== queries: median of 5 EXPLAIN ANALYZE runs (TIMING OFF) per layout =="
for L in shop shard_local shard_2n; do
  for name in global_daily_revenue global_daily_revenue_per_tenant_first tenant_daily_revenue_local_tenant tenant_daily_revenue_remote_tenant; do
    q=${QUERY[$name]}
    setup="SET search_path = $L, shop; SET enable_partitionwise_aggregate = on; SET enable_partitionwise_join = on;"
    times=$(for i in 0 1 2 3 4 5; do
        "${Q[@]}" -c "$setup" -c "EXPLAIN (ANALYZE, TIMING OFF, COSTS OFF) $q" | grep -oE 'Execution Time: [0-9.]+' | awk '{print $3}'
      done | tail -n 5 | sort -n)
    med=$(echo "$times" | sed -n 3p)
    plan=$("${Q[@]}" -c "$setup" -c "EXPLAIN (ANALYZE, VERBOSE, TIMING OFF, COSTS OFF) $q")
    echo "$plan" > "$WORK/plan-$L-$name.txt"
    async=$(grep -c 'Async Foreign Scan' <<< "$plan" || true)
    fscan=$(grep -cE 'Foreign Scan' <<< "$plan" || true)
    pushed=$( (grep -E 'Remote SQL:' <<< "$plan" || true) | grep -c 'GROUP BY' || true)
    rows=$( (grep -E 'Foreign Scan' <<< "$plan" || true) | grep -oE 'actual rows=[0-9]+' | awk -F= '{s += $2} END {print s + 0}' || true)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$L" "$name" "$med" "$fscan" "$async" "$pushed" "$rows" >> "$QT"
    printf '  %-12s %-40s %9s ms  foreign scans %s (async %s), aggregates pushed %s, rows from node2 %s\n' \
      "$L" "$name" "$med" "$fscan" "$async" "$pushed" "$rows"
  done
done

# --- evidence ---------------------------------------------------------------------
to_values() { awk -F'\t' '{ s = "("; for (i = 1; i <= NF; i++) s = s (i > 1 ? "," : "") "\x27" $i "\x27"; rows = rows (NR > 1 ? "," : "") s ")" } END { print rows }' "$1"; }
PLANS=$(for L in shard_local shard_2n; do
  for name in global_daily_revenue global_daily_revenue_per_tenant_first tenant_daily_revenue_remote_tenant; do
    echo "-- $L: $name"; grep -vE '^ *(Output|Sort Key|Group Key|Batches|Sort Method|Worker [0-9]|Rows Removed|Filter):' "$WORK/plan-$L-$name.txt" | sed -n '1,30p'; echo; done; done)
"${PSQL[@]}" -d "$DB" -q -v rows="$(to_values "$RESULTS")" -v qrows="$(to_values "$QT")" -v rt="$(to_values "$RT")" \
  -v clients="$CLIENTS" -v step="$STEP" -v remote_share="$REMOTE_SHARE" -v parts="$PART_SHARES" \
  -v load_local="${LOAD_S[shard_local]}" -v load_2n="${LOAD_S[shard_2n]}" -v plans="$PLANS" \
  -v t_local="$T_LOCAL" -v t_remote="$T_REMOTE" <<'SQL'
CREATE TEMP TABLE r (name text, clients int, tps float8, avg_ms float8, p50_ms float8, p99_ms float8, failed bigint,
                     cpu_us float8, cpu_sy float8, cpu_idle float8, cpu_wa float8, io_bo_kbps float8,
                     wal_bytes_per_txn float8, fpi_per_txn float8, checkpoints int, backend_writes bigint, load1 float8,
                     seq serial);
INSERT INTO r (name, clients, tps, avg_ms, p50_ms, p99_ms, failed, cpu_us, cpu_sy, cpu_idle, cpu_wa, io_bo_kbps, wal_bytes_per_txn, fpi_per_txn, checkpoints, backend_writes, load1)
VALUES :rows;
CREATE TEMP TABLE qt (layout text, query text, median_ms float8, foreign_scans int, async_scans int, pushed_aggs int, remote_rows bigint);
INSERT INTO qt VALUES :qrows;
CREATE TEMP TABLE rt (statements bigint, commits bigint, remote_orders bigint, local_orders bigint);
INSERT INTO rt VALUES :rt;
\pset footer off
CREATE TEMP VIEW w AS
SELECT split_part(name, ':', 2) AS layout, round(avg(tps)) AS tps, string_agg(round(tps)::text, ' / ' ORDER BY seq) AS runs,
       round(avg(p50_ms)::numeric, 2) AS p50_ms, round(avg(p99_ms)::numeric, 2) AS p99_ms,
       round(avg(cpu_us + cpu_sy)::numeric) AS cpu_busy, round(avg(wal_bytes_per_txn)) AS coordinator_wal_per_txn,
       sum(failed) AS failed, min(seq) AS seq
  FROM r GROUP BY 1;
\echo
\echo '== write load (place_order; the partitioned layouts run place_order_sharded) =='
SELECT layout, tps, runs, p50_ms, p99_ms, failed, cpu_busy, coordinator_wal_per_txn FROM w ORDER BY seq;
\echo '== queries =='
SELECT q.query, round(s.median_ms::numeric, 1) AS shop_ms, round(l.median_ms::numeric, 1) AS shard_local_ms,
       round(t.median_ms::numeric, 1) AS shard_2n_ms, round((t.median_ms / nullif(l.median_ms, 0))::numeric, 2) AS two_node_vs_local,
       t.foreign_scans, t.async_scans, t.pushed_aggs AS aggregates_pushed_down, t.remote_rows AS rows_from_node2
  FROM (SELECT DISTINCT query FROM qt) q
  JOIN qt s ON s.query = q.query AND s.layout = 'shop'
  JOIN qt l ON l.query = q.query AND l.layout = 'shard_local'
  JOIN qt t ON t.query = q.query AND t.layout = 'shard_2n'
 ORDER BY q.query;
INSERT INTO capstone.evidence (gate, label, settings, payload)
SELECT 'sharding', 'two nodes: postgres_fdw hash partitions by tenant_id',
       jsonb_build_object('clients', :clients, 'seconds', :step, 'partitions', 8, 'remote_partitions', '4-7',
                          'server_options', 'async_capable true, fetch_size 1000, batch_size 1000, fdw_tuple_cost 0.2',
                          'enable_partitionwise_aggregate', 'on'),
       jsonb_build_object(
         'summary', format('orders, order_lines, payments, journal_entries, postings and stock hash-partitioned by tenant_id into 8, co-located; in the 2-node layout partitions 4-7 are postgres_fdw foreign tables on a second PostgreSQL %s cluster **on the same 2-core machine** (so this measures what distribution costs, not the capacity a second machine adds). node2 holds %s%% of the orders (%s). Bulk load: %s s into 8 local partitions, %s s into 4 local + 4 remote. Write load at %s clients: shop (lab, with FKs and triggers) %s TPS, shard_local %s TPS, shard_2n %s TPS (p99 %s / %s / %s ms). On node2, each remote place_order transaction ran %s statements (one round trip each: %s statements in %s remote commits). %s transactions failed on the 2-node layout against %s on one node: postgres_fdw runs its remote transactions at REPEATABLE READ, so two orders decrementing the same stock row on node2 end in a serialization failure (40001) where one node would wait and proceed. Two-phase commit: none; postgres_fdw commits the remote transaction just before the local one, so a failure between the two leaves node2 committed alone.',
                           current_setting('server_version'), :'remote_share', :'parts', :'load_local', :'load_2n', :clients,
                           (SELECT tps FROM w WHERE layout = 'shop'), (SELECT tps FROM w WHERE layout = 'shard_local'),
                           (SELECT tps FROM w WHERE layout = 'shard_2n'), (SELECT p99_ms FROM w WHERE layout = 'shop'),
                           (SELECT p99_ms FROM w WHERE layout = 'shard_local'), (SELECT p99_ms FROM w WHERE layout = 'shard_2n'),
                           (SELECT round(sum(statements)::numeric / nullif(sum(commits), 0), 1) FROM rt),
                           (SELECT sum(statements) FROM rt), (SELECT sum(commits) FROM rt),
                           (SELECT failed FROM w WHERE layout = 'shard_2n'), (SELECT failed FROM w WHERE layout = 'shard_local')),
         'table', (SELECT jsonb_agg(x ORDER BY x->>'kind', x->>'what') FROM (
                     SELECT jsonb_build_object('kind', 'write', 'what', layout, 'shop', '', 'shard_local', '', 'shard_2n', '',
                                               'value', tps || ' TPS (runs ' || runs || '), ' || failed || ' failed', 'p99 ms', p99_ms) AS x FROM w
                     UNION ALL
                     SELECT jsonb_build_object('kind', 'query', 'what', q.query,
                                               'shop', round(s.median_ms::numeric, 1) || ' ms',
                                               'shard_local', round(l.median_ms::numeric, 1) || ' ms',
                                               'shard_2n', round(t.median_ms::numeric, 1) || ' ms',
                                               'value', format('%s foreign scans (%s async), %s aggregates pushed down, %s rows from node2',
                                                               t.foreign_scans, t.async_scans, t.pushed_aggs, t.remote_rows),
                                               'p99 ms', '')
                       FROM (SELECT DISTINCT query FROM qt) q
                       JOIN qt s ON s.query = q.query AND s.layout = 'shop'
                       JOIN qt l ON l.query = q.query AND l.layout = 'shard_local'
                       JOIN qt t ON t.query = q.query AND t.layout = 'shard_2n') y),
         'chart', jsonb_build_object('title', 'Queries per layout: median execution time', 'kind', 'bar',
                                     'x_label', 'query', 'y_label', 'ms (log scale)', 'log_y', true,
                                     'categories', (SELECT jsonb_agg(query ORDER BY query) FROM (SELECT DISTINCT query FROM qt) q),
                                     'series', (SELECT jsonb_agg(jsonb_build_object('name', layout, 'points', pts) ORDER BY layout)
                                                  FROM (SELECT layout, jsonb_agg(jsonb_build_array(i - 1, median_ms) ORDER BY i) AS pts
                                                          FROM (SELECT qt.*, dense_rank() OVER (ORDER BY query) AS i FROM qt) z GROUP BY layout) s)),
         'text', :'plans',
         'write_ratio', (SELECT round((a.tps / nullif(b.tps, 0))::numeric, 2) FROM w a, w b WHERE a.layout = 'shard_2n' AND b.layout = 'shard_local'),
         'verdict', format('2-node write TPS %s× of the same partitioning on one node; global revenue %s× / per-tenant-first %s×; a remote tenant''s query %s×',
                           (SELECT round((a.tps / nullif(b.tps, 0))::numeric, 2) FROM w a, w b WHERE a.layout = 'shard_2n' AND b.layout = 'shard_local'),
                           (SELECT round((t.median_ms / nullif(l.median_ms, 0))::numeric, 2) FROM qt t JOIN qt l USING (query) WHERE t.layout = 'shard_2n' AND l.layout = 'shard_local' AND query = 'global_daily_revenue'),
                           (SELECT round((t.median_ms / nullif(l.median_ms, 0))::numeric, 2) FROM qt t JOIN qt l USING (query) WHERE t.layout = 'shard_2n' AND l.layout = 'shard_local' AND query = 'global_daily_revenue_per_tenant_first'),
                           (SELECT round((t.median_ms / nullif(l.median_ms, 0))::numeric, 2) FROM qt t JOIN qt l USING (query) WHERE t.layout = 'shard_2n' AND l.layout = 'shard_local' AND query = 'tenant_daily_revenue_remote_tenant')));
SQL
