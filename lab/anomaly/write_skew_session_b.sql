-- Write skew by hand, session B (see write_skew_session_a.sql).
\set ON_ERROR_STOP 0
\prompt 'B1: after A has checked (A1), press Enter ' x
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT coalesce(sum(total_cents), 0) AS open_cents FROM shop.orders WHERE tenant_id = 2 AND status = 'pending';
\prompt 'B2: after A has committed, press Enter to book 6000 cents ' x
INSERT INTO shop.orders (tenant_id, order_no, customer_id, status, fulfillment_status, payment_status, currency,
                         total_cents, created_at, updated_at)
SELECT 2, 'skew-b', customer_lo, 'pending', 'unfulfilled', 'awaiting', 'USD', 6000, now(), now()
  FROM shop.lab_tenant_ranges WHERE tenant_id = 2;
COMMIT;
\echo Both committed: 12000 cents pending against a 10000 limit. Under SERIALIZABLE, B's COMMIT fails with 40001.
