-- credit check with the tenant row locked first (FOR NO KEY UPDATE): the checks run one at a time
BEGIN;
SELECT tenant_id FROM shop.tenants WHERE tenant_id = :ct FOR NO KEY UPDATE;
SELECT (coalesce((SELECT sum(total_cents) FROM shop.orders WHERE tenant_id = :ct AND status = 'pending'), 0) + 1
        <= credit_limit_cents)::int AS ok FROM shop.tenants WHERE tenant_id = :ct \gset
INSERT INTO shop.orders (tenant_id, order_no, customer_id, status, fulfillment_status, payment_status,
                         currency, total_cents, created_at, updated_at)
SELECT :ct, 'bench-credit-' || txid_current(), :cid, 'pending', 'unfulfilled', 'awaiting', 'EUR', 1, now(), now()
 WHERE :ok = 1;
END;
