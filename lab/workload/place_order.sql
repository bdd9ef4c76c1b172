-- Place an order: one write transaction covering the order, its lines, the stock
-- decrement, the payment and two balanced ledger postings.
-- orders.total_cents is filled by the order_lines trigger (the denormalization's owner);
-- the ledger balance is checked at COMMIT by the deferred postings_balanced trigger.
\set tid random_zipfian(1, :ntenants, 1.1)
\set r1 random(0, 1000000000)
\set r2 random(0, 1000000000)
\set r3 random(0, 1000000000)
\set qty random(1, 3)
SELECT customer_lo + (:r1 % customer_n) AS cid,
       least(product_lo + (:r2 % product_n), product_lo + (:r3 % product_n)) AS p1,
       greatest(product_lo + (:r2 % product_n), product_lo + (:r3 % product_n)) AS p2,
       account_cash AS cash, account_revenue AS rev
  FROM shop.lab_tenant_ranges WHERE tenant_id = :tid \gset
BEGIN;
INSERT INTO shop.orders (tenant_id, order_no, customer_id, status, fulfillment_status, payment_status,
                         currency, total_cents, created_at, updated_at)
SELECT :tid, 'W-' || gen_random_uuid(), :cid, 'paid', 'unfulfilled', 'captured', t.currency, 0, now(), now()
  FROM shop.tenants t WHERE t.tenant_id = :tid
RETURNING order_id AS oid \gset
INSERT INTO shop.order_lines (tenant_id, order_id, line_no, product_id, quantity, unit_price_cents)
SELECT :tid, :oid, v.n, p.product_id, :qty, p.price_cents
  FROM (VALUES (1, :p1::bigint), (2, :p2::bigint)) v(n, pid)
  JOIN shop.products p ON p.tenant_id = :tid AND p.product_id = v.pid;
-- rows are locked in key order (p1 <= p2), so two orders never deadlock on stock
UPDATE shop.stock
   SET on_hand = CASE WHEN on_hand >= :qty THEN on_hand - :qty ELSE on_hand + 1000 - :qty END,
       updated_at = now()
 WHERE tenant_id = :tid AND product_id IN (:p1, :p2);
INSERT INTO shop.payments (tenant_id, order_id, method, status, amount_cents, provider_ref, created_at)
SELECT :tid, :oid, 'card', 'captured', o.total_cents, 'pay_' || gen_random_uuid(), now()
  FROM shop.orders o WHERE o.tenant_id = :tid AND o.order_id = :oid;
INSERT INTO shop.journal_entries (tenant_id, order_id, memo, posted_at)
VALUES (:tid, :oid, 'sale', now())
RETURNING entry_id AS eid \gset
INSERT INTO shop.postings (tenant_id, entry_id, posting_no, account_id, amount_cents)
SELECT :tid, :eid, v.n, v.acct, v.sign * o.total_cents
  FROM shop.orders o,
       (VALUES (1::smallint, :cash::bigint, 1), (2::smallint, :rev::bigint, -1)) v(n, acct, sign)
 WHERE o.tenant_id = :tid AND o.order_id = :oid;
END;
