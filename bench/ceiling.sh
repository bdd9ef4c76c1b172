#!/usr/bin/env bash
# The single-node write ceiling, and the levers to pull before sharding, measured on
# the lab (load it first: SELECT * FROM capstone.lab_install(scale => 1)).
#   bench/ceiling.sh
# 1. The ramp: lab/workload/place_order.sql at 1, 2, 4, 8, 16, 32, 64 clients,
#    CAPSTONE_CEILING_SECONDS (default 10) each. Per step: TPS, p50/p99 from the pgbench
#    -l log, CPU and block writes from vmstat, WAL bytes and full-page images per
#    transaction (pg_stat_wal), checkpoints and backend buffer writes (pg_stat_bgwriter on
#    15, pg_stat_io / pg_stat_checkpointer on 16+). The plateau is the fewest clients
#    whose TPS is within 10% of the best step.
# 2. The levers, as before/after pairs at the plateau, each pair run twice alternately
#    (A B A B) because this machine's spread between runs is 10-25%:
#    (a) index/query: stock_pkey dropped (place_order's stock UPDATE seq-scans) vs
#        present; the seven read-serving secondary indexes dropped vs present
#    (b) pooling: 64 clients direct vs through the lab's PgBouncer (transaction mode,
#        pool size = the plateau's clients)
#    (c) partitioning: a copy of the write path with orders hash-partitioned by tenant_id
#        (8 partitions) vs the same copy unpartitioned (same indexes, FKs, triggers)
#    (d) settings: synchronous_commit = off (an experiment, not a recommendation: it
#        loses the last commits on a crash); max_wal_size 64MB vs the lab's 4GB
#    (e) read replicas and vertical scaling: on paper, from the numbers above
# Everything lands in capstone.evidence (gate 'sharding') with charts; the lab is left
# as found (dropped indexes are re-created, settings reset, copies dropped).
# Settings: CAPSTONE_PG, CAPSTONE_LAB_PORT, CAPSTONE_POOL_PORT, CAPSTONE_LAB_DB,
#   CAPSTONE_CEILING_SECONDS, CAPSTONE_CEILING_CLIENTS ("1 2 4 8 16 32 64"),
#   CAPSTONE_CEILING_LEVERS ("a b c d"; empty skips the levers).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
. "$HERE/lib_pgbench.sh"
DB=${CAPSTONE_LAB_DB:-capstone_lab}
STEP=${CAPSTONE_CEILING_SECONDS:-10}
read -r -a RAMP <<< "${CAPSTONE_CEILING_CLIENTS:-1 2 4 8 16 32 64}"
LEVERS=${CAPSTONE_CEILING_LEVERS-a b c d}
WORK=$(mktemp -d /tmp/capstone-ceiling.XXXXXX)
chmod 755 "$WORK"
RESULTS=$WORK/results.tsv
: > "$RESULTS"
Q=("${PSQL[@]}" -d "$DB" -tA)
PLACE=$ROOT/lab/workload/place_order.sql

"${Q[@]}" -c "SELECT 1 FROM shop.orders LIMIT 1" > /dev/null 2>&1 || {
  echo "ceiling: no lab in $DB on port $PORT: SELECT * FROM capstone.lab_install(scale => 1)" >&2; exit 2; }
MAJOR_RUN=$("${Q[@]}" -c "SELECT current_setting('server_version_num')::int / 10000")
SNAP=$(snap_sql "$MAJOR_RUN")
NT=$("${Q[@]}" -c "SELECT count(*) FROM shop.tenants")
NO=$("${Q[@]}" -c "SELECT max(order_id) FROM shop.orders")
PGB_VARS=(-D "ntenants=$NT" -D "norders=$NO")

# --- leave the lab as found, whatever happens -------------------------------------
SAVED_INDEXES=$WORK/indexes.sql
restore() {
  set +e
  "${Q[@]}" -q -c "ALTER SYSTEM RESET max_wal_size" -c "SELECT pg_reload_conf()" > /dev/null 2>&1
  if ! "${Q[@]}" -c "SELECT 1 FROM pg_constraint WHERE conname = 'stock_pkey'" | grep -q 1; then
    echo "ceiling: re-creating shop.stock_pkey"
    "${Q[@]}" -q -c "ALTER TABLE shop.stock ADD CONSTRAINT stock_pkey PRIMARY KEY (tenant_id, product_id)"
  fi
  [ -s "$SAVED_INDEXES" ] && setup_with_indexes
  "${Q[@]}" -q -c "DROP SCHEMA IF EXISTS lever_plain CASCADE" -c "DROP SCHEMA IF EXISTS lever_part CASCADE" > /dev/null 2>&1
  "$BIN/psql" -X -q -h "$HOST" -p "$POOL_PORT" -U postgres -d pgbouncer -c "SET default_pool_size = 20" > /dev/null 2>&1
  rm -rf "$WORK"
}
trap restore EXIT

