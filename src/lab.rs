//! The lab: capstone's reference multi-tenant order/ledger schema, loaded from psql.
//!
//! The schema and generator are hand-written SQL under `lab/`, compiled into the
//! library so `capstone.lab_install()` needs no file access on the server.

use crate::infra::error::CapstoneError;
use pgrx::prelude::*;

const SCHEMA_SQL: &str = include_str!("../lab/schema.sql");
const GENERATE_SQL: &str = include_str!("../lab/generate.sql");

/// Validate a lab scale: finite, > 0, at most 1000.
pub fn check_scale(scale: Option<f64>) -> Result<f64, CapstoneError> {
    match scale {
        None => Err(CapstoneError::InvalidParameter(
            "scale must not be NULL".into(),
        )),
        Some(s) if !s.is_finite() || s <= 0.0 || s > 1000.0 => {
            Err(CapstoneError::InvalidParameter(format!(
                "scale must be greater than 0 and at most 1000 (got {s})"
            )))
        }
        Some(s) => Ok(s),
    }
}

/// Create schema `shop`, generate its data deterministically for (scale, seed,
/// anchor), add constraints and indexes, ANALYZE, and return rows and size per table.
#[pg_extern(volatile, parallel_unsafe)]
fn lab_install(
    scale: default!(Option<f64>, 1.0),
    seed: default!(Option<i32>, 42),
    anchor: default!(Option<TimestampWithTimeZone>, "NULL"),
    replace: default!(Option<bool>, false),
) -> TableIterator<
    'static,
    (
        name!(relation, String),
        name!(row_count, i64),
        name!(total_bytes, i64),
        name!(size, String),
    ),
