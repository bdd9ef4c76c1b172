-- A tenant's recent orders, two pages with keyset pagination (never OFFSET).
-- Served by orders_tenant_created_idx (tenant_id, created_at DESC, order_id DESC) INCLUDE (status, total_cents).
\set tid random_zipfian(1, :ntenants, 1.1)
SELECT extract(epoch FROM created_at) AS last_ts, order_id AS last_id
  FROM (SELECT created_at, order_id FROM shop.orders
         WHERE tenant_id = :tid
         ORDER BY created_at DESC, order_id DESC LIMIT 20) page
 ORDER BY created_at, order_id LIMIT 1 \gset
SELECT order_id, status, total_cents, created_at
  FROM shop.orders
 WHERE tenant_id = :tid AND (created_at, order_id) < (to_timestamp(:last_ts), :last_id)
 ORDER BY created_at DESC, order_id DESC
 LIMIT 20;
