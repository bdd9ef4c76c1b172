#!/usr/bin/env bash
# capstone's hypothetical indexes side by side with hypopg's (PostgreSQL 15, Debian's
# postgresql-15-hypopg), on the same queries in the same session: same plan chosen, total
# cost within 1%, estimated index size within 5%. Lab tables (scale 0.2) and pgbench -s 10.
#   CAPSTONE_PG=15 bench/hypo.sh        (against the cluster of bench/common.sh's HOST/PORT)
# Prints one row per query and the pass counts.
set -euo pipefail
. "$(dirname "$0")/common.sh"
DB=bench_hypo
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
"${PGBENCH[@]}" -i -q -s "${CAPSTONE_HYPO_PGBENCH_SCALE:-10}" "$DB" >/dev/null 2>&1
"${PSQL[@]}" -d "$DB" <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION capstone;
CREATE EXTENSION hypopg;
SELECT count(*) > 0 AS lab FROM capstone.lab_install(scale => 0.2, seed => 42);
VACUUM ANALYZE;
CREATE TABLE hypo_cases (n int, ddl text, q text);
INSERT INTO hypo_cases VALUES
 (1, 'CREATE INDEX ON pgbench_accounts (bid)', 'SELECT * FROM pgbench_accounts WHERE bid = 3'),
 (2, 'CREATE INDEX ON pgbench_accounts (abalance)', 'SELECT * FROM pgbench_accounts WHERE abalance = 0'),
 (3, 'CREATE INDEX ON pgbench_accounts (bid, abalance)', 'SELECT aid FROM pgbench_accounts WHERE bid = 2 AND abalance > 10'),
 (4, 'CREATE INDEX ON pgbench_accounts (bid) INCLUDE (abalance)', 'SELECT bid, abalance FROM pgbench_accounts WHERE bid = 4'),
 (5, 'CREATE INDEX ON pgbench_accounts (aid DESC)', 'SELECT * FROM pgbench_accounts ORDER BY aid DESC LIMIT 10'),
 (6, 'CREATE INDEX ON pgbench_accounts (bid) WHERE abalance <> 0', 'SELECT * FROM pgbench_accounts WHERE bid = 1 AND abalance <> 0'),
 (7, 'CREATE INDEX ON pgbench_accounts USING hash (filler)', 'SELECT * FROM pgbench_accounts WHERE filler = ''x'''),
 (8, 'CREATE INDEX ON pgbench_accounts USING brin (aid)', 'SELECT count(*) FROM pgbench_accounts WHERE aid BETWEEN 1000 AND 50000'),
 (9, 'CREATE INDEX ON pgbench_accounts (bid, aid)', 'SELECT * FROM pgbench_accounts WHERE bid = 5 ORDER BY aid LIMIT 20'),
 (10, 'CREATE INDEX ON pgbench_accounts (abalance) WHERE bid = 1', 'SELECT count(*) FROM pgbench_accounts WHERE bid = 1 AND abalance = 0'),
 (11, 'CREATE INDEX ON pgbench_history (tid)', 'SELECT * FROM pgbench_history WHERE tid = 3'),
 (12, 'CREATE INDEX ON pgbench_tellers (bid)', 'SELECT * FROM pgbench_tellers WHERE bid = 3'),
 (13, 'CREATE INDEX ON pgbench_accounts (bid)', 'SELECT b.bid, count(*) FROM pgbench_branches b JOIN pgbench_accounts a ON a.bid = b.bid WHERE b.bid = 2 GROUP BY b.bid'),
 (14, 'CREATE INDEX ON pgbench_accounts USING hash (bid)', 'SELECT * FROM pgbench_accounts WHERE bid = 7'),
 (15, 'CREATE INDEX ON pgbench_accounts (abalance, bid)', 'SELECT count(*) FROM pgbench_accounts WHERE abalance = 0 AND bid = 3'),
 (16, 'CREATE INDEX ON shop.orders (status)', 'SELECT * FROM shop.orders WHERE status = ''refunded'''),
 (17, 'CREATE INDEX ON shop.orders (customer_id)', 'SELECT * FROM shop.orders WHERE customer_id = 42'),
 (18, 'CREATE INDEX ON shop.orders (created_at)', 'SELECT * FROM shop.orders WHERE created_at > now() - interval ''1 day'''),
 (19, 'CREATE INDEX ON shop.orders (tenant_id, created_at DESC)', 'SELECT * FROM shop.orders WHERE tenant_id = 3 ORDER BY created_at DESC LIMIT 20'),
 (20, 'CREATE INDEX ON shop.orders (status) INCLUDE (total_cents)', 'SELECT status, sum(total_cents) FROM shop.orders WHERE status = ''pending'' GROUP BY status'),
 (21, 'CREATE INDEX ON shop.orders (customer_id) WHERE status = ''pending''', 'SELECT * FROM shop.orders WHERE customer_id = 7 AND status = ''pending'''),
 (22, 'CREATE INDEX ON shop.orders (lower(order_no))', 'SELECT * FROM shop.orders WHERE lower(order_no) = ''abc'''),
 (23, 'CREATE INDEX ON shop.orders USING hash (order_no)', 'SELECT * FROM shop.orders WHERE order_no = ''abc'''),
 (24, 'CREATE INDEX ON shop.orders USING brin (created_at)', 'SELECT count(*) FROM shop.orders WHERE created_at < ''2020-01-01'''),
 (25, 'CREATE INDEX ON shop.payments (order_id)', 'SELECT * FROM shop.payments WHERE order_id = 100'),
 (26, 'CREATE INDEX ON shop.payments (status, created_at)', 'SELECT * FROM shop.payments WHERE status = ''failed'' AND created_at > now() - interval ''7 days'''),
 (27, 'CREATE INDEX ON shop.payments (method)', 'SELECT method, count(*) FROM shop.payments WHERE method = ''card'' GROUP BY method'),
 (28, 'CREATE INDEX ON shop.customers (email)', 'SELECT * FROM shop.customers WHERE email = ''a@b.c'''),
 (29, 'CREATE INDEX ON shop.customers (country, segment)', 'SELECT count(*) FROM shop.customers WHERE country = ''DE'' AND segment = ''smb'''),
 (30, 'CREATE INDEX ON shop.postings (account_id)', 'SELECT sum(amount_cents) FROM shop.postings WHERE account_id = 5'),
 (31, 'CREATE INDEX ON shop.postings (account_id, entry_id)', 'SELECT * FROM shop.postings WHERE account_id = 9 ORDER BY entry_id LIMIT 50'),
 (32, 'CREATE INDEX ON shop.payments (order_id)', 'SELECT o.order_id, p.amount_cents FROM shop.orders o JOIN shop.payments p ON p.order_id = o.order_id WHERE o.customer_id = 11');
