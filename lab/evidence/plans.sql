-- The index and statistics gates on the lab, run by README command (1).
-- Every lab index beyond the primary keys is proven with explain_diff: the index is
-- dropped, then re-created as the "change", with the query it serves before and after.
-- Then the forced bad plan: the correlated-columns query, its estimate gap, the fix,
-- and the join flip. Everything is stored in capstone.evidence.
\set ON_ERROR_STOP 1
\pset pager off
SET capstone.gap_threshold = 10;

-- concrete parameters: the whale tenant, one of its customers, products, orders
SELECT customer_lo AS cust, product_lo AS prod, account_cash AS cash FROM shop.lab_tenant_ranges WHERE tenant_id = 1 \gset
SELECT max(order_id) AS oid FROM shop.orders WHERE tenant_id = 1 \gset

CREATE TEMP TABLE index_proofs (index_name text, query text, ddl text, after_id bigint);

INSERT INTO index_proofs (index_name, query) VALUES
  ('orders_tenant_created_idx',
   'SELECT order_id, status, total_cents, created_at FROM shop.orders WHERE tenant_id = 1 ORDER BY created_at DESC, order_id DESC LIMIT 20'),
  ('orders_customer_idx',
   format('SELECT order_id, order_no, status, total_cents, created_at FROM shop.orders WHERE tenant_id = 1 AND customer_id = %s ORDER BY created_at DESC LIMIT 50', :cust)),
  ('orders_open_idx',
   'SELECT order_id, customer_id, fulfillment_status, created_at FROM shop.orders WHERE tenant_id = 1 AND status = ''paid'' ORDER BY created_at LIMIT 100'),
  ('order_lines_product_idx',
   format('SELECT count(*), sum(quantity) FROM shop.order_lines WHERE tenant_id = 1 AND product_id = %s', :prod)),
  ('payments_order_idx',
   format('SELECT payment_id, status, amount_cents FROM shop.payments WHERE tenant_id = 1 AND order_id = %s', :oid)),
  ('journal_entries_order_idx',
   format('SELECT entry_id, memo, posted_at FROM shop.journal_entries WHERE tenant_id = 1 AND order_id = %s', :oid)),
  ('postings_account_idx',
   format('SELECT sum(amount_cents) AS balance_cents FROM shop.postings WHERE tenant_id = 1 AND account_id = %s', :cash));
UPDATE index_proofs SET ddl = pg_get_indexdef(format('shop.%I', index_name)::regclass);

-- one proof per index: drop it, then explain_diff with its CREATE INDEX (and ANALYZE) as the change
\echo '== index proofs: each lab index, before (dropped) and after (re-created), median of 5 runs =='
SELECT format('DROP INDEX shop.%I', p.index_name),
       format($f$SELECT %L AS index_name, kind, change, before_op, after_op,
                       round(before_ms::numeric, 3) AS before_ms, round(after_ms::numeric, 3) AS after_ms,
                       round(speedup::numeric, 1) AS speedup, before_hit, after_hit, before_read, after_read
                  FROM capstone.explain_diff(%L, %L, label => %L, runs => 5)
                 WHERE kind IN ('statement', 'scan')$f$,
              p.index_name, p.query,
              p.ddl || '; ANALYZE ' || (i.indrelid::regclass)::text,
              'index proof: ' || p.index_name)
  FROM index_proofs p
  JOIN pg_index i ON i.indexrelid = format('shop.%I', p.index_name)::regclass
 ORDER BY p.index_name \gexec

\echo '== forced bad plan: three functionally dependent columns, estimated as independent =='
\set badq 'SELECT c.country, count(*) AS orders, sum(o.total_cents) AS cents FROM shop.orders o JOIN shop.customers c ON c.tenant_id = o.tenant_id AND c.customer_id = o.customer_id WHERE o.status = ''refunded'' AND o.fulfillment_status = ''returned'' AND o.payment_status = ''refunded'' GROUP BY c.country'
SELECT node_id, depth, node, round(est_rows) AS est_rows, round(actual_rows) AS actual_rows, loops,
       round(q_error::numeric, 1) AS q_error, direction, flagged, root_cause
  FROM capstone.estimate_gap(:'badq', label => 'bad plan: before the fix');

\echo '== the fix: extended statistics on the dependent columns; the join flips =='
SELECT kind, key, change, before_op, after_op, round(before_ms::numeric, 2) AS before_ms,
       round(after_ms::numeric, 2) AS after_ms, round(speedup::numeric, 2) AS speedup,
       round(before_est_rows) AS before_est, round(after_est_rows) AS after_est, round(after_actual_rows) AS actual
  FROM capstone.explain_diff(:'badq',
         'CREATE STATISTICS shop.orders_state_stats (dependencies, mcv) ON status, fulfillment_status, payment_status FROM shop.orders; ANALYZE shop.orders',
         label => 'bad plan: extended statistics', runs => 5);

\echo '== estimate gap after the fix =='
SELECT node_id, depth, node, round(est_rows) AS est_rows, round(actual_rows) AS actual_rows, loops,
       round(q_error::numeric, 1) AS q_error, direction, flagged, root_cause
  FROM capstone.estimate_gap((SELECT max(id) FROM capstone.evidence WHERE label = 'bad plan: extended statistics: after'));

\echo '== the plan gate over the lab workload =='
INSERT INTO capstone.watched_queries (name, sql, seqscan_allowed) SELECT 'lab: ' || index_name, query, '{}' FROM index_proofs
ON CONFLICT (name) DO UPDATE SET sql = excluded.sql;
SELECT name, passed, reasons, round(worst_q_error::numeric, 1) AS worst_q_error, round(execution_ms::numeric, 3) AS ms
  FROM capstone.plan_gate();