echo "== single-node write ceiling: place_order.sql, ${STEP}s per step, PostgreSQL $MAJOR_RUN, $(nproc) cores =="
echo "   (machine load before: $(cut -d' ' -f1-3 /proc/loadavg); other processes share these cores)"
"${Q[@]}" -q -c "CHECKPOINT"
measure warmup 8 5 "$PLACE" "$PORT" > /dev/null
: > "$RESULTS"
# two passes, up then down, so a burst of load from other processes on this shared
# machine does not land on one client count only; each step reports the mean
for c in "${RAMP[@]}"; do
  measure ramp "$c" "$STEP" "$PLACE" "$PORT"
done
for ((i = ${#RAMP[@]} - 1; i >= 0; i--)); do
  measure ramp "${RAMP[$i]}" "$STEP" "$PLACE" "$PORT"
done

# the plateau: fewest clients whose mean TPS is within 10% of the best mean
read -r BEST PLATEAU PLAT_TPS < <(awk -F'\t' '$1 == "ramp" { t[$2] += $3; n[$2]++ }
  END { for (c in t) { m[c] = t[c] / n[c]; if (m[c] > best) best = m[c] }
        min = 1e9; for (c in m) if (m[c] >= 0.9 * best && c + 0 < min) min = c + 0;
        printf "%.0f %d %.0f\n", best, min, m[min] }' "$RESULTS")
echo "best: $BEST tps; plateau from $PLATEAU clients ($PLAT_TPS tps)"

# --- the levers ---------------------------------------------------------------------
ab() { # ab LEVER VARIANT_A VARIANT_B SECONDS CLIENTS: runs the two set-up functions alternately
  local lever=$1 a=$2 b=$3 secs=$4 clients=$5
  for round in 1 2; do
    "setup_$a"; "${Q[@]}" -q -c "CHECKPOINT"; "run_$a" "$lever:$a" "$clients" "$secs"
    "setup_$b"; "${Q[@]}" -q -c "CHECKPOINT"; "run_$b" "$lever:$b" "$clients" "$secs"
  done
  "setup_$a"
}
direct() { measure "$1" "$2" "$3" "$PLACE" "$PORT"; }

# (a1) one index that place_order needs
setup_stock_pkey() {
  "${Q[@]}" -c "SELECT 1 FROM pg_constraint WHERE conname = 'stock_pkey'" | grep -q 1 \
    || "${Q[@]}" -q -c "ALTER TABLE shop.stock ADD CONSTRAINT stock_pkey PRIMARY KEY (tenant_id, product_id)"
}
setup_no_stock_pkey() { "${Q[@]}" -q -c "ALTER TABLE shop.stock DROP CONSTRAINT IF EXISTS stock_pkey"; }
run_stock_pkey() { direct "$@"; }
run_no_stock_pkey() { direct "$@"; }
# (a2) the seven secondary indexes that serve reads (each proven by the plans gate)
SECONDARY="'orders_tenant_created_idx','orders_customer_idx','orders_open_idx','order_lines_product_idx','payments_order_idx','journal_entries_order_idx','postings_account_idx'"
setup_with_indexes() {
  if [ -s "$SAVED_INDEXES" ]; then
    while read -r def; do
      name=$(echo "$def" | awk '{print $3}')
      "${Q[@]}" -c "SELECT 1 FROM pg_class WHERE relname = '$name' AND relnamespace = 'shop'::regnamespace" | grep -q 1 \
        || { echo "   re-creating $name"; "${Q[@]}" -q -c "$def"; }
    done < "$SAVED_INDEXES"
  fi
}
setup_without_indexes() {
  [ -s "$SAVED_INDEXES" ] || "${Q[@]}" -c "SELECT pg_get_indexdef(c.oid) FROM pg_class c
      WHERE c.relnamespace = 'shop'::regnamespace AND c.relname IN ($SECONDARY) ORDER BY c.relname" > "$SAVED_INDEXES"
  "${Q[@]}" -q -c "SELECT format('DROP INDEX shop.%I', relname) FROM pg_class
      WHERE relnamespace = 'shop'::regnamespace AND relname IN ($SECONDARY)" | while read -r d; do "${Q[@]}" -q -c "$d"; done
}
run_with_indexes() { direct "$@"; }
run_without_indexes() { direct "$@"; }
# (b) pooling
setup_direct() { :; }
setup_pooled() {
  "$BIN/psql" -X -q -h "$HOST" -p "$POOL_PORT" -U postgres -d pgbouncer -c "SET default_pool_size = $POOL_SIZE" > /dev/null
  "$BIN/psql" -X -q -h "$HOST" -p "$POOL_PORT" -U postgres -d pgbouncer -c "RECONNECT" > /dev/null 2>&1 || true
}
run_direct() { direct "$@"; }
run_pooled() { measure "$1" "$2" "$3" "$PLACE" "$POOL_PORT"; }
# (c) partitioning, on copies of the write path
setup_unpartitioned() { :; }
setup_partitioned() { :; }
run_unpartitioned() { measure "$1" "$2" "$3" "$WORK/place_order_lever_plain.sql" "$PORT"; }
run_partitioned() { measure "$1" "$2" "$3" "$WORK/place_order_lever_part.sql" "$PORT"; }
# (d) settings
setup_sync_on() { :; }
setup_sync_off() { :; }
run_sync_on() { direct "$@"; }
run_sync_off() { PGOPTIONS="-c synchronous_commit=off" direct "$@"; }
setup_wal_4gb() { "${Q[@]}" -q -c "ALTER SYSTEM RESET max_wal_size" -c "SELECT pg_reload_conf()" > /dev/null; }
setup_wal_64mb() { "${Q[@]}" -q -c "ALTER SYSTEM SET max_wal_size = '64MB'" -c "SELECT pg_reload_conf()" > /dev/null; }
run_wal_4gb() { direct "$@"; }
run_wal_64mb() { direct "$@"; }

copy_write_path() { # copy_write_path SCHEMA PARTITIONS: orders, order_lines, payments, journal_entries, postings, stock
  "${PSQL[@]}" -d "$DB" -q -v sch="$1" -v parts="$2" <<'SQL'
CREATE OR REPLACE FUNCTION pg_temp.retarget(def text, s text) RETURNS text LANGUAGE sql AS $$
  SELECT regexp_replace(def, '\mshop\.(orders|order_lines|payments|journal_entries|postings|stock|order_total_sync|check_entry_balanced)\M',
                        s || '.\1', 'g') $$;
CREATE OR REPLACE FUNCTION pg_temp.copy_write_path(s text, parts int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  tabs text[] := ARRAY['orders', 'order_lines', 'payments', 'journal_entries', 'postings', 'stock'];
  t text;
  r record;
  i int;
BEGIN
  EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', s);
  EXECUTE format('CREATE SCHEMA %I', s);
  FOREACH t IN ARRAY tabs LOOP
    IF t = 'orders' AND parts > 0 THEN
      EXECUTE format('CREATE TABLE %I.orders (LIKE shop.orders INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY HASH (tenant_id)', s);
      FOR i IN 0 .. parts - 1 LOOP
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.orders FOR VALUES WITH (MODULUS %s, REMAINDER %s)',
                       s, 'orders_p' || i, s, parts, i);
      END LOOP;
    ELSE
      EXECUTE format('CREATE TABLE %I.%I (LIKE shop.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', s, t, t);
    END IF;
    EXECUTE format('INSERT INTO %I.%I SELECT * FROM shop.%I', s, t, t);
  END LOOP;
  -- identities become sequences owned by the copy, continuing after the lab's ids
  FOR r IN SELECT * FROM (VALUES ('orders', 'order_id'), ('payments', 'payment_id'), ('journal_entries', 'entry_id')) v(t, c) LOOP
    EXECUTE format('CREATE SEQUENCE %I.%I', s, r.t || '_' || r.c || '_seq');
    EXECUTE format('SELECT setval(%L, (SELECT max(%I) FROM shop.%I))', s || '.' || r.t || '_' || r.c || '_seq', r.c, r.t);
    EXECUTE format('ALTER TABLE %I.%I ALTER COLUMN %I SET DEFAULT nextval(%L)', s, r.t, r.c, s || '.' || r.t || '_' || r.c || '_seq');
  END LOOP;
  -- keys, then foreign keys (retargeted at the copies), then the other indexes
  FOR r IN SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) AS def, k.contype
             FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
            WHERE c.relnamespace = 'shop'::regnamespace AND c.relname = ANY (tabs) AND k.contype IN ('p', 'u', 'f')
            ORDER BY k.contype = 'f', k.conname LOOP
    EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s', s, r.relname, r.conname, pg_temp.retarget(r.def, s));
  END LOOP;
  FOR r IN SELECT pg_get_indexdef(i.indexrelid) AS def
             FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
            WHERE c.relnamespace = 'shop'::regnamespace AND c.relname = ANY (tabs)
              AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) LOOP
    EXECUTE pg_temp.retarget(r.def, s);
  END LOOP;
  -- the trigger functions and triggers, pointed at the copies
  EXECUTE pg_temp.retarget(pg_get_functiondef('shop.order_total_sync()'::regprocedure), s);
  EXECUTE pg_temp.retarget(pg_get_functiondef('shop.check_entry_balanced()'::regprocedure), s);
  FOR r IN SELECT pg_get_triggerdef(g.oid) AS def FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
            WHERE c.relnamespace = 'shop'::regnamespace AND c.relname = ANY (tabs) AND NOT g.tgisinternal LOOP
    EXECUTE pg_temp.retarget(r.def, s);
  END LOOP;
END $$;
SET client_min_messages = warning;
SELECT pg_temp.copy_write_path(:'sch', :parts) \g /dev/null
SQL
  "${Q[@]}" -q -c "VACUUM (ANALYZE) $1.orders, $1.order_lines, $1.payments, $1.journal_entries, $1.postings, $1.stock"
  sed -E "s/shop\.(orders|order_lines|payments|journal_entries|postings|stock)\b/$1.\1/g" "$PLACE" > "$WORK/place_order_$1.sql"
}

LC=$PLATEAU
POOL_SIZE=$PLATEAU
[ "$POOL_SIZE" -lt 2 ] && POOL_SIZE=2
for l in $LEVERS; do
  case $l in
    a) echo "== (a) index/query at $LC clients: stock_pkey dropped vs present; 7 secondary indexes dropped vs present =="
       ab a1 stock_pkey no_stock_pkey "$STEP" "$LC"
       ab a2 with_indexes without_indexes "$STEP" "$LC" ;;
    b) echo "== (b) pooling at 64 clients: direct vs PgBouncer transaction mode, pool $POOL_SIZE =="
       ab b direct pooled "$STEP" 64 ;;
    c) echo "== (c) partitioning: copies of the write path, orders unpartitioned vs hash(tenant_id) x 8 =="
       t0=$(now_s); copy_write_path lever_plain 0; copy_write_path lever_part 8
       echo "   copies built in $(elapsed "$t0" "$(now_s)") s"
       ab c unpartitioned partitioned "$STEP" "$LC" ;;
    d) echo "== (d) settings at $LC clients: synchronous_commit on vs off; max_wal_size 4GB vs 64MB =="
       ab d1 sync_on sync_off "$STEP" "$LC"
       ab d2 wal_4gb wal_64mb "$((STEP * 2))" "$LC" ;;
  esac