CREATE FUNCTION bench_plan(q text, OUT shape text, OUT cost float8) LANGUAGE plpgsql AS $f$
DECLARE j json; r text;
BEGIN
  EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO j;
  cost := (j->0->'Plan'->>'Total Cost')::float8;
  shape := '';
  FOR r IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP shape := shape || r || E'\n'; END LOOP;
  shape := regexp_replace(shape, '"?<[0-9]+>[A-Za-z0-9_]+"?', 'HYPO', 'g');
END $f$;
CREATE TABLE hypo_results AS SELECT 0 AS n, ''::text AS plan_h, 0::float8 AS cost_h, 0::bigint AS size_h,
  ''::text AS plan_c, 0::float8 AS cost_c, 0::bigint AS size_c WHERE false;
DO $d$
DECLARE c record; h oid; x oid; ph record; pc record; sh bigint; sc bigint;
BEGIN
  FOR c IN SELECT * FROM hypo_cases ORDER BY n LOOP
    PERFORM hypopg_reset(); PERFORM capstone.hypo_reset();
    SELECT indexrelid INTO h FROM hypopg_create_index(c.ddl);
    ph := bench_plan(c.q); sh := hypopg_relation_size(h);
    PERFORM hypopg_reset();
    SELECT id INTO x FROM capstone.hypo_index(c.ddl);
    pc := bench_plan(c.q); SELECT size_bytes INTO sc FROM capstone.hypo_size(x);
    PERFORM capstone.hypo_reset();
    INSERT INTO hypo_results VALUES (c.n, ph.shape, ph.cost, sh, pc.shape, pc.cost, sc);
  END LOOP;
END $d$;
\pset footer off
SELECT r.n, left(k.ddl, 58) AS index, (plan_h = plan_c) AS same_plan,
       position('HYPO' IN plan_c) > 0 AS uses_it, round(cost_h::numeric, 2) AS cost_hypopg,
       round(cost_c::numeric, 2) AS cost_capstone,
       round((100 * abs(cost_c - cost_h) / nullif(cost_h, 0))::numeric, 2) AS cost_diff_pct,
       pg_size_pretty(size_h) AS size_hypopg, pg_size_pretty(size_c) AS size_capstone,
       round((100 * abs(size_c - size_h)::numeric / nullif(size_h, 0)), 1) AS size_diff_pct
  FROM hypo_results r JOIN hypo_cases k USING (n) ORDER BY r.n;
SELECT count(*) AS queries,
       count(*) FILTER (WHERE plan_h = plan_c) AS same_plan,
       count(*) FILTER (WHERE abs(cost_c - cost_h) <= 0.01 * cost_h) AS cost_within_1pct,
       count(*) FILTER (WHERE abs(size_c - size_h) <= 0.05 * size_h) AS size_within_5pct,
       count(*) FILTER (WHERE position('HYPO' IN plan_c) > 0) AS plans_using_the_index
  FROM hypo_results;
SQL
