//! What the demos read through SPI before and around a run: whether the lab is
//! installed, what the caller lacks on its tables, the columns a demo customer must
//! fill, the one-demo-at-a-time lock and a fresh token. No sessions here.

use pgrx::prelude::*;

/// Whether the lab's five tables exist in schema shop.
pub fn lab_installed() -> bool {
    Spi::get_one::<bool>(
        "SELECT count(*) = 5 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'shop' AND c.relkind IN ('r', 'p')
            AND c.relname IN ('tenants', 'customers', 'products', 'stock', 'orders')",
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// What the caller lacks on the lab's tables for the demo's fixture and script, or None.
pub fn lab_missing_privileges() -> Option<String> {
    Spi::get_one::<String>(
        "SELECT string_agg(CASE WHEN v.t IS NULL THEN 'USAGE on schema shop' ELSE format('%s on shop.%s', v.p, v.t) END,
                           ', ' ORDER BY v.n)
           FROM (VALUES (0, NULL, 'USAGE'), (1, 'tenants', 'SELECT'), (2, 'tenants', 'INSERT'), (3, 'tenants', 'UPDATE'),
                        (4, 'tenants', 'DELETE'), (5, 'customers', 'SELECT'), (6, 'customers', 'INSERT'),
                        (7, 'customers', 'DELETE'), (8, 'products', 'SELECT'), (9, 'products', 'INSERT'),
                        (10, 'products', 'DELETE'), (11, 'stock', 'SELECT'), (12, 'stock', 'INSERT'),
                        (13, 'stock', 'UPDATE'), (14, 'stock', 'DELETE'), (15, 'orders', 'SELECT'),
                        (16, 'orders', 'INSERT'), (17, 'orders', 'UPDATE'), (18, 'orders', 'DELETE'),
                        (19, 'order_lines', 'SELECT')) v(n, t, p)
          WHERE CASE WHEN v.t IS NULL THEN NOT pg_catalog.has_schema_privilege('shop', 'USAGE')
                     ELSE NOT pg_catalog.has_table_privilege(
                            (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                              WHERE n.nspname = 'shop' AND c.relname = v.t), v.p) END",
    )
    .ok()
    .flatten()
}

/// The columns a demo customer must fill, read from the catalog so the demo follows the lab's
/// schema as it is (the migration gate replaces `full_name` by `first_name` + `last_name`):
/// every NOT NULL column without a default, identity or generation, with a value that
/// satisfies the lab's checks for the columns it knows and a neutral one by type otherwise.
/// Returns (column list, value list), both starting with a comma, or why it cannot.
pub fn customer_fill() -> Result<(String, String), String> {
    Spi::connect(|c| {
        let t = c.select(
            "SELECT pg_catalog.quote_ident(a.attname),
                    CASE a.attname WHEN 'email' THEN '''demo@capstone.example'''
                                   WHEN 'country' THEN '''DE'''
                                   WHEN 'segment' THEN '''consumer'''
                                   WHEN 'full_name' THEN '''Demo Customer'''
                                   WHEN 'first_name' THEN '''Demo'''
                                   WHEN 'last_name' THEN '''Customer'''
                         ELSE CASE ty.typcategory WHEN 'S' THEN '''demo'''
                                                  WHEN 'N' THEN '0'
                                                  WHEN 'D' THEN 'now()'
                                                  WHEN 'B' THEN 'false' END
                              || '::' || pg_catalog.format_type(a.atttypid, a.atttypmod) END
               FROM pg_catalog.pg_attribute a
               JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
              WHERE a.attrelid = 'shop.customers'::pg_catalog.regclass AND a.attnum > 0
                AND NOT a.attisdropped AND a.attnotnull AND NOT a.atthasdef
                AND a.attidentity = '' AND a.attgenerated = '' AND a.attname <> 'tenant_id'
              ORDER BY a.attnum",
            None,
            &[],
        )?;
        let (mut cols, mut vals) = (String::new(), String::new());
        for r in t {
            let col = r.get::<String>(1)?.unwrap_or_default();
            match r.get::<String>(2)? {
                Some(v) => {
                    cols.push_str(", ");
                    cols.push_str(&col);
                    vals.push_str(", ");
                    vals.push_str(&v);
                }
                None => return Ok(Err(format!("shop.customers.{col} is NOT NULL without a default, and the demo cannot fill its type"))),
            }
        }
        Ok::<_, pgrx::spi::Error>(Ok((cols, vals)))
    })
    .unwrap_or_else(|e| Err(e.to_string()))
}

/// The name whose hash keys the advisory lock that keeps demos one at a time.
pub const DEMO_LOCK_KEY: &str = "capstone.anomaly_demo";

/// The advisory lock that keeps demos one at a time in this database (this transaction).
pub fn demo_lock() -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT pg_try_advisory_xact_lock(hashtext($1))",
        &[DEMO_LOCK_KEY.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// The next worker token.
pub fn new_token() -> i64 {
    Spi::get_one("SELECT nextval('capstone.worker_token_seq')")
        .ok()
        .flatten()
        .unwrap_or(0)
}