done

# --- evidence ------------------------------------------------------------------------
# the results as a VALUES list (psql does not interpolate variables into \copy)
ROWS=$(awk -F'\t' '{ s = "("; for (i = 1; i <= NF; i++) s = s (i > 1 ? "," : "") "\x27" $i "\x27"; rows = rows (NR > 1 ? "," : "") s ")" } END { print rows }' "$RESULTS")
"${PSQL[@]}" -d "$DB" -q -v step="$STEP" -v cores="$(nproc)" -v plateau="$PLATEAU" -v rows="$ROWS" <<'SQL'
CREATE TEMP TABLE r (name text, clients int, tps float8, avg_ms float8, p50_ms float8, p99_ms float8, failed bigint,
                     cpu_us float8, cpu_sy float8, cpu_idle float8, cpu_wa float8, io_bo_kbps float8,
                     wal_bytes_per_txn float8, fpi_per_txn float8, checkpoints int, backend_writes bigint, load1 float8,
                     seq serial);
INSERT INTO r (name, clients, tps, avg_ms, p50_ms, p99_ms, failed, cpu_us, cpu_sy, cpu_idle, cpu_wa, io_bo_kbps, wal_bytes_per_txn, fpi_per_txn, checkpoints, backend_writes, load1)
VALUES :rows;
\pset footer off
\echo
\echo '== the ramp =='
CREATE TEMP VIEW ramp AS
SELECT clients, avg(tps) AS tps, string_agg(round(tps)::text, ' / ' ORDER BY seq) AS runs,
       round(avg(p50_ms)::numeric, 2) AS p50_ms, round(avg(p99_ms)::numeric, 2) AS p99_ms,
       round(avg(cpu_us + cpu_sy)::numeric) AS cpu_busy, round(avg(cpu_wa)::numeric) AS cpu_wa,
       round((avg(io_bo_kbps) / 1024)::numeric, 1) AS disk_write_mbps, round(avg(wal_bytes_per_txn)) AS wal_bytes_per_txn,
       round(avg(fpi_per_txn)::numeric, 2) AS fpi_per_txn, sum(checkpoints) AS checkpoints,
       sum(backend_writes) AS backend_writes, round(avg(load1)::numeric, 1) AS load1
  FROM r WHERE name = 'ramp' GROUP BY clients;
