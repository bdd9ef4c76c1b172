-- The lab schema: constraints bite, each failure with its SQLSTATE; the generator is deterministic.
CREATE EXTENSION capstone;
SELECT relation, row_count > 0 AS loaded
  FROM capstone.lab_install(scale => 0.01, seed => 42, anchor => '2026-06-01 00:00+00')
 ORDER BY relation;
SELECT shop.lab_checksum() AS checksum;

-- bad scale: 22023
SELECT * FROM capstone.lab_install(scale => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.lab_install(scale => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.lab_install(scale => NULL);
\echo :LAST_ERROR_SQLSTATE
-- installing twice fails clearly and leaves the data alone
SELECT * FROM capstone.lab_install(scale => 0.01);
\echo :LAST_ERROR_SQLSTATE
SELECT shop.lab_checksum() AS checksum_unchanged;

-- a cross-tenant reference: customer 1 belongs to tenant 1
INSERT INTO shop.orders (tenant_id, order_no, customer_id, status, fulfillment_status, payment_status,
                         currency, created_at, updated_at)
VALUES (2, 'x-1', 1, 'pending', 'unfulfilled', 'awaiting', 'USD', now(), now());
\echo :LAST_ERROR_SQLSTATE
-- a negative amount
INSERT INTO shop.payments (tenant_id, order_id, method, status, amount_cents, provider_ref, created_at)
SELECT tenant_id, order_id, 'card', 'captured', -5, 'neg-1', '2026-06-01 12:00+00' FROM shop.orders ORDER BY order_id LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
-- a duplicate order number within one tenant
INSERT INTO shop.orders (tenant_id, order_no, customer_id, status, fulfillment_status, payment_status,
                         currency, created_at, updated_at)
SELECT tenant_id, order_no, customer_id, 'pending', 'unfulfilled', 'awaiting', currency, now(), now()
  FROM shop.orders ORDER BY order_id LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
-- an impossible state triple
UPDATE shop.orders SET status = 'delivered' WHERE order_id = (SELECT min(order_id) FROM shop.orders WHERE status = 'pending');
\echo :LAST_ERROR_SQLSTATE
-- an unbalanced journal entry is rejected at COMMIT, not before
BEGIN;
INSERT INTO shop.journal_entries (tenant_id, order_id, memo, posted_at) VALUES (1, NULL, 'manual adjustment', now());
INSERT INTO shop.postings (tenant_id, entry_id, posting_no, account_id, amount_cents)
SELECT 1, max(entry_id), n, a, amt FROM shop.journal_entries, (VALUES (1, 1, 100), (2, 2, -99)) v(n, a, amt)
 WHERE tenant_id = 1 GROUP BY n, a, amt;
SELECT 'statements accepted, commit pending' AS state;
COMMIT;
\echo :LAST_ERROR_SQLSTATE
-- a balanced one commits
BEGIN;
INSERT INTO shop.journal_entries (tenant_id, order_id, memo, posted_at) VALUES (1, NULL, 'manual adjustment', now());
INSERT INTO shop.postings (tenant_id, entry_id, posting_no, account_id, amount_cents)
SELECT 1, max(entry_id), n, a, amt FROM shop.journal_entries, (VALUES (1, 1, 100), (2, 2, -100)) v(n, a, amt)
 WHERE tenant_id = 1 GROUP BY n, a, amt;
COMMIT;
SELECT count(*) AS manual_entries FROM shop.journal_entries WHERE memo = 'manual adjustment';

-- the ledger balances overall, and every order's total matches its lines
SELECT sum(amount_cents) AS ledger_sum FROM shop.postings;
SELECT count(*) AS orders_with_wrong_total
  FROM shop.orders o
 WHERE o.total_cents <> (SELECT sum(quantity * unit_price_cents) FROM shop.order_lines l
                          WHERE l.tenant_id = o.tenant_id AND l.order_id = o.order_id);
-- the skew the sharding gate needs: tenant 1 is the whale
SELECT tenant_id, round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS pct_orders
  FROM shop.orders GROUP BY tenant_id ORDER BY count(*) DESC LIMIT 3;
-- the rationale is in the catalog
SELECT obj_description('shop.orders'::regclass) IS NOT NULL AS orders_commented,
       col_description('shop.orders'::regclass, 9) LIKE 'THE deliberate denormalization%' AS total_cents_owner_named;
