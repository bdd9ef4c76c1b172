-- A customer's order history, newest first. Served by orders_customer_idx (tenant_id, customer_id, created_at DESC).
\set tid random_zipfian(1, :ntenants, 1.1)
\set r random(0, 1000000000)
SELECT customer_lo + (:r % customer_n) AS cid FROM shop.lab_tenant_ranges WHERE tenant_id = :tid \gset
SELECT order_id, order_no, status, total_cents, created_at
  FROM shop.orders
 WHERE tenant_id = :tid AND customer_id = :cid
 ORDER BY created_at DESC
 LIMIT 50;
