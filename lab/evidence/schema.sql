-- Schema gate, lab stage: the constraints bite, each refusal with its SQLSTATE, and the one
-- denormalization is exact. Every attempt runs in a subtransaction that is rolled back,
-- so the lab is left as found. Stores one capstone.evidence row (gate 'schema').
\pset footer off
CREATE TEMP TABLE schema_probe (n int, claim text, statement text, want text, got text, message text);

DO $probe$
DECLARE
  p record;
  code text;
  msg text;
BEGIN
  FOR p IN
    SELECT * FROM (VALUES
      (1, 'an order cannot reference another tenant''s customer (composite FK)', '23503',
       $s$INSERT INTO shop.orders (tenant_id, order_no, customer_id, status, fulfillment_status, payment_status, currency, created_at, updated_at)
          SELECT t2.tenant_id, 'cross-tenant', c.customer_id, 'pending', 'unfulfilled', 'awaiting', 'USD', now(), now()
            FROM shop.customers c, LATERAL (SELECT tenant_id FROM shop.tenants WHERE tenant_id <> c.tenant_id LIMIT 1) t2
           LIMIT 1$s$),
      (2, 'order numbers are unique within a tenant', '23505',
       $s$INSERT INTO shop.orders (tenant_id, order_no, customer_id, status, fulfillment_status, payment_status, currency, created_at, updated_at)
          SELECT tenant_id, order_no, customer_id, 'pending', 'unfulfilled', 'awaiting', currency, now(), now()
            FROM shop.orders ORDER BY order_id LIMIT 1$s$),
      (3, 'a payment amount is never negative', '23514',
       $s$INSERT INTO shop.payments (tenant_id, order_id, method, status, amount_cents, provider_ref, created_at)
          SELECT tenant_id, order_id, 'card', 'captured', -5, 'negative', now() FROM shop.orders ORDER BY order_id LIMIT 1$s$),
      (4, 'status, fulfillment and payment move together (state-machine CHECK)', '23514',
       $s$UPDATE shop.orders SET status = 'delivered'
           WHERE order_id = (SELECT min(order_id) FROM shop.orders WHERE status = 'pending')$s$),
      (5, 'a journal entry must balance (deferred constraint trigger, checked at COMMIT)', '23514',
       $s$WITH e AS (INSERT INTO shop.journal_entries (tenant_id, order_id, memo, posted_at)
                      VALUES (1, NULL, 'unbalanced', now()) RETURNING tenant_id, entry_id)
          INSERT INTO shop.postings (tenant_id, entry_id, posting_no, account_id, amount_cents)
          SELECT e.tenant_id, e.entry_id, v.n, a.account_id, v.amt
            FROM e, (VALUES (1, 100), (2, -99)) v(n, amt),
                 LATERAL (SELECT account_id FROM shop.accounts WHERE tenant_id = e.tenant_id ORDER BY account_id OFFSET v.n - 1 LIMIT 1) a;
          SET CONSTRAINTS ALL IMMEDIATE$s$),
      (6, 'a customer with orders cannot be deleted (FK ON DELETE RESTRICT)', '23001|23503',
       $s$DELETE FROM shop.customers WHERE (tenant_id, customer_id) IN (SELECT tenant_id, customer_id FROM shop.orders LIMIT 1)$s$)
    ) v(n, claim, want, sql)
  LOOP
    code := '00000';
    msg := 'accepted';
    BEGIN
      EXECUTE p.sql;
      -- accepted: undo it all the same
      RAISE EXCEPTION USING ERRCODE = 'P0004', MESSAGE = 'accepted';
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
      IF code = 'P0004' THEN code := '00000'; END IF;
    END;
    INSERT INTO schema_probe VALUES (p.n, p.claim, p.sql, p.want, code, msg);
  END LOOP;
END
$probe$;

\echo '== each constraint refuses what it should, with its SQLSTATE =='
SELECT n, claim, want AS expected, got, got ~ ('^(' || want || ')$') AS held, left(message, 90) AS message
  FROM schema_probe ORDER BY n;

-- the one denormalization, orders.total_cents, owned by statement-level triggers on order_lines
CREATE TEMP TABLE denorm AS
SELECT count(*) AS orders,
       count(*) FILTER (WHERE o.total_cents IS DISTINCT FROM l.total) AS wrong_totals
  FROM shop.orders o
  LEFT JOIN (SELECT tenant_id, order_id, sum(quantity * unit_price_cents) AS total
               FROM shop.order_lines GROUP BY 1, 2) l USING (tenant_id, order_id)
 WHERE l.total IS NOT NULL;
\echo '== the denormalization is exact =='
SELECT * FROM denorm;

-- the key choice, from the catalog
CREATE TEMP TABLE keys AS
SELECT c.relname AS table_name,
       string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                  || CASE WHEN a.attidentity <> '' THEN ' identity' ELSE '' END, ', ' ORDER BY k.ord) AS primary_key
  FROM pg_class c
  JOIN pg_namespace ns ON ns.oid = c.relnamespace AND ns.nspname = 'shop'
  JOIN pg_constraint con ON con.conrelid = c.oid AND con.contype = 'p'
  CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
 GROUP BY c.relname;
\echo '== primary keys =='
SELECT * FROM keys ORDER BY 1;

INSERT INTO capstone.evidence (gate, label, query, payload)
SELECT 'schema', 'lab constraints and the owned denormalization', 'lab/evidence/schema.sql',
       jsonb_build_object(
         'summary', format('Each lab constraint was handed a statement it must refuse, in a subtransaction that was rolled back: %s of %s refused with the expected SQLSTATE. The one denormalization, shop.orders.total_cents (owned by the statement-level triggers on shop.order_lines), matches the sum of its lines on %s of %s orders. Keys: every table is keyed by bigint identity, tenant-scoped where it belongs to a tenant (bench/keys.sh measured bigint against UUIDv4 and UUIDv7).',
                           (SELECT count(*) FILTER (WHERE got ~ ('^(' || want || ')$')) FROM schema_probe),
                           (SELECT count(*) FROM schema_probe),
                           (SELECT orders - wrong_totals FROM denorm), (SELECT orders FROM denorm)),
         'table', (SELECT jsonb_agg(jsonb_build_object('claim', claim, 'expected', want, 'got', got,
                                                       'held', got ~ ('^(' || want || ')$'), 'message', left(message, 120)) ORDER BY n)
                     FROM schema_probe),
         'text', (SELECT string_agg(format('%-16s %s', table_name, primary_key), E'\n' ORDER BY table_name) FROM keys),
         'verdict', format('%s of %s constraints refused with their SQLSTATE; total_cents wrong on %s of %s orders',
                           (SELECT count(*) FILTER (WHERE got ~ ('^(' || want || ')$')) FROM schema_probe),
                           (SELECT count(*) FROM schema_probe),
                           (SELECT wrong_totals FROM denorm), (SELECT orders FROM denorm)))
RETURNING id AS evidence_id, payload ->> 'verdict' AS verdict;
