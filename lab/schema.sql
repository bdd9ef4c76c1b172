-- The lab: a multi-tenant order system with a double-entry ledger.
--
-- Loaded by capstone.lab_install(scale, seed) or, by hand, with
--   \i lab/schema.sql
--   \i lab/generate.sql
--   SELECT * FROM shop.lab_generate(scale => 1, seed => 42);
--
-- Tables are created without foreign keys, secondary indexes or triggers:
-- shop.lab_generate() bulk-loads them first and then calls shop.lab_finish(),
-- which adds every constraint and index below in one validating pass each
-- (the same order pg_restore and pgbench -i use). The rationale for each
-- non-obvious choice is a COMMENT ON, so \d+ shows it, and docs/schema.md.

CREATE SCHEMA shop;
COMMENT ON SCHEMA shop IS
  'capstone lab: multi-tenant orders with a double-entry ledger. Every tenant-owned key starts with tenant_id.';

-- Tenants ---------------------------------------------------------------------
CREATE TABLE shop.tenants (
    tenant_id          bigint GENERATED ALWAYS AS IDENTITY,
    slug               text   NOT NULL,
    name               text   NOT NULL,
    plan               text   NOT NULL,
    region             text   NOT NULL,
    currency           text   NOT NULL,
    credit_limit_cents bigint NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenants_pkey PRIMARY KEY (tenant_id),
    CONSTRAINT tenants_slug_key UNIQUE (slug),
    CONSTRAINT tenants_slug_format CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,39}$'),
    CONSTRAINT tenants_plan_check CHECK (plan IN ('free', 'growth', 'enterprise')),
    CONSTRAINT tenants_region_check CHECK (region IN ('eu', 'us', 'apac')),
    CONSTRAINT tenants_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT tenants_credit_limit_check CHECK (credit_limit_cents >= 0)
);
COMMENT ON TABLE shop.tenants IS
  'One row per merchant. Keys are bigint identity, not UUID: on this schema a bigint key index is about half the size of a UUID one and inserts append to the rightmost leaf (see docs/schema.md for the measured numbers). Identity is ALWAYS so applications cannot invent ids.';
COMMENT ON COLUMN shop.tenants.credit_limit_cents IS
  'Money is integer cents (bigint), never float or numeric: exact, fast to sum, and the currency fixes the scale.';

-- Customers -------------------------------------------------------------------
CREATE TABLE shop.customers (
    tenant_id   bigint NOT NULL,
    customer_id bigint GENERATED ALWAYS AS IDENTITY,
    email       text   NOT NULL,
    full_name   text   NOT NULL,
    country     text   NOT NULL,
    segment     text   NOT NULL,
    created_at  timestamptz NOT NULL,
    CONSTRAINT customers_country_check CHECK (country ~ '^[A-Z]{2}$'),
    CONSTRAINT customers_segment_check CHECK (segment IN ('consumer', 'business')),
    CONSTRAINT customers_email_check CHECK (position('@' IN email) > 1)
);
COMMENT ON TABLE shop.customers IS
  'Per-tenant customers. The key is (tenant_id, customer_id) even though customer_id alone is unique: tenant-scoped keys let child tables carry composite foreign keys, which makes a cross-tenant reference impossible, and keep every tenant''s rows together under one shard key.';

-- Products and stock ----------------------------------------------------------
CREATE TABLE shop.products (
    tenant_id   bigint  NOT NULL,
    product_id  bigint  GENERATED ALWAYS AS IDENTITY,
    sku         text    NOT NULL,
    name        text    NOT NULL,
    category    text    NOT NULL,
    price_cents bigint  NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    CONSTRAINT products_price_check CHECK (price_cents >= 0),
    CONSTRAINT products_sku_check CHECK (sku <> '')
);
COMMENT ON TABLE shop.products IS
  'Per-tenant catalogue. sku is the tenant''s own natural key, unique per tenant, not globally.';

CREATE TABLE shop.stock (
    tenant_id  bigint  NOT NULL,
    product_id bigint  NOT NULL,
    on_hand    integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stock_on_hand_check CHECK (on_hand >= 0)
);
COMMENT ON TABLE shop.stock IS
  'Units on hand per product. on_hand >= 0 is the last line of defence against overselling: an atomic UPDATE ... SET on_hand = on_hand - n fails with 23514 instead of going negative.';

