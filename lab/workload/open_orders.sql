-- Open orders to fulfil, oldest first (the warehouse queue).
-- Served by the partial index orders_open_idx (tenant_id, created_at) WHERE status = 'paid'.
\set tid random_zipfian(1, :ntenants, 1.1)
SELECT order_id, customer_id, fulfillment_status, created_at
  FROM shop.orders
 WHERE tenant_id = :tid AND status = 'paid'
 ORDER BY created_at
 LIMIT 100;
