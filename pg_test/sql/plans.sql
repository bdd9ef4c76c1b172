-- Plans gate: capture, bad input with SQLSTATEs, and the plan-regression gate
-- failing for a dropped index and for misleading statistics.
SET client_min_messages = warning;
DROP ROLE IF EXISTS capstone_golden_reader;
RESET client_min_messages;
CREATE EXTENSION capstone;
SELECT count(*) > 0 AS loaded FROM capstone.lab_install(scale => 0.05, seed => 42, anchor => '2026-06-01 00:00+00');

-- a capture is stored as evidence, with the plan and the median of 3 runs
SELECT root_node, median_of, plan IS NOT NULL AS has_plan
  FROM capstone.explain('SELECT count(*) FROM shop.orders WHERE tenant_id = 3', label => 'golden', runs => 3);
SELECT gate, label, query FROM capstone.evidence ORDER BY id DESC LIMIT 1;

-- data-changing statements are rolled back
SELECT count(*) AS payments_before FROM shop.payments;
SELECT root_node FROM capstone.explain('DELETE FROM shop.payments WHERE tenant_id = 2');
SELECT count(*) AS payments_after FROM shop.payments;

-- bad input, each with its SQLSTATE
SELECT * FROM capstone.explain(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.explain('');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.explain('SELEC 1');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.explain('SELECT 1; DROP TABLE shop.orders');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.explain('SELECT * FROM shop.no_such_table');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.explain('VACUUM shop.orders');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.explain('CREATE TABLE x (a int)');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.explain('SELECT 1 INTO TEMP x');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.explain('SELECT 1', runs => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.explain('SELECT 1', runs => 1001);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.estimate_gap(999999::bigint);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.explain_diff(999998, 999999);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.explain_diff('SELECT 1', NULL);
\echo :LAST_ERROR_SQLSTATE
-- a change that fails is reported, and nothing of it is applied
SELECT * FROM capstone.explain_diff('SELECT * FROM shop.tenants WHERE name = ''x''',
       'CREATE INDEX tenants_name_idx ON shop.tenants (name); SELECT 1/0');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS half_applied FROM pg_class WHERE relname = 'tenants_name_idx';
-- a query the caller may not read
CREATE ROLE capstone_golden_reader;
GRANT USAGE ON SCHEMA shop TO capstone_golden_reader;
GRANT EXECUTE ON FUNCTION capstone.explain(text, text, integer, boolean) TO capstone_golden_reader;
SET ROLE capstone_golden_reader;
SELECT * FROM capstone.explain('SELECT * FROM shop.orders');
\echo :LAST_ERROR_SQLSTATE
-- and a function it was not granted
SELECT * FROM capstone.plan_gate();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- explain_diff: the proof of an index, node by node
DROP INDEX shop.postings_account_idx;
SELECT kind, change, before_op, after_op
  FROM capstone.explain_diff('SELECT sum(amount_cents) FROM shop.postings WHERE tenant_id = 8 AND account_id = 29',
       'CREATE INDEX postings_account_idx ON shop.postings (tenant_id, account_id) INCLUDE (amount_cents); ANALYZE shop.postings')
 WHERE kind = 'scan';
-- utility statements cannot run inside the call: reported with their own SQLSTATE
SELECT * FROM capstone.explain_diff('SELECT 1', 'VACUUM shop.postings');
\echo :LAST_ERROR_SQLSTATE

-- the plan-regression gate
-- account_id implies tenant_id, so the planner multiplies two dependent selectivities
-- (q-error about 20-30 here); that query gets a looser limit, as a team would set it.
INSERT INTO capstone.watched_queries (name, sql, seqscan_min_rows, max_q_error) VALUES
  ('sales of a product', 'SELECT count(*), sum(quantity) FROM shop.order_lines WHERE tenant_id = 1 AND product_id = 3', 1000, NULL),
  ('account balance', 'SELECT sum(amount_cents) FROM shop.postings WHERE tenant_id = 8 AND account_id = 29', 1000, 1000);
SELECT name, passed, reasons FROM capstone.plan_gate();
SELECT capstone.assert_plans();
SELECT (capstone.plan_gate_json())->>'passed' AS json_passed;

-- failure 1: an index is dropped, the watched query regresses to a seq scan
DROP INDEX shop.order_lines_product_idx;
SELECT name, passed, regexp_replace(array_to_string(reasons, '; '), '[0-9]+(\.[0-9]+)?', 'N', 'g') AS reasons, seq_scans
  FROM capstone.plan_gate();
\set VERBOSITY terse
SELECT capstone.assert_plans();
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT (capstone.plan_gate_json())->>'failed' AS json_failed;
CREATE INDEX order_lines_product_idx ON shop.order_lines (tenant_id, product_id);

-- failure 2: statistics made misleading (analyzed, then the data changed under them)
CREATE TABLE gate_stats (id int, state text) WITH (autovacuum_enabled = false);
INSERT INTO gate_stats SELECT g, 'open' FROM generate_series(1, 20000) g;
ANALYZE gate_stats;
UPDATE gate_stats SET state = 'closed' WHERE id <= 19000;
INSERT INTO capstone.watched_queries (name, sql, seqscan_allowed) VALUES
  ('closed items', 'SELECT count(*) FROM gate_stats WHERE state = ''closed''', '{gate_stats}');
SELECT name, passed, regexp_replace(array_to_string(reasons, '; '), '[0-9]+(\.[0-9]+)?', 'N', 'g') AS reasons
  FROM capstone.plan_gate() ORDER BY name;
ANALYZE gate_stats;
SELECT name, passed FROM capstone.plan_gate() ORDER BY name;
-- a watched query that breaks fails the gate with its error instead of aborting it
INSERT INTO capstone.watched_queries (name, sql) VALUES ('broken', 'SELECT * FROM shop.dropped_table');
SELECT name, passed, reasons FROM capstone.plan_gate() WHERE NOT passed;
DROP OWNED BY capstone_golden_reader;
DROP ROLE capstone_golden_reader;