SELECT clients, round(tps) AS tps, runs, p50_ms, p99_ms, cpu_busy AS cpu_busy_pct, cpu_wa AS cpu_iowait_pct,
       disk_write_mbps, wal_bytes_per_txn, fpi_per_txn, checkpoints, backend_writes, load1
  FROM ramp ORDER BY clients;
\echo '== the levers (mean of two alternating runs each) =='
CREATE TEMP VIEW lev AS
SELECT split_part(name, ':', 1) AS lever, split_part(name, ':', 2) AS variant, min(clients) AS clients,
       avg(tps) AS tps, avg(p99_ms) AS p99_ms, avg(wal_bytes_per_txn) AS wal_bytes_per_txn, avg(fpi_per_txn) AS fpi_per_txn,
       sum(checkpoints) AS checkpoints, min(seq) AS seq, string_agg(round(tps)::text, ' / ' ORDER BY seq) AS runs
  FROM r WHERE name LIKE '%:%' GROUP BY 1, 2;
CREATE TEMP VIEW pairs AS
SELECT a.lever, a.variant AS before, b.variant AS after, a.clients, round(a.tps) AS before_tps, round(b.tps) AS after_tps,
       round((b.tps / nullif(a.tps, 0))::numeric, 2) AS ratio, round(a.p99_ms::numeric, 1) AS before_p99_ms,
       round(b.p99_ms::numeric, 1) AS after_p99_ms, a.runs AS before_runs, b.runs AS after_runs,
       round(a.wal_bytes_per_txn) AS before_wal_per_txn, round(b.wal_bytes_per_txn) AS after_wal_per_txn,
       round(a.fpi_per_txn::numeric, 2) AS before_fpi_per_txn, round(b.fpi_per_txn::numeric, 2) AS after_fpi_per_txn,
       a.checkpoints AS before_ckpts, b.checkpoints AS after_ckpts
  FROM lev a JOIN lev b ON a.lever = b.lever AND a.seq < b.seq;