-- Orders ------------------------------------------------------------------------
CREATE TABLE shop.orders (
    tenant_id          bigint NOT NULL,
    order_id           bigint GENERATED ALWAYS AS IDENTITY,
    order_no           text   NOT NULL,
    customer_id        bigint NOT NULL,
    status             text   NOT NULL,
    fulfillment_status text   NOT NULL,
    payment_status     text   NOT NULL,
    currency           text   NOT NULL,
    total_cents        bigint NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    CONSTRAINT orders_status_check CHECK (status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded')),
    CONSTRAINT orders_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT orders_total_check CHECK (total_cents >= 0),
    CONSTRAINT orders_state_consistent CHECK (
        (status, fulfillment_status, payment_status) IN (
            ('pending',   'unfulfilled', 'awaiting'),
            ('paid',      'unfulfilled', 'captured'),
            ('paid',      'picking',     'captured'),
            ('shipped',   'in_transit',  'captured'),
            ('delivered', 'delivered',   'captured'),
            ('cancelled', 'voided',      'voided'),
            ('refunded',  'returned',    'refunded')))
);
COMMENT ON TABLE shop.orders IS
  'Orders. order_no is the storefront''s idempotency key, unique per tenant: a retried checkout hits 23505 instead of creating a second order.';
COMMENT ON CONSTRAINT orders_state_consistent ON shop.orders IS
  'The order lifecycle as a state machine: only these (status, fulfillment, payment) triples exist. It also means the three columns are functionally dependent, which the planner does not know without extended statistics (the statistics gate).';
COMMENT ON COLUMN shop.orders.total_cents IS
  'THE deliberate denormalization. Owner: trigger shop.order_lines_total_* (function shop.order_total_sync), which recomputes it from order_lines for every order a statement touches. Nobody else writes it. It exists because revenue reports would otherwise join and sum order_lines (2.5x the rows) on every call.';

CREATE TABLE shop.order_lines (
    tenant_id        bigint   NOT NULL,
    order_id         bigint   NOT NULL,
    line_no          smallint NOT NULL,
    product_id       bigint   NOT NULL,
    quantity         integer  NOT NULL,
    unit_price_cents bigint   NOT NULL,
    CONSTRAINT order_lines_line_no_check CHECK (line_no > 0),
    CONSTRAINT order_lines_quantity_check CHECK (quantity > 0),
    CONSTRAINT order_lines_price_check CHECK (unit_price_cents >= 0)
);
COMMENT ON TABLE shop.order_lines IS
  'Lines copy the unit price at order time: a later price change must not rewrite history.';

-- Payments --------------------------------------------------------------------
CREATE TABLE shop.payments (
    tenant_id    bigint NOT NULL,
    payment_id   bigint GENERATED ALWAYS AS IDENTITY,
    order_id     bigint NOT NULL,
    method       text   NOT NULL,
    status       text   NOT NULL,
    amount_cents bigint NOT NULL,
    provider_ref text   NOT NULL,
    created_at   timestamptz NOT NULL,
    CONSTRAINT payments_method_check CHECK (method IN ('card', 'bank_transfer', 'wallet', 'invoice')),
    CONSTRAINT payments_status_check CHECK (status IN ('authorized', 'captured', 'refunded', 'failed')),
    CONSTRAINT payments_amount_check CHECK (amount_cents > 0)
);
COMMENT ON TABLE shop.payments IS
  'Payments against orders. provider_ref is unique per tenant so a replayed provider webhook cannot record a payment twice.';

-- Ledger ----------------------------------------------------------------------
CREATE TABLE shop.accounts (
    tenant_id  bigint NOT NULL,
    account_id bigint GENERATED ALWAYS AS IDENTITY,
    code       text   NOT NULL,
    kind       text   NOT NULL,
    currency   text   NOT NULL,
    CONSTRAINT accounts_kind_check CHECK (kind IN ('asset', 'liability', 'equity', 'revenue', 'expense')),
    CONSTRAINT accounts_currency_check CHECK (currency ~ '^[A-Z]{3}$')
);
COMMENT ON TABLE shop.accounts IS
  'Chart of accounts per tenant. Balances are never stored: a balance is the sum of its postings, served by an index-only scan.';

CREATE TABLE shop.journal_entries (
    tenant_id bigint NOT NULL,
    entry_id  bigint GENERATED ALWAYS AS IDENTITY,
    order_id  bigint,
    memo      text   NOT NULL,
    posted_at timestamptz NOT NULL
);
COMMENT ON TABLE shop.journal_entries IS
  'One business event in the ledger. order_id is NULL for manual entries; the composite foreign key is MATCH SIMPLE, so NULL means "no order", never "any tenant''s order".';

CREATE TABLE shop.postings (
    tenant_id    bigint   NOT NULL,
    entry_id     bigint   NOT NULL,
    posting_no   smallint NOT NULL,
    account_id   bigint   NOT NULL,
    amount_cents bigint   NOT NULL,
    CONSTRAINT postings_posting_no_check CHECK (posting_no > 0),
    CONSTRAINT postings_amount_check CHECK (amount_cents <> 0)
);
COMMENT ON TABLE shop.postings IS
  'Double-entry postings: debit positive, credit negative. The postings of one journal entry sum to zero, checked at COMMIT by the deferred constraint trigger postings_balanced.';
COMMENT ON COLUMN shop.postings.amount_cents IS
  'Signed on purpose: the only money column that may be negative, because the sign carries debit/credit and makes the balance invariant a plain sum.';

-- Generator bookkeeping -----------------------------------------------------------
CREATE TABLE shop.lab_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
COMMENT ON TABLE shop.lab_meta IS 'How this lab was generated: scale, seed, anchor time, load timings.';

-- Per-tenant id ranges the workload scripts use to pick a customer or product of a tenant.
CREATE TABLE shop.lab_tenant_ranges (
    tenant_id       bigint PRIMARY KEY,
    customer_lo     bigint NOT NULL,
    customer_n      integer NOT NULL,
    product_lo      bigint NOT NULL,
    product_n       integer NOT NULL,
    account_cash    bigint NOT NULL,
    account_revenue bigint NOT NULL
);
COMMENT ON TABLE shop.lab_tenant_ranges IS
  'Generator output used by lab/workload/*.sql: the contiguous id ranges of each tenant''s customers and products.';

-- Ledger invariant: every journal entry balances, checked at commit --------------
CREATE FUNCTION shop.check_entry_balanced() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t bigint;
    e bigint;
    total numeric;
    n int;
BEGIN
    IF TG_OP = 'DELETE' THEN
        t := OLD.tenant_id; e := OLD.entry_id;
    ELSE
        t := NEW.tenant_id; e := NEW.entry_id;
    END IF;
    IF TG_TABLE_NAME = 'journal_entries' AND TG_OP = 'DELETE' THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(sum(p.amount_cents), 0), count(*) INTO total, n
      FROM shop.postings p WHERE p.tenant_id = t AND p.entry_id = e;
    -- an entry whose postings were all deleted with it is fine; otherwise it must balance
    IF n = 0 AND NOT EXISTS (SELECT 1 FROM shop.journal_entries j WHERE j.tenant_id = t AND j.entry_id = e) THEN
        RETURN NULL;
    END IF;
    IF n < 2 OR total <> 0 THEN
        RAISE EXCEPTION 'journal entry % of tenant % is unbalanced', e, t
            USING ERRCODE = 'check_violation',
                  DETAIL = format('%s posting(s) summing to %s cents', n, total),
                  HINT = 'every journal entry needs at least two postings whose amounts sum to zero';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION shop.check_entry_balanced() IS
  'Deferred constraint trigger body: at COMMIT, each touched journal entry must have >= 2 postings summing to zero. Deferred, because the postings of one entry are inserted by separate statements.';

-- The denormalization's owner: orders.total_cents follows order_lines -------------
CREATE FUNCTION shop.order_total_sync() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- Statement-level with transition tables: one UPDATE per statement, however many lines it touched.
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE shop.orders o
           SET total_cents = s.total, updated_at = now()
          FROM (SELECT k.tenant_id, k.order_id,
                       coalesce((SELECT sum(l.quantity * l.unit_price_cents)
                                   FROM shop.order_lines l
                                  WHERE l.tenant_id = k.tenant_id AND l.order_id = k.order_id), 0) AS total
                  FROM (SELECT DISTINCT tenant_id, order_id FROM new_lines) k) s
         WHERE o.tenant_id = s.tenant_id AND o.order_id = s.order_id AND o.total_cents IS DISTINCT FROM s.total;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE shop.orders o
           SET total_cents = s.total, updated_at = now()
          FROM (SELECT k.tenant_id, k.order_id,
                       coalesce((SELECT sum(l.quantity * l.unit_price_cents)
                                   FROM shop.order_lines l
                                  WHERE l.tenant_id = k.tenant_id AND l.order_id = k.order_id), 0) AS total
                  FROM (SELECT DISTINCT tenant_id, order_id FROM old_lines) k) s
         WHERE o.tenant_id = s.tenant_id AND o.order_id = s.order_id AND o.total_cents IS DISTINCT FROM s.total;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION shop.order_total_sync() IS
  'Sole writer of orders.total_cents (the lab''s one denormalization): recomputes the total of every order whose lines a statement inserted, updated or deleted.';

-- Everything that is added after the bulk load -----------------------------------
CREATE FUNCTION shop.lab_finish() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- keys
    ALTER TABLE shop.customers ADD CONSTRAINT customers_pkey PRIMARY KEY (tenant_id, customer_id);
    ALTER TABLE shop.products ADD CONSTRAINT products_pkey PRIMARY KEY (tenant_id, product_id);
    ALTER TABLE shop.stock ADD CONSTRAINT stock_pkey PRIMARY KEY (tenant_id, product_id);
    ALTER TABLE shop.orders ADD CONSTRAINT orders_pkey PRIMARY KEY (tenant_id, order_id);
    ALTER TABLE shop.order_lines ADD CONSTRAINT order_lines_pkey PRIMARY KEY (tenant_id, order_id, line_no);
    ALTER TABLE shop.payments ADD CONSTRAINT payments_pkey PRIMARY KEY (tenant_id, payment_id);
    ALTER TABLE shop.accounts ADD CONSTRAINT accounts_pkey PRIMARY KEY (tenant_id, account_id);
    ALTER TABLE shop.journal_entries ADD CONSTRAINT journal_entries_pkey PRIMARY KEY (tenant_id, entry_id);
    ALTER TABLE shop.postings ADD CONSTRAINT postings_pkey PRIMARY KEY (tenant_id, entry_id, posting_no);

    -- per-tenant natural keys
    CREATE UNIQUE INDEX customers_email_key ON shop.customers (tenant_id, lower(email));
    ALTER TABLE shop.products ADD CONSTRAINT products_sku_key UNIQUE (tenant_id, sku);
    ALTER TABLE shop.orders ADD CONSTRAINT orders_order_no_key UNIQUE (tenant_id, order_no);
    ALTER TABLE shop.payments ADD CONSTRAINT payments_provider_ref_key UNIQUE (tenant_id, provider_ref);
    ALTER TABLE shop.accounts ADD CONSTRAINT accounts_code_key UNIQUE (tenant_id, code);

    -- foreign keys: composite, so a row can only point inside its own tenant
    ALTER TABLE shop.customers ADD CONSTRAINT customers_tenant_fkey
        FOREIGN KEY (tenant_id) REFERENCES shop.tenants ON DELETE RESTRICT;
    ALTER TABLE shop.products ADD CONSTRAINT products_tenant_fkey
        FOREIGN KEY (tenant_id) REFERENCES shop.tenants ON DELETE RESTRICT;
    ALTER TABLE shop.stock ADD CONSTRAINT stock_product_fkey
        FOREIGN KEY (tenant_id, product_id) REFERENCES shop.products ON DELETE CASCADE;
    ALTER TABLE shop.orders ADD CONSTRAINT orders_customer_fkey
        FOREIGN KEY (tenant_id, customer_id) REFERENCES shop.customers ON DELETE RESTRICT;
    ALTER TABLE shop.order_lines ADD CONSTRAINT order_lines_order_fkey
        FOREIGN KEY (tenant_id, order_id) REFERENCES shop.orders ON DELETE CASCADE;
    ALTER TABLE shop.order_lines ADD CONSTRAINT order_lines_product_fkey
        FOREIGN KEY (tenant_id, product_id) REFERENCES shop.products ON DELETE RESTRICT;
    ALTER TABLE shop.payments ADD CONSTRAINT payments_order_fkey
        FOREIGN KEY (tenant_id, order_id) REFERENCES shop.orders ON DELETE RESTRICT;
    ALTER TABLE shop.accounts ADD CONSTRAINT accounts_tenant_fkey
        FOREIGN KEY (tenant_id) REFERENCES shop.tenants ON DELETE RESTRICT;
    ALTER TABLE shop.journal_entries ADD CONSTRAINT journal_entries_order_fkey
        FOREIGN KEY (tenant_id, order_id) REFERENCES shop.orders ON DELETE RESTRICT;
    ALTER TABLE shop.journal_entries ADD CONSTRAINT journal_entries_tenant_fkey
        FOREIGN KEY (tenant_id) REFERENCES shop.tenants ON DELETE RESTRICT;
    ALTER TABLE shop.postings ADD CONSTRAINT postings_entry_fkey
        FOREIGN KEY (tenant_id, entry_id) REFERENCES shop.journal_entries ON DELETE CASCADE;
    ALTER TABLE shop.postings ADD CONSTRAINT postings_account_fkey
        FOREIGN KEY (tenant_id, account_id) REFERENCES shop.accounts ON DELETE RESTRICT;

    -- secondary indexes, each serving a workload query (docs/schema.md, proven by the index gate)
    CREATE INDEX orders_tenant_created_idx ON shop.orders (tenant_id, created_at DESC, order_id DESC)
        INCLUDE (status, total_cents);
    CREATE INDEX orders_customer_idx ON shop.orders (tenant_id, customer_id, created_at DESC);
    CREATE INDEX orders_open_idx ON shop.orders (tenant_id, created_at)
        WHERE status = 'paid';
    CREATE INDEX order_lines_product_idx ON shop.order_lines (tenant_id, product_id);
    CREATE INDEX payments_order_idx ON shop.payments (tenant_id, order_id);
    CREATE INDEX journal_entries_order_idx ON shop.journal_entries (tenant_id, order_id)
        WHERE order_id IS NOT NULL;
    CREATE INDEX postings_account_idx ON shop.postings (tenant_id, account_id) INCLUDE (amount_cents);

    -- the ledger invariant and the denormalization's owner, armed after the bulk load
    CREATE CONSTRAINT TRIGGER postings_balanced
        AFTER INSERT OR UPDATE OR DELETE ON shop.postings
        DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION shop.check_entry_balanced();
    CREATE CONSTRAINT TRIGGER journal_entries_balanced
        AFTER INSERT ON shop.journal_entries
        DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION shop.check_entry_balanced();
    CREATE TRIGGER order_lines_total_ins AFTER INSERT ON shop.order_lines
        REFERENCING NEW TABLE AS new_lines
        FOR EACH STATEMENT EXECUTE FUNCTION shop.order_total_sync();
    CREATE TRIGGER order_lines_total_upd AFTER UPDATE ON shop.order_lines
        REFERENCING OLD TABLE AS old_lines NEW TABLE AS new_lines
        FOR EACH STATEMENT EXECUTE FUNCTION shop.order_total_sync();
    CREATE TRIGGER order_lines_total_del AFTER DELETE ON shop.order_lines
        REFERENCING OLD TABLE AS old_lines
        FOR EACH STATEMENT EXECUTE FUNCTION shop.order_total_sync();

    COMMENT ON INDEX shop.orders_tenant_created_idx IS
      'Serves a tenant''s recent orders with keyset pagination (created_at, order_id) and, through INCLUDE, daily revenue as an index-only scan.';
    COMMENT ON INDEX shop.orders_customer_idx IS
      'Serves a customer''s order history, newest first; also lets DELETE on customers check orders_customer_fkey without a scan.';
    COMMENT ON INDEX shop.orders_open_idx IS
      'Partial: only paid, not yet shipped orders (a few % of rows), the fulfilment queue. Tiny, and cheap to maintain because most updates move rows out of it once.';
    COMMENT ON INDEX shop.order_lines_product_idx IS
      'Serves sales-by-product and the ON DELETE RESTRICT check of order_lines_product_fkey.';
    COMMENT ON INDEX shop.payments_order_idx IS 'Serves payments of an order and the orders -> payments RESTRICT check.';
    COMMENT ON INDEX shop.journal_entries_order_idx IS 'Partial: manual entries (order_id NULL) never need it.';
    COMMENT ON INDEX shop.postings_account_idx IS
      'Serves an account balance as an index-only scan: sum(amount_cents) without touching the heap.';
    COMMENT ON INDEX shop.customers_email_key IS
      'Per-tenant unique e-mail, case-insensitive: two tenants may share a customer e-mail, one tenant may not have it twice.';
END
$$;
COMMENT ON FUNCTION shop.lab_finish() IS
  'Adds keys, foreign keys, secondary indexes and triggers after the bulk load, each validated in one pass.';