> {
    let scale = check_scale(scale).unwrap_or_else(|e| {
        e.raise_hint(
            "scale 1 is 100 tenants, 100k customers and 1M orders (about a minute to load)",
        )
    });
    let seed = seed.unwrap_or_else(|| {
        CapstoneError::InvalidParameter("seed must not be NULL".into())
            .raise_hint("any integer; the same seed gives the same data")
    });
    let exists = Spi::get_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'shop')",
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if exists {
        if replace.unwrap_or(false) {
            Spi::run("DROP SCHEMA shop CASCADE").unwrap_or_else(|e| {
                CapstoneError::PrerequisiteState(format!("could not drop the old lab: {e}")).raise()
            });
        } else {
            CapstoneError::DuplicateObject("schema \"shop\" already exists".into()).raise_with(
                "capstone.lab_install() creates the lab in its own schema and never loads into an existing one",
                "call capstone.lab_install(scale, replace => true) to drop and rebuild it",
            );
        }
    }
    // Errors inside the scripts keep their own SQLSTATE and roll the whole call back.
    Spi::run(SCHEMA_SQL).unwrap_or_else(|e| {
        CapstoneError::PrerequisiteState(format!("lab schema failed: {e}")).raise()
    });
    Spi::run(GENERATE_SQL).unwrap_or_else(|e| {
        CapstoneError::PrerequisiteState(format!("lab generator failed: {e}")).raise()
    });
    let rows = Spi::connect_mut(|c| {
        let mut out = Vec::new();
        let tup = c.update(
            "SELECT relation, row_count, total_bytes, size
               FROM shop.lab_generate($1, $2, coalesce($3, date_trunc('day', now())))",
            None,
            &[scale.into(), seed.into(), anchor.into()],
        )?;
        for r in tup {
            out.push((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<i64>(2)?.unwrap_or(0),
                r.get::<i64>(3)?.unwrap_or(0),
                r.get::<String>(4)?.unwrap_or_default(),
            ));
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_else(|e| {
        CapstoneError::PrerequisiteState(format!("lab generator failed: {e}")).raise()
    });
    TableIterator::new(rows)
}

#[cfg(test)]
mod unit {
    use super::check_scale;

    #[test]
    fn scale_bounds() {
        assert!(check_scale(None).is_err());
        assert!(check_scale(Some(0.0)).is_err());
        assert!(check_scale(Some(-1.0)).is_err());
        assert!(check_scale(Some(f64::NAN)).is_err());
        assert!(check_scale(Some(1001.0)).is_err());
        assert_eq!(check_scale(Some(0.01)), Ok(0.01));
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn install_small() {
        Spi::run("SELECT * FROM capstone.lab_install(scale => 0.01, seed => 7, anchor => '2026-06-01 00:00+00')")
            .unwrap();
    }

    #[pg_test(error = "scale must be greater than 0 and at most 1000 (got 0)")]
    fn zero_scale_is_refused() {
        Spi::run("SELECT * FROM capstone.lab_install(scale => 0)").unwrap();
    }

    #[pg_test(error = "scale must not be NULL")]
    fn null_scale_is_refused() {
        Spi::run("SELECT * FROM capstone.lab_install(scale => NULL)").unwrap();
    }

    #[pg_test(error = "schema \"shop\" already exists")]
    fn second_install_fails_clearly() {
        install_small();
        Spi::run("SELECT * FROM capstone.lab_install(scale => 0.01)").unwrap();
    }

    #[pg_test]
    fn generator_is_deterministic() {
        install_small();
        let first = Spi::get_one::<String>("SELECT shop.lab_checksum()").unwrap();
        Spi::run("SELECT * FROM capstone.lab_install(scale => 0.01, seed => 7, anchor => '2026-06-01 00:00+00', replace => true)").unwrap();
        let second = Spi::get_one::<String>("SELECT shop.lab_checksum()").unwrap();
        assert_eq!(first, second);
        Spi::run("SELECT * FROM capstone.lab_install(scale => 0.01, seed => 8, anchor => '2026-06-01 00:00+00', replace => true)").unwrap();
        let other = Spi::get_one::<String>("SELECT shop.lab_checksum()").unwrap();
        assert_ne!(first, other);
    }

    #[pg_test(
        error = "insert or update on table \"orders\" violates foreign key constraint \"orders_customer_fkey\""
    )]
    fn cross_tenant_reference_is_impossible() {
        install_small();
        // customer 1 belongs to tenant 1; tenant 2 may not point at it
        Spi::run(
            "INSERT INTO shop.orders (tenant_id, order_no, customer_id, status, fulfillment_status,
                                      payment_status, currency, created_at, updated_at)
             VALUES (2, 'x-1', 1, 'pending', 'unfulfilled', 'awaiting', 'USD', now(), now())",
        )
        .unwrap();
    }

    #[pg_test(
        error = "new row for relation \"stock\" violates check constraint \"stock_on_hand_check\""
    )]
    fn negative_stock_is_refused() {
        install_small();
        Spi::run("UPDATE shop.stock SET on_hand = -1 WHERE product_id = 1").unwrap();
    }

    #[pg_test(error = "journal entry 1 of tenant 1 is unbalanced")]
    fn unbalanced_entry_is_refused() {
        install_small();
        Spi::run(
            "INSERT INTO shop.journal_entries (tenant_id, entry_id, order_id, memo, posted_at)
             OVERRIDING SYSTEM VALUE VALUES (1, 1, NULL, 'manual', now())",
        )
        .unwrap();
        Spi::run(
            "INSERT INTO shop.postings (tenant_id, entry_id, posting_no, account_id, amount_cents)
             VALUES (1, 1, 1, 1, 100), (1, 1, 2, 2, -99)",
        )
        .unwrap();
        // what COMMIT would do
        Spi::run("SET CONSTRAINTS ALL IMMEDIATE").unwrap();
    }

    #[pg_test]
    fn order_total_follows_its_lines() {
        install_small();
        let (before, after) = Spi::get_two::<i64, i64>(
            "WITH o AS (SELECT tenant_id, order_id, total_cents FROM shop.orders ORDER BY order_id LIMIT 1),
                  u AS (UPDATE shop.order_lines l SET quantity = l.quantity + 1
                          FROM o WHERE l.tenant_id = o.tenant_id AND l.order_id = o.order_id AND l.line_no = 1
                        RETURNING l.unit_price_cents)
             SELECT (SELECT total_cents FROM o), (SELECT total_cents FROM o) + (SELECT unit_price_cents FROM u)",
        )
        .unwrap();
        let now =
            Spi::get_one::<i64>("SELECT total_cents FROM shop.orders ORDER BY order_id LIMIT 1")
                .unwrap();
        assert_ne!(before, after);
        assert_eq!(now, after);
    }
}
