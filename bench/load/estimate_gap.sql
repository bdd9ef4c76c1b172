-- bench/load.sh: capstone.estimate_gap(query) on the lab's read queries (lab/workload/),
-- with the tenant, order, customer and account filled in as literals on every call.
-- pgbench -D ntenants=N -D norders=M; -M simple or extended both work (the literals are
-- built with ||, never substituted inside a quoted string).
-- estimate_gap stores each capture in capstone.evidence in the caller's transaction;
-- the transaction is rolled back so that a load run does not leave thousands of
-- captures behind (the INSERT still runs under load).
\set tid random_zipfian(1, :ntenants, 1.1)
\set oid random(1, :norders)
\set r random(0, 1000000000)
\set which random(0, 1)
\set q random(1, 6)
BEGIN;
\if :q = 1
SELECT * FROM capstone.estimate_gap(
  $q$SELECT o.order_id, o.order_no, o.status, o.fulfillment_status, o.total_cents, o.created_at
       FROM shop.orders o WHERE o.tenant_id = $q$ || :tid || $q$ AND o.order_id = $q$ || :oid,
  label => 'load: order_by_id');
\elif :q = 2
SELECT * FROM capstone.estimate_gap(
  $q$SELECT order_id, order_no, status, total_cents, created_at FROM shop.orders
      WHERE tenant_id = $q$ || :tid || $q$ AND customer_id = $q$
    || (SELECT customer_lo + (:r % customer_n) FROM shop.lab_tenant_ranges WHERE tenant_id = :tid)
    || $q$ ORDER BY created_at DESC LIMIT 50$q$,
  label => 'load: customer_history');
\elif :q = 3
SELECT * FROM capstone.estimate_gap(
  $q$SELECT date_trunc('day', created_at) AS day, count(*) AS orders, sum(total_cents) AS revenue_cents
       FROM shop.orders
      WHERE tenant_id = $q$ || :tid || $q$ AND created_at >= now() - interval '30 days'
        AND status IN ('paid', 'shipped', 'delivered')
      GROUP BY 1 ORDER BY 1$q$,
  label => 'load: daily_revenue');
\elif :q = 4
SELECT * FROM capstone.estimate_gap(
  $q$SELECT order_id, customer_id, fulfillment_status, created_at FROM shop.orders
      WHERE tenant_id = $q$ || :tid || $q$ AND status = 'paid' ORDER BY created_at LIMIT 100$q$,
  label => 'load: open_orders');
\elif :q = 5
SELECT * FROM capstone.estimate_gap(
  $q$SELECT order_id, status, total_cents, created_at FROM shop.orders
      WHERE tenant_id = $q$ || :tid || $q$ ORDER BY created_at DESC, order_id DESC LIMIT 20$q$,
  label => 'load: recent_orders');
\else
SELECT * FROM capstone.estimate_gap(
  $q$SELECT sum(amount_cents) AS balance_cents FROM shop.postings
      WHERE tenant_id = $q$ || :tid || $q$ AND account_id = $q$
    || (SELECT CASE WHEN :which = 0 THEN account_cash ELSE account_revenue END
          FROM shop.lab_tenant_ranges WHERE tenant_id = :tid),
  label => 'load: account_balance');
\endif
ROLLBACK;