SELECT * FROM pairs ORDER BY lever;

-- the curve, with a chart of TPS and p99 against clients
WITH best AS (SELECT max(tps) AS tps FROM ramp),
plat AS (SELECT ramp.* FROM ramp, best WHERE ramp.tps >= 0.9 * best.tps ORDER BY clients LIMIT 1)
INSERT INTO capstone.evidence (gate, label, query, settings, payload)
SELECT 'sharding', 'ceiling: place_order client ramp', 'lab/workload/place_order.sql',
       jsonb_build_object('seconds_per_step', :step, 'cores', :cores, 'synchronous_commit', current_setting('synchronous_commit'),
                          'max_wal_size', current_setting('max_wal_size'), 'shared_buffers', current_setting('shared_buffers')),
       jsonb_build_object(
         'summary', format('Single-node write ceiling of the lab''s place_order transaction (7 statements, 8 rows written, 2 triggers) on %s cores, PostgreSQL %s, two passes per step (up, then down): TPS rises to **%s** and flattens from **%s clients** (within 10%% of the best step); there p99 is %s ms, CPU %s%% busy (%s%% iowait), %s bytes of WAL and %s full-page images per transaction. The machine is shared with other processes: load average %s during that step.',
                           :cores, current_setting('server_version'), round((SELECT tps FROM best)), (SELECT clients FROM plat),
                           (SELECT p99_ms FROM plat), (SELECT cpu_busy FROM plat), (SELECT cpu_wa FROM plat),
                           (SELECT wal_bytes_per_txn FROM plat), (SELECT fpi_per_txn FROM plat), (SELECT load1 FROM plat)),
         'table', (SELECT jsonb_agg(jsonb_build_object('clients', clients, 'tps', round(tps), 'runs', runs, 'p50 ms', p50_ms, 'p99 ms', p99_ms,
                                     'cpu busy %', cpu_busy, 'iowait %', cpu_wa, 'disk write MB/s', disk_write_mbps,
                                     'WAL bytes/txn', wal_bytes_per_txn, 'FPI/txn', fpi_per_txn,
                                     'checkpoints', checkpoints, 'backend writes', backend_writes, 'load1', load1) ORDER BY clients) FROM ramp),
         'chart', jsonb_build_object('title', 'place_order: TPS and p99 latency vs clients (single node)', 'kind', 'line',
                                     'x_label', 'pgbench clients', 'y_label', 'TPS / p99 ms (log scale)', 'log_y', true,
                                     'series', jsonb_build_array(
                                        jsonb_build_object('name', 'TPS', 'points', (SELECT jsonb_agg(jsonb_build_array(clients, round(tps)) ORDER BY clients) FROM ramp)),
                                        jsonb_build_object('name', 'p99 ms', 'points', (SELECT jsonb_agg(jsonb_build_array(clients, p99_ms) ORDER BY clients) FROM ramp)))),
         'verdict', format('write ceiling %s TPS, reached at %s clients (p99 %s ms)', round((SELECT tps FROM best)),
                           (SELECT clients FROM plat), (SELECT p99_ms FROM plat)),
         -- the figures the report's shard-or-not decision reads
         'ceiling_tps', round((SELECT tps FROM best)),
         'plateau_clients', (SELECT clients FROM plat),
         'demand_tps', (SELECT round((max(n) / 604800.0)::numeric, 3)
                          FROM (SELECT count(*) AS n FROM shop.orders GROUP BY date_trunc('week', created_at)) w),
         'demand_basis', 'the lab''s busiest week of orders, as place_order transactions per second')
 WHERE EXISTS (SELECT 1 FROM ramp);

