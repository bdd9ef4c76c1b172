-- Write skew by hand, session A (pair with write_skew_session_b.sql).
-- Invariant: a tenant's pending orders stay within its credit limit. Each session
-- checks the invariant, then books a 6000-cent order; each sees room for one.
\set ON_ERROR_STOP 0
UPDATE shop.tenants SET credit_limit_cents = 10000 WHERE tenant_id = 2;
DELETE FROM shop.orders WHERE tenant_id = 2 AND order_no LIKE 'skew-%';
UPDATE shop.orders SET status = 'cancelled', fulfillment_status = 'voided', payment_status = 'voided'
 WHERE tenant_id = 2 AND status = 'pending';
\prompt 'A1: start session B now, then press Enter ' x
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT coalesce(sum(total_cents), 0) AS open_cents FROM shop.orders WHERE tenant_id = 2 AND status = 'pending';
\prompt 'A2: let B check too (B2), then press Enter to book 6000 cents ' x
INSERT INTO shop.orders (tenant_id, order_no, customer_id, status, fulfillment_status, payment_status, currency,
                         total_cents, created_at, updated_at)
SELECT 2, 'skew-a', customer_lo, 'pending', 'unfulfilled', 'awaiting', 'USD', 6000, now(), now()
  FROM shop.lab_tenant_ranges WHERE tenant_id = 2;
COMMIT;
\prompt 'A3: after B has committed, press Enter to see the result ' x
SELECT sum(total_cents) AS open_cents, 10000 AS credit_limit FROM shop.orders WHERE tenant_id = 2 AND status = 'pending';
