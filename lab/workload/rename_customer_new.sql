-- A writer already on the new schema version: it writes first_name and last_name.
\set tid random_zipfian(1, :ntenants, 1.1)
\set r random(0, 1000000000)
SELECT customer_lo + (:r % customer_n) AS cid FROM shop.lab_tenant_ranges WHERE tenant_id = :tid \gset
UPDATE shop.customers SET first_name = 'New', last_name = 'Name' || :r WHERE tenant_id = :tid AND customer_id = :cid;
