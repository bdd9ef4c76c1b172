-- Daily revenue of a tenant over the last 30 days.
-- Served by orders_tenant_created_idx as an index-only scan (status and total_cents are INCLUDEd).
\set tid random_zipfian(1, :ntenants, 1.1)
SELECT date_trunc('day', created_at) AS day, count(*) AS orders, sum(total_cents) AS revenue_cents
  FROM shop.orders
 WHERE tenant_id = :tid
   AND created_at >= now() - interval '30 days'
   AND status IN ('paid', 'shipped', 'delivered')
 GROUP BY 1
 ORDER BY 1;