-- the levers, with a before/after bar chart
INSERT INTO capstone.evidence (gate, label, settings, payload)
SELECT 'sharding', 'ceiling: levers before sharding',
       jsonb_build_object('plateau_clients', :plateau, 'seconds_per_run', :step, 'runs_per_variant', 2),
       jsonb_build_object(
         'summary', 'Each lever measured at the plateau (pooling at 64 clients), before and after, two alternating runs each (A B A B; the TPS of each run is listed). (a1) drops the one index place_order''s UPDATE needs; (a2) drops the seven secondary indexes that serve reads; (b) routes 64 clients through PgBouncer; (c) hash-partitions orders by tenant_id (8) on a copy of the write path against the same copy unpartitioned; (d1) synchronous_commit = off is an experiment, not a recommendation; (d2) max_wal_size 64MB against the lab''s 4GB.',
         'table', (SELECT jsonb_agg(to_jsonb(p) ORDER BY lever) FROM pairs p),
         'chart', jsonb_build_object('title', 'Levers: place_order TPS before and after', 'kind', 'bar',
                                     'x_label', 'lever', 'y_label', 'TPS', 'log_y', false,
                                     'categories', (SELECT jsonb_agg(lever || ' ' || after ORDER BY lever) FROM pairs),
                                     'series', jsonb_build_array(
                                        jsonb_build_object('name', 'before', 'points', (SELECT jsonb_agg(jsonb_build_array(n - 1, before_tps) ORDER BY n) FROM (SELECT row_number() OVER (ORDER BY lever) AS n, * FROM pairs) x)),
                                        jsonb_build_object('name', 'after', 'points', (SELECT jsonb_agg(jsonb_build_array(n - 1, after_tps) ORDER BY n) FROM (SELECT row_number() OVER (ORDER BY lever) AS n, * FROM pairs) x)))),
         'verdict', (SELECT string_agg(format('%s %s→%s: %s×', lever, before, after, ratio), '; ' ORDER BY lever) FROM pairs))
 WHERE EXISTS (SELECT 1 FROM pairs);
SQL
