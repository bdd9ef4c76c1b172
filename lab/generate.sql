-- The lab's data generator: deterministic for (scale, seed, anchor), set-based.
--
-- Every "random" value is a hash of a row id and a salt (hashint8extended), so the
-- same inputs give the same rows on every run and every PostgreSQL version, with no
-- dependence on row order or parallelism. Shape:
--   * tenant sizes follow a Zipf law (exponent 1.1): tenant 1 holds ~23% of orders
--     at 100 tenants, the tail holds a few hundred each;
--   * orders are spread over two years, denser toward the anchor (recent-heavy);
--   * status, fulfilment and payment state follow the order's age, and the three are
--     functionally dependent (orders_state_consistent), so their selectivities
--     multiply wrongly without extended statistics.

-- uniform [0, 1) from (id, salt); inlined by the planner (immutable SQL function)
CREATE FUNCTION shop._u(k bigint, salt bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT ((hashint8extended(k, salt) & 2147483647)::double precision / 2147483648.0) $$;

-- the unit price of a product is a function of its id, so totals need no join
CREATE FUNCTION shop._price(product_id bigint, seed bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 199 + floor(shop._u(product_id, seed * 100 + 7) * 19800)::bigint $$;

CREATE FUNCTION shop.lab_generate(scale double precision DEFAULT 1, seed integer DEFAULT 42,
                                  anchor timestamptz DEFAULT date_trunc('day', now()))
RETURNS TABLE (relation text, row_count bigint, total_bytes bigint, size text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    n_tenants   int;
    n_customers bigint;
    n_products  bigint;
    n_orders    bigint;
    w_total     double precision;
    s           bigint := seed;
    t0          timestamptz := clock_timestamp();
    t_load      interval;
BEGIN
    IF scale IS NULL OR scale <= 0 OR scale > 1000 THEN
        RAISE EXCEPTION 'scale must be greater than 0 and at most 1000 (got %)', coalesce(scale::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'scale 1 is about 1M orders and loads in about a minute';
    END IF;
    IF seed IS NULL THEN
        RAISE EXCEPTION 'seed must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM shop.tenants) THEN
        RAISE EXCEPTION 'the lab already holds data'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'DROP SCHEMA shop CASCADE and install again, or call capstone.lab_install(..., replace => true)';
    END IF;

    -- several installs in one transaction (tests) must not trip over each other's scratch tables
    DROP TABLE IF EXISTS pg_temp.lab_ranges, pg_temp.lab_buckets, pg_temp.lab_orders, pg_temp.lab_lines;

    n_tenants   := greatest(10, round(100 * scale))::int;
    n_customers := greatest(1000, round(100000 * scale))::bigint;
    n_products  := greatest(500, round(20000 * scale))::bigint;
    n_orders    := greatest(10000, round(1000000 * scale))::bigint;
    SELECT sum(power(i, -1.1)) INTO w_total FROM generate_series(1, n_tenants) i;

    -- tenants, ranked by size: tenant 1 is the biggest whale
    INSERT INTO shop.tenants (tenant_id, slug, name, plan, region, currency, credit_limit_cents, created_at)
    OVERRIDING SYSTEM VALUE
    SELECT i, 'tenant-' || i, 'Tenant ' || i,
           CASE WHEN i <= 5 THEN 'enterprise' WHEN shop._u(i, s * 100 + 1) < 0.4 THEN 'growth' ELSE 'free' END,
           (ARRAY['eu', 'us', 'apac'])[1 + (i % 3)],
           (ARRAY['EUR', 'USD', 'SGD'])[1 + (i % 3)],
           (100000 + floor(shop._u(i, s * 100 + 2) * 900000))::bigint * 100,
           anchor - interval '3 years' + (i * interval '1 day')
      FROM generate_series(1, n_tenants) i;

    -- per-tenant contiguous id ranges; customers and products follow the same Zipf law
    CREATE TEMP TABLE lab_ranges ON COMMIT DROP AS
    WITH w AS (
        SELECT i AS tenant_id,
               greatest(5, floor(n_customers * power(i, -1.1) / w_total))::bigint AS cn,
               greatest(20, floor(n_products * power(i, -1.1) / w_total))::bigint AS pn,
               power(i, -1.1) / w_total AS share
          FROM generate_series(1, n_tenants) i)
    SELECT tenant_id, cn, pn, share,
           (1 + coalesce(sum(cn) OVER (ORDER BY tenant_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0))::bigint AS clo,
           (1 + coalesce(sum(pn) OVER (ORDER BY tenant_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0))::bigint AS plo,
           coalesce(sum(share) OVER (ORDER BY tenant_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS cum
      FROM w;

    INSERT INTO shop.customers (tenant_id, customer_id, email, full_name, country, segment, created_at)
    OVERRIDING SYSTEM VALUE
    SELECT r.tenant_id, c,
           'c' || c || '@t' || r.tenant_id || '.example',
           (ARRAY['Ada', 'Ben', 'Chen', 'Dana', 'Emil', 'Fatima', 'Goran', 'Hana', 'Ivo', 'Jun', 'Kira', 'Luis'])[1 + floor(shop._u(c, s * 100 + 10) * 12)::int]
             || ' ' ||
           (ARRAY['Novak', 'Smith', 'Garcia', 'Tanaka', 'Okafor', 'Muller', 'Rossi', 'Silva', 'Kim', 'Dubois'])[1 + floor(shop._u(c, s * 100 + 11) * 10)::int],
           CASE t.region
             WHEN 'eu'   THEN (ARRAY['DE', 'DE', 'FR', 'FR', 'NL', 'IT', 'ES', 'PL'])[1 + floor(shop._u(c, s * 100 + 12) * 8)::int]
             WHEN 'us'   THEN (ARRAY['US', 'US', 'US', 'US', 'US', 'CA', 'CA', 'MX'])[1 + floor(shop._u(c, s * 100 + 12) * 8)::int]
             ELSE             (ARRAY['SG', 'SG', 'JP', 'AU', 'AU', 'IN', 'KR', 'NZ'])[1 + floor(shop._u(c, s * 100 + 12) * 8)::int]
           END,
           CASE WHEN shop._u(c, s * 100 + 13) < 0.2 THEN 'business' ELSE 'consumer' END,
           anchor - (730 * power(shop._u(c, s * 100 + 14), 0.7)) * interval '1 day' - interval '1 day'
      FROM lab_ranges r
      JOIN shop.tenants t USING (tenant_id)
     CROSS JOIN LATERAL generate_series(r.clo, r.clo + r.cn - 1) c;

    INSERT INTO shop.products (tenant_id, product_id, sku, name, category, price_cents, active)
    OVERRIDING SYSTEM VALUE
    SELECT r.tenant_id, p, 'SKU-' || lpad((p - r.clo + 1)::text, 6, '0') || '-' || p,
           'Product ' || p,
           (ARRAY['apparel', 'books', 'electronics', 'garden', 'grocery', 'home', 'sports', 'toys'])[1 + floor(shop._u(p, s * 100 + 20) * 8)::int],
           shop._price(p, s),
           shop._u(p, s * 100 + 21) >= 0.05
      FROM (SELECT tenant_id, plo AS clo, pn FROM lab_ranges) r
     CROSS JOIN LATERAL generate_series(r.clo, r.clo + r.pn - 1) p;

    INSERT INTO shop.stock (tenant_id, product_id, on_hand, updated_at)
    SELECT tenant_id, product_id, 50 + floor(shop._u(product_id, s * 100 + 22) * 5000)::int, anchor
      FROM shop.products;

    INSERT INTO shop.accounts (tenant_id, account_id, code, kind, currency)
    OVERRIDING SYSTEM VALUE
    SELECT t.tenant_id, (t.tenant_id - 1) * 4 + a.n, a.code, a.kind, t.currency
      FROM shop.tenants t
     CROSS JOIN (VALUES (1, 'cash', 'asset'), (2, 'revenue', 'revenue'),
                        (3, 'refunds', 'expense'), (4, 'customer_credit', 'liability')) a(n, code, kind);

    INSERT INTO shop.lab_tenant_ranges
    SELECT tenant_id, clo, cn, plo, pn, (tenant_id - 1) * 4 + 1, (tenant_id - 1) * 4 + 2 FROM lab_ranges;

    -- Orders: id order is time order (as an identity key would be); the tenant of each
    -- order is drawn from the Zipf shares through a 10,000-bucket lookup array.
    CREATE TEMP TABLE lab_buckets ON COMMIT DROP AS
    SELECT b, (SELECT r.tenant_id FROM lab_ranges r WHERE r.cum <= b / 10000.0
                ORDER BY r.tenant_id DESC LIMIT 1) AS tenant_id
      FROM generate_series(0, 9999) b;

    CREATE TEMP TABLE lab_orders ON COMMIT DROP AS
    WITH o AS (
        SELECT i AS order_id,
               floor(shop._u(i, s * 100 + 30) * 10000)::int AS bucket,
               730 * power(1.0::float8 - (i - 0.5::float8) / n_orders, 2.5::float8) AS age_days,
               shop._u(i, s * 100 + 31) AS u_state,
               shop._u(i, s * 100 + 32) AS u_cust
          FROM generate_series(1, n_orders) i)
    SELECT o.order_id, r.tenant_id,
           r.clo + floor(o.u_cust * r.cn)::bigint AS customer_id,
           anchor - o.age_days * interval '1 day' AS created_at,
           o.age_days,
           CASE
             WHEN o.age_days < 1 THEN
               CASE WHEN o.u_state < 0.35 THEN 1 WHEN o.u_state < 0.75 THEN 2 WHEN o.u_state < 0.85 THEN 3 ELSE 4 END
             WHEN o.age_days < 3 THEN
               CASE WHEN o.u_state < 0.05 THEN 1 WHEN o.u_state < 0.30 THEN 2 WHEN o.u_state < 0.40 THEN 3
                    WHEN o.u_state < 0.90 THEN 4 ELSE 5 END
             WHEN o.age_days < 10 THEN
               CASE WHEN o.u_state < 0.03 THEN 6 WHEN o.u_state < 0.05 THEN 3 WHEN o.u_state < 0.45 THEN 4 ELSE 5 END
             ELSE
               CASE WHEN o.u_state < 0.035 THEN 6 WHEN o.u_state < 0.075 THEN 7 ELSE 5 END
           END AS state
      FROM o
      JOIN lab_buckets bk ON bk.b = o.bucket
      JOIN lab_ranges r ON r.tenant_id = bk.tenant_id;
    -- state: 1 pending, 2 paid/unfulfilled, 3 paid/picking, 4 shipped, 5 delivered, 6 cancelled, 7 refunded

    CREATE TEMP TABLE lab_lines ON COMMIT DROP AS
    SELECT o.tenant_id, o.order_id, l::smallint AS line_no,
           r.plo + floor(shop._u(o.order_id * 8 + l, s * 100 + 41) * r.pn)::bigint AS product_id,
           1 + floor(power(shop._u(o.order_id * 8 + l, s * 100 + 42), 3) * 5)::int AS quantity
      FROM lab_orders o
      JOIN lab_ranges r USING (tenant_id)
     CROSS JOIN LATERAL generate_series(1, 1 + floor(shop._u(o.order_id, s * 100 + 40) * 4)::int) l;

    INSERT INTO shop.order_lines (tenant_id, order_id, line_no, product_id, quantity, unit_price_cents)
    SELECT tenant_id, order_id, line_no, product_id, quantity, shop._price(product_id, s)
      FROM lab_lines;

    INSERT INTO shop.orders (tenant_id, order_id, order_no, customer_id, status, fulfillment_status,
                             payment_status, currency, total_cents, created_at, updated_at)
    OVERRIDING SYSTEM VALUE
    SELECT o.tenant_id, o.order_id, 'T' || o.tenant_id || '-' || o.order_id, o.customer_id,
           (ARRAY['pending', 'paid', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded'])[o.state],
           (ARRAY['unfulfilled', 'unfulfilled', 'picking', 'in_transit', 'delivered', 'voided', 'returned'])[o.state],
           (ARRAY['awaiting', 'captured', 'captured', 'captured', 'captured', 'voided', 'refunded'])[o.state],
           t.currency, tot.total, o.created_at,
           o.created_at + least(o.age_days, 5 * shop._u(o.order_id, s * 100 + 33)) * interval '1 day'
      FROM lab_orders o
      JOIN shop.tenants t USING (tenant_id)
      JOIN (SELECT order_id, sum(quantity * shop._price(product_id, s)) AS total
              FROM lab_lines GROUP BY order_id) tot USING (order_id);

    -- one payment per order that got past pending
    INSERT INTO shop.payments (tenant_id, payment_id, order_id, method, status, amount_cents, provider_ref, created_at)
    OVERRIDING SYSTEM VALUE
    SELECT o.tenant_id, o.order_id, o.order_id,
           (ARRAY['card', 'card', 'card', 'wallet', 'bank_transfer', 'invoice'])[1 + floor(shop._u(o.order_id, s * 100 + 50) * 6)::int],
           CASE o.payment_status WHEN 'refunded' THEN 'refunded' WHEN 'voided' THEN 'failed' ELSE 'captured' END,
           o.total_cents, 'pay_' || o.tenant_id || '_' || o.order_id,
           o.created_at + interval '2 minutes'
      FROM shop.orders o
     WHERE o.status <> 'pending';

    -- ledger: a sale entry per captured or refunded payment, a refund entry per refund
    INSERT INTO shop.journal_entries (tenant_id, entry_id, order_id, memo, posted_at)
    OVERRIDING SYSTEM VALUE
    SELECT p.tenant_id, p.payment_id * 2, p.order_id, 'sale ' || p.provider_ref, p.created_at
      FROM shop.payments p WHERE p.status IN ('captured', 'refunded')
    UNION ALL
    SELECT p.tenant_id, p.payment_id * 2 + 1, p.order_id, 'refund ' || p.provider_ref, p.created_at + interval '3 days'
      FROM shop.payments p WHERE p.status = 'refunded';

    INSERT INTO shop.postings (tenant_id, entry_id, posting_no, account_id, amount_cents)
    SELECT p.tenant_id, p.payment_id * 2, x.n,
           (p.tenant_id - 1) * 4 + x.acct, x.sign * p.amount_cents
      FROM shop.payments p
     CROSS JOIN (VALUES (1, 1, 1), (2, 2, -1)) x(n, acct, sign)      -- debit cash, credit revenue
     WHERE p.status IN ('captured', 'refunded')
    UNION ALL
    SELECT p.tenant_id, p.payment_id * 2 + 1, x.n,
           (p.tenant_id - 1) * 4 + x.acct, x.sign * p.amount_cents
      FROM shop.payments p
     CROSS JOIN (VALUES (1, 3, 1), (2, 1, -1)) x(n, acct, sign)      -- debit refunds, credit cash
     WHERE p.status = 'refunded';

    DROP TABLE pg_temp.lab_ranges, pg_temp.lab_buckets, pg_temp.lab_orders, pg_temp.lab_lines;
    t_load := clock_timestamp() - t0;
    PERFORM shop.lab_finish();

    -- identities continue after the generated ids
    PERFORM setval(pg_get_serial_sequence('shop.tenants', 'tenant_id'), (SELECT max(tenant_id) FROM shop.tenants));
    PERFORM setval(pg_get_serial_sequence('shop.customers', 'customer_id'), (SELECT max(customer_id) FROM shop.customers));
    PERFORM setval(pg_get_serial_sequence('shop.products', 'product_id'), (SELECT max(product_id) FROM shop.products));
    PERFORM setval(pg_get_serial_sequence('shop.orders', 'order_id'), (SELECT max(order_id) FROM shop.orders));
    PERFORM setval(pg_get_serial_sequence('shop.payments', 'payment_id'), (SELECT max(payment_id) FROM shop.payments));
    PERFORM setval(pg_get_serial_sequence('shop.accounts', 'account_id'), (SELECT max(account_id) FROM shop.accounts));
    PERFORM setval(pg_get_serial_sequence('shop.journal_entries', 'entry_id'), (SELECT max(entry_id) FROM shop.journal_entries));

    INSERT INTO shop.lab_meta VALUES
        ('scale', scale::text), ('seed', seed::text), ('anchor', anchor::text),
        ('load_seconds', round(extract(epoch FROM t_load)::numeric, 2)::text),
        ('total_seconds', round(extract(epoch FROM clock_timestamp() - t0)::numeric, 2)::text);

    ANALYZE shop.tenants, shop.customers, shop.products, shop.stock, shop.orders, shop.order_lines,
            shop.payments, shop.accounts, shop.journal_entries, shop.postings, shop.lab_tenant_ranges;

    RETURN QUERY
    SELECT c.relname::text, (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM shop.%I', c.relname), false, true, '')))[1]::text::bigint,
           pg_total_relation_size(c.oid), pg_size_pretty(pg_total_relation_size(c.oid))
      FROM pg_class c
     WHERE c.relnamespace = 'shop'::regnamespace AND c.relkind = 'r' AND c.relname NOT LIKE 'lab\_%'
     ORDER BY pg_total_relation_size(c.oid) DESC;
END
$$;
COMMENT ON FUNCTION shop.lab_generate(double precision, integer, timestamptz) IS
  'Loads the lab: deterministic for (scale, seed, anchor); scale 1 is 100 tenants, 100k customers, 1M orders. Adds constraints and indexes after the load, then ANALYZE. Returns rows and size per table.';

-- A checksum of the generated data, for determinism tests: same (scale, seed, anchor) => same value.
CREATE FUNCTION shop.lab_checksum() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET extra_float_digits = 1
AS $$
    SELECT md5(string_agg(t.tbl || ':' || t.h::text, ',' ORDER BY t.tbl))
      FROM (
        SELECT 'tenants' AS tbl, sum(hashtext(x::text)::bigint) AS h FROM shop.tenants x
        UNION ALL SELECT 'customers', sum(hashtext(x::text)::bigint) FROM shop.customers x
        UNION ALL SELECT 'products', sum(hashtext(x::text)::bigint) FROM shop.products x
        UNION ALL SELECT 'stock', sum(hashtext(x::text)::bigint) FROM shop.stock x
        UNION ALL SELECT 'orders', sum(hashtext(x::text)::bigint) FROM shop.orders x
        UNION ALL SELECT 'order_lines', sum(hashtext(x::text)::bigint) FROM shop.order_lines x
        UNION ALL SELECT 'payments', sum(hashtext(x::text)::bigint) FROM shop.payments x
        UNION ALL SELECT 'accounts', sum(hashtext(x::text)::bigint) FROM shop.accounts x
        UNION ALL SELECT 'journal_entries', sum(hashtext(x::text)::bigint) FROM shop.journal_entries x
        UNION ALL SELECT 'postings', sum(hashtext(x::text)::bigint) FROM shop.postings x
      ) t
$$;
COMMENT ON FUNCTION shop.lab_checksum() IS
  'md5 over per-table sums of row hashes: equal for equal data, independent of physical order.';
