-- Index advice from the workload: index_advice reads this database's statements in
-- pg_stat_statements, costs candidates as hypothetical indexes on their generic plans,
-- and stores each advice as evidence; bad input with SQLSTATEs. Tables are small
-- enough that ANALYZE reads every row, so the estimates are the same on every run.
CREATE EXTENSION capstone;
CREATE EXTENSION pg_stat_statements;
CREATE TABLE adv_orders (id bigint PRIMARY KEY, tenant int NOT NULL, customer int NOT NULL,
                         status text NOT NULL, created timestamptz NOT NULL, total int,
                         shipped_at timestamptz);
INSERT INTO adv_orders SELECT g, g % 20, g % 2000, (ARRAY['new','paid','shipped'])[1 + g % 3],
       '2026-01-01'::timestamptz + g * interval '1 min', g % 997,
       CASE WHEN g % 10 = 0 THEN '2026-02-01'::timestamptz END
  FROM generate_series(1, 25000) g;
CREATE INDEX adv_orders_tenant ON adv_orders (tenant);
CREATE TABLE adv_lines (order_id bigint NOT NULL, line int NOT NULL, product int NOT NULL, qty int NOT NULL,
                        PRIMARY KEY (order_id, line));
INSERT INTO adv_lines SELECT g / 3 + 1, g % 3, g % 500, 1 + g % 4 FROM generate_series(0, 24999) g;
ANALYZE adv_orders, adv_lines;
SELECT pg_stat_force_next_flush();
SELECT pg_stat_statements_reset() IS NOT NULL AS reset;

-- the workload: literals become $n in pg_stat_statements
SELECT count(*) FROM adv_orders WHERE customer = 17;
SELECT count(*) FROM adv_orders WHERE customer = 18;
SELECT count(*) FROM adv_orders WHERE customer = 19;
SELECT id, created FROM adv_orders WHERE tenant = 3 AND created > '2026-01-10' ORDER BY created DESC LIMIT 5;
SELECT id, created FROM adv_orders WHERE tenant = 4 AND created > '2026-01-11' ORDER BY created DESC LIMIT 5;
SELECT sum(qty) FROM adv_lines WHERE product = 42;
SELECT sum(qty) FROM adv_lines WHERE product = 43;
SELECT o.id, l.qty FROM adv_orders o JOIN adv_lines l ON l.order_id = o.id WHERE o.customer = 5;
SELECT count(*) FROM adv_orders WHERE shipped_at IS NOT NULL AND customer = 7;
-- already served by the primary key and by adv_orders_tenant: nothing to advise
SELECT * FROM adv_orders WHERE id = 5;
SELECT count(*) FROM adv_orders WHERE tenant = 5;

SELECT table_name, create_index, statements, served, savings_pct >= 50 AS saves_half,
       est_size, write_overhead_bytes
  FROM capstone.index_advice() ORDER BY create_index;
-- each advice is evidence the caller owns
SELECT gate, label, query FROM capstone.evidence WHERE label = 'index_advice' ORDER BY id;
-- a higher bar keeps fewer; top_n caps the list
SELECT count(*) FROM capstone.index_advice(min_savings_pct => 99.9);
SELECT count(*) FROM capstone.index_advice(top_n => 1);
SELECT count(*) FROM capstone.index_advice(min_calls => 3);

-- index_prove builds the advice for real and measures each statement before and after
SELECT id AS adv FROM capstone.evidence
 WHERE label = 'index_advice' AND query = 'CREATE INDEX CONCURRENTLY ON public.adv_orders (customer)' ORDER BY id LIMIT 1 \gset
SELECT * FROM capstone.index_prove(:adv);
SELECT * FROM capstone.index_prove(:adv, concurrently => false);
SELECT query, est_speedup > 1 AS est_faster, before_node, after_node, verdict
  FROM capstone.index_prove(:adv, concurrently => false,
                            queries => ARRAY['SELECT count(*) FROM adv_orders WHERE customer = 17',
                                             'SELECT o.id, l.qty FROM adv_orders o JOIN adv_lines l ON l.order_id = o.id WHERE o.customer = 5']);
SELECT label, payload->>'index' AS index, jsonb_array_length(payload->'statements') AS statements
  FROM capstone.evidence WHERE label = 'index_prove';
SELECT * FROM capstone.index_prove(:adv, concurrently => false, queries => ARRAY['SELECT 1']);
DROP INDEX capstone_advice_:adv;
SELECT * FROM capstone.index_prove(:adv, concurrently => false, queries => ARRAY['SELECT 1']);
SELECT * FROM capstone.index_prove(:adv, concurrently => false, queries => ARRAY['SELECT count(*) FROM adv_orders WHERE customer = $1']);
SELECT * FROM capstone.index_prove(:adv, concurrently => false, max_table_bytes => 1000,
                                   queries => ARRAY['SELECT count(*) FROM adv_orders WHERE customer = 17']);
SELECT * FROM capstone.index_prove((SELECT min(id) FROM capstone.evidence WHERE label = 'index_prove'), concurrently => false);
SELECT * FROM capstone.index_prove(-1, concurrently => false);
SELECT * FROM capstone.index_prove(:adv, concurrently => false, queries => '{}');
SELECT * FROM capstone.index_prove(NULL);

-- by default the index is built with CREATE INDEX CONCURRENTLY by a background worker, as
-- the caller: the first call measures before and starts it, the second measures after
\set q17 'SELECT count(*) FROM adv_orders WHERE customer = 17'
SELECT query, est_speedup > 1 AS est_faster, before_node, after_node, after_ms, verdict
  FROM capstone.index_prove(:adv, queries => ARRAY[:'q17']);
