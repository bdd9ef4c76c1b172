-- place_order.sql for the partitioned layouts of bench/two_node.sh: the same write
-- transaction (order, 2 lines, stock decrement in key order, payment, journal entry,
-- 2 postings), with the written tables unqualified so that search_path picks the
-- layout (PGOPTIONS='-c search_path=shard_2n,shop'). Lookups (tenant ranges, prices,
-- currency) read the lab's tables in shop: they play reference tables.
-- The partitioned layouts have no triggers (a foreign partition cannot carry the
-- deferred balance check or the totals trigger), so this script computes the order
-- total itself and writes balanced postings by construction.
\set tid random_zipfian(1, :ntenants, 1.1)
\set r1 random(0, 1000000000)
\set r2 random(0, 1000000000)
\set r3 random(0, 1000000000)
\set qty random(1, 3)
SELECT r.customer_lo + (:r1 % r.customer_n) AS cid,
       least(r.product_lo + (:r2 % r.product_n), r.product_lo + (:r3 % r.product_n)) AS p1,
       greatest(r.product_lo + (:r2 % r.product_n), r.product_lo + (:r3 % r.product_n)) AS p2,
       r.account_cash AS cash, r.account_revenue AS rev
  FROM shop.lab_tenant_ranges r WHERE r.tenant_id = :tid \gset
SELECT (SELECT price_cents FROM shop.products WHERE tenant_id = :tid AND product_id = :p1) AS pr1,
       (SELECT price_cents FROM shop.products WHERE tenant_id = :tid AND product_id = :p2) AS pr2 \gset
BEGIN;
INSERT INTO orders (tenant_id, order_no, customer_id, status, fulfillment_status, payment_status,
                    currency, total_cents, created_at, updated_at)
SELECT :tid, 'W-' || gen_random_uuid(), :cid, 'paid', 'unfulfilled', 'captured', t.currency,
       :qty * (:pr1 + :pr2), now(), now()
  FROM shop.tenants t WHERE t.tenant_id = :tid
RETURNING order_id AS oid \gset
INSERT INTO order_lines (tenant_id, order_id, line_no, product_id, quantity, unit_price_cents)
VALUES (:tid, :oid, 1, :p1, :qty, :pr1), (:tid, :oid, 2, :p2, :qty, :pr2);
-- rows are locked in key order (p1 <= p2), so two orders never deadlock on stock
UPDATE stock
   SET on_hand = CASE WHEN on_hand >= :qty THEN on_hand - :qty ELSE on_hand + 1000 - :qty END,
       updated_at = now()
 WHERE tenant_id = :tid AND product_id IN (:p1, :p2);
INSERT INTO payments (tenant_id, order_id, method, status, amount_cents, provider_ref, created_at)
VALUES (:tid, :oid, 'card', 'captured', :qty * (:pr1 + :pr2), 'pay_' || gen_random_uuid(), now());
INSERT INTO journal_entries (tenant_id, order_id, memo, posted_at)
VALUES (:tid, :oid, 'sale', now())
RETURNING entry_id AS eid \gset
INSERT INTO postings (tenant_id, entry_id, posting_no, account_id, amount_cents)
VALUES (:tid, :eid, 1, :cash, :qty * (:pr1 + :pr2)), (:tid, :eid, 2, :rev, -(:qty * (:pr1 + :pr2)));
END;
