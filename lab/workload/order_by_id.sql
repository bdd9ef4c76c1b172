-- Order by id within a tenant (the order page). Served by orders_pkey (tenant_id, order_id).
-- pgbench -D ntenants=N -D norders=M; the tenant follows the Zipf skew of the data.
\set tid random_zipfian(1, :ntenants, 1.1)
\set oid random(1, :norders)
SELECT o.order_id, o.order_no, o.status, o.fulfillment_status, o.total_cents, o.created_at
  FROM shop.orders o
 WHERE o.tenant_id = :tid AND o.order_id = :oid;