-- the worker waits for that transaction, then builds; wait in short transactions of our own
CREATE PROCEDURE pg_temp.await_build(n int) LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..1200 LOOP
    EXIT WHEN (SELECT count(*) FROM capstone.evidence WHERE label = 'index_prove_build') >= n;
    COMMIT;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
CALL pg_temp.await_build(1);
SELECT payload->>'ok' AS ok, payload->>'index' AS index, payload->>'error' AS error
  FROM capstone.evidence WHERE label = 'index_prove_build';
-- the second call needs no statements: it measures the ones the first call measured
SELECT query, before_node, after_node, verdict FROM capstone.index_prove(:adv);
SELECT i.indisvalid, i.indisready FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relname = 'capstone_advice_' || :adv;
SELECT payload->>'concurrently' AS concurrently, (payload->>'build_ms')::float > 0 AS timed,
       jsonb_array_length(payload->'statements') AS statements
  FROM capstone.evidence WHERE label = 'index_prove' ORDER BY id DESC LIMIT 1;
-- proven: the next call starts over, and the index is already there
SELECT * FROM capstone.index_prove(:adv, queries => ARRAY[:'q17']);
DROP INDEX capstone_advice_:adv;
-- a build that fails ends the proof with its error: here a table takes the index's name
-- before the worker gets to build
BEGIN;
SELECT query, verdict FROM capstone.index_prove(:adv, queries => ARRAY[:'q17']);
SAVEPOINT s;
-- the worker waits for this transaction: still building, and not for other statements
SELECT * FROM capstone.index_prove(:adv, queries => ARRAY[:'q17']);
ROLLBACK TO s;
SELECT * FROM capstone.index_prove(:adv, queries => ARRAY['SELECT count(*) FROM adv_orders WHERE customer = 18']);
ROLLBACK TO s;
CREATE TABLE capstone_advice_:adv (x int);
COMMIT;
CALL pg_temp.await_build(2);
SELECT query, after_ms, verdict FROM capstone.index_prove(:adv, queries => ARRAY[:'q17']);
SELECT payload->>'build_failed' AS build_failed, payload->>'invalid_index_left' AS left_behind
  FROM capstone.evidence WHERE label = 'index_prove' ORDER BY id DESC LIMIT 1;
DROP TABLE capstone_advice_:adv;

-- what could go: a duplicate, a prefix of another index, an unused one, one no watched
-- plan uses; never the primary key or a constraint's index
CREATE INDEX adv_orders_tenant_dup ON adv_orders (tenant);
CREATE INDEX adv_orders_tenant_created ON adv_orders (tenant, created);
CREATE INDEX adv_lines_qty ON adv_lines (qty);
CREATE INDEX adv_orders_total ON adv_orders (total);
CREATE INDEX adv_lines_product ON adv_lines (product);
SELECT sum(qty) FROM adv_lines WHERE product = 42;
ALTER TABLE adv_orders ADD CONSTRAINT adv_orders_customer_id_key UNIQUE (customer, id);
SELECT count(*) FROM adv_orders WHERE total = 5;
SELECT pg_stat_force_next_flush();
INSERT INTO capstone.watched_queries (name, sql) VALUES
  ('by_total', 'SELECT * FROM adv_orders WHERE total = 5'),
  ('lines', 'SELECT * FROM adv_lines WHERE order_id = 7');
SELECT index_name, table_name, reason, detail, size, idx_scan, drop_index
  FROM capstone.index_drop_advice() ORDER BY index_name, reason;
-- hiding for the test is undone: the primary key still plans
EXPLAIN (COSTS OFF) SELECT * FROM adv_lines WHERE order_id = 7;
SELECT count(*) FROM capstone.hypo_indexes();

-- write overhead counts HOT updates: an index on a column that HOT updates set makes them
-- non-HOT, and each then writes every index of the table
CREATE TABLE adv_hot (id int PRIMARY KEY, state int NOT NULL, note text) WITH (fillfactor = 50);
INSERT INTO adv_hot SELECT g, g % 2000, 'x' FROM generate_series(1, 20000) g;
ANALYZE adv_hot;
SELECT pg_stat_statements_reset() IS NOT NULL AS reset;
SELECT count(*) FROM adv_hot WHERE state = 7;
SELECT count(*) FROM adv_hot WHERE state = 8;
SELECT count(*) FROM adv_hot WHERE note = 'z';
SELECT count(*) FROM adv_hot WHERE note = 'w';
UPDATE adv_hot SET state = state + 1 WHERE id BETWEEN 1 AND 200;
UPDATE adv_hot SET note = 'y' WHERE id BETWEEN 201 AND 300;
SELECT pg_stat_force_next_flush();
SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'adv_hot';
SELECT create_index, write_overhead_bytes, why LIKE '%non-HOT%' AS says_so
  FROM capstone.index_advice() WHERE table_name = 'public.adv_hot' ORDER BY create_index;
SELECT query, payload->'writes' AS writes FROM capstone.evidence
 WHERE label = 'index_advice' AND payload->>'table' = 'public.adv_hot' ORDER BY query;

-- bad input
SELECT * FROM capstone.index_advice(min_calls => 0);
SELECT * FROM capstone.index_advice(min_savings_pct => 101);
SELECT * FROM capstone.index_advice(min_savings_pct => 'NaN');
SELECT * FROM capstone.index_advice(top_n => 0);
SELECT * FROM capstone.index_advice(top_n => NULL);
-- without pg_stat_statements
DROP EXTENSION pg_stat_statements;
SELECT * FROM capstone.index_advice();
