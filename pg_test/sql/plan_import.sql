-- Plans from elsewhere: plan_import reads EXPLAIN text, JSON, YAML, XML and auto_explain
-- logs without running anything; the same plan in text and JSON gives the same
-- estimate_gap and plan_tips rows; explain_diff works between an imported plan and a
-- captured one; bad pastes are 22P02 with the line and what was expected.
SET client_min_messages = warning;
DROP ROLE IF EXISTS capstone_golden_importer;
RESET client_min_messages;
CREATE EXTENSION capstone;
CREATE TABLE pi_orders (id int PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL, a int, b int);
INSERT INTO pi_orders SELECT g, 1 + g % 500, (ARRAY['open','paid','shipped','refunded'])[1 + g % 4], g % 100, g % 100
  FROM generate_series(1, 30000) g;
CREATE TABLE pi_customers (id int PRIMARY KEY, region text NOT NULL);
INSERT INTO pi_customers SELECT g, 'r' || g % 7 FROM generate_series(1, 500) g;
VACUUM ANALYZE pi_orders, pi_customers;
-- (30,000 rows: ANALYZE reads them all, so the estimates are the same on every run)
-- EXPLAIN's output as one text, the way it is pasted (the test's own helper)
CREATE FUNCTION pg_temp.explain_text(q text, opts text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; o text := '';
BEGIN
  FOR r IN EXECUTE 'EXPLAIN (' || opts || ') ' || q LOOP o := o || r || E'\n'; END LOOP;
  RETURN o;
END $$;
\set q 'SELECT c.region, count(*) FROM pi_orders o JOIN pi_customers c ON c.id = o.customer_id WHERE o.a = 1 AND o.b = 1 GROUP BY c.region'

-- the same plan as text and as JSON
SELECT evidence_id AS text_id, format, plan_no, plans, nodes
  FROM capstone.plan_import(pg_temp.explain_text(:'q', 'ANALYZE, BUFFERS'), label => 'pasted text') \gset
SELECT :'format' AS format, :plans AS plans, :nodes AS nodes;
SELECT evidence_id AS json_id, format AS json_format, nodes AS json_nodes
  FROM capstone.plan_import(pg_temp.explain_text(:'q', 'ANALYZE, BUFFERS, FORMAT JSON')) \gset
SELECT :'json_format' AS format, :json_nodes AS nodes;

-- stored as the caller's evidence, marked imported, never under "plan"
SELECT gate, label, payload->'imported'->>'format' AS imported_format, payload ? 'plan' AS measured,
       payload ? 'imported_source' AS has_plan, captured_by = current_user AS mine
  FROM capstone.evidence WHERE id IN (:text_id, :json_id) ORDER BY id;

-- estimate_gap on the imported plans: the same rows from text and JSON
SELECT node_id, depth, node, est_rows, actual_rows, loops, q_error, direction, flagged, root_cause
  FROM capstone.estimate_gap(:text_id) ORDER BY node_id;
SELECT count(*) AS rows_differing FROM (
  (SELECT * FROM capstone.estimate_gap(:text_id) EXCEPT ALL SELECT * FROM capstone.estimate_gap(:json_id))
  UNION ALL
  (SELECT * FROM capstone.estimate_gap(:json_id) EXCEPT ALL SELECT * FROM capstone.estimate_gap(:text_id))) d;

-- plan_tips: the same findings from both (the saving is measured time, so only its presence is shown)
SELECT rank, node_id, node, finding, evidence, first_fix, est_saving_ms IS NOT NULL AS has_saving
  FROM capstone.plan_tips(:text_id, top_n => 10);
SELECT count(*) AS tips_differing FROM (
  (SELECT node_id, node, finding, first_fix FROM capstone.plan_tips(:text_id, 100)
   EXCEPT ALL SELECT node_id, node, finding, first_fix FROM capstone.plan_tips(:json_id, 100))
  UNION ALL
  (SELECT node_id, node, finding, first_fix FROM capstone.plan_tips(:json_id, 100)
   EXCEPT ALL SELECT node_id, node, finding, first_fix FROM capstone.plan_tips(:text_id, 100))) d;

-- psql's aligned output as pasted: header, footer, + marks, a frame
SELECT format, nodes FROM capstone.plan_import(
'                        QUERY PLAN
------------------------------------------------------------
 Aggregate  (cost=1.05..1.06 rows=1 width=8) (actual time=0.010..0.011 rows=1 loops=1)  +
   ->  Seq Scan on pi_customers  (cost=0.00..1.04 rows=4 width=0) (actual time=0.004..0.005 rows=4 loops=1)+
         Filter: (id < 5)                                                                 +
 Planning Time: 0.050 ms                                                                  +
 Execution Time: 0.030 ms
(1 row)');
SELECT format, nodes FROM capstone.plan_import(
'+--------------------------------------------------------------+
|                          QUERY PLAN                          |
+--------------------------------------------------------------+
| Limit  (cost=0.00..0.02 rows=1 width=4)                      |
|   ->  Seq Scan on pi_customers  (cost=0.00..8.00 rows=500 widt|
|h=4)                                                           |
+--------------------------------------------------------------+
(2 rows)');

-- YAML and XML read into the same tree
SELECT format, nodes FROM capstone.plan_import(pg_temp.explain_text(:'q', 'FORMAT YAML'));
SELECT format, nodes FROM capstone.plan_import(pg_temp.explain_text(:'q', 'FORMAT XML'));

-- auto_explain log entries: one capture each, with duration and query text
SELECT format, plan_no, plans, nodes, duration_ms, query_text FROM capstone.plan_import(
$log$2026-12-04 02:25:51.051 UTC [12880] LOG:  duration: 11.367 ms  plan:
	Query Text: SELECT count(*) FROM orders WHERE status = 'paid';
	Aggregate  (cost=4271.98..4271.99 rows=1 width=8) (actual time=9.825..11.359 rows=1 loops=1)
	  ->  Seq Scan on orders  (cost=0.00..3235.71 rows=14463 width=0) (actual time=0.007..7.770 rows=12500 loops=1)
	        Filter: (status = 'paid'::text)
	        Rows Removed by Filter: 87500
2026-12-04 02:25:51.052 UTC [12880] LOG:  statement: SELECT 1
2026-12-04 02:25:51.054 UTC [12880] LOG:  duration: 0.047 ms  plan:
	{
	  "Query Text": "SELECT 1",
	  "Plan": {"Node Type": "Result", "Startup Cost": 0.00, "Total Cost": 0.01, "Plan Rows": 1,
	           "Actual Total Time": 0.001, "Actual Rows": 1, "Actual Loops": 1}
	}
$log$);

-- explain_diff between the imported production plan and a capture after a fix
CREATE INDEX pi_orders_a_b ON pi_orders (a, b);
SELECT evidence_id AS after_id FROM capstone.explain(:'q', label => 'with index') \gset
SELECT kind, change, before_op, after_op FROM capstone.explain_diff(:text_id, :after_id) WHERE kind IN ('scan', 'join');

-- bad input, each with its SQLSTATE
SELECT * FROM capstone.plan_import(NULL);
SELECT * FROM capstone.plan_import('');
SELECT * FROM capstone.plan_import('hello, this is not a plan');
SELECT * FROM capstone.plan_import(E'Seq Scan on t  (cost=0.00..1.00 rows=1 width=4)\n  Rows Removed by Filter: lots');
SELECT * FROM capstone.plan_import(E'[{"Plan": {"Node Type": "Result"}');
SELECT * FROM capstone.plan_tips(NULL);
SELECT * FROM capstone.plan_tips(:text_id, 0);
SELECT * FROM capstone.plan_tips(-1);

-- another role neither sees nor reads this role's imported plans
CREATE ROLE capstone_golden_importer;
GRANT USAGE ON SCHEMA capstone TO capstone_golden_importer;
SET ROLE capstone_golden_importer;
SELECT count(*) AS visible FROM capstone.evidence WHERE id = :text_id;
SELECT * FROM capstone.plan_tips(:text_id);
SELECT format, nodes FROM capstone.plan_import('Result  (cost=0.00..0.01 rows=1 width=4)');
RESET ROLE;
SELECT captured_by FROM capstone.evidence ORDER BY id DESC LIMIT 1;
DROP OWNED BY capstone_golden_importer;
DROP ROLE capstone_golden_importer;
