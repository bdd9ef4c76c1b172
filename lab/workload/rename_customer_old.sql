-- A writer still on the old schema version: it only knows customers.full_name.
\set tid random_zipfian(1, :ntenants, 1.1)
\set r random(0, 1000000000)
SELECT customer_lo + (:r % customer_n) AS cid FROM shop.lab_tenant_ranges WHERE tenant_id = :tid \gset
UPDATE shop.customers SET full_name = 'Old ' || :r WHERE tenant_id = :tid AND customer_id = :cid;
