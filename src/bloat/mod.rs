//! The bloat gate's SQL surface: how much of each table and btree index is free or dead
//! space (`capstone.bloat_report`), who holds the xmin horizon back
//! (`capstone.xmin_holders`), and the long-transaction scenario that shows both with a
//! real second session (`capstone.bloat_scenario`, `capstone.bloat_scenario_finish`).
//! Argument checks, calls and result rows only: SPI reads are in `catalog`, `holders`
//! and `observe`, page access in `reader`, the arithmetic in `estimate` and `page`.

// pgrx needs each result row spelled out as a name!() tuple in the signature
#![allow(clippy::type_complexity)]

mod catalog;
pub mod estimate;
mod fixture;
pub mod holders;
mod measure;
mod observe;
pub mod page;
mod reader;
mod scenario;
mod steps;
mod workers;

use crate::infra::error::{check_choice, check_range, required, CapstoneError, OrRaise};
use crate::infra::format::{round, size_pretty};
pub use crate::infra::regclass::RegClass;
use measure::{Mode, Row, MODES};
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::IntoDatum;

// bloat_report returns each relation as a regclass column, so it reads as a name in psql
// and joins with pgstattuple(relid) directly
unsafe impl pgrx::callconv::BoxRet for RegClass {
    unsafe fn box_into<'fcx>(
        self,
        fcinfo: &mut pgrx::callconv::FcInfo<'fcx>,
    ) -> pgrx::datum::Datum<'fcx> {
        match self.into_datum() {
            Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
            None => fcinfo.return_null(),
        }
    }
}

/// One row per table, materialized view, TOAST table and btree index in scope, biggest
/// estimated bloat first (capstone's own schemas only when named): size, estimated
/// bloat, live and dead tuples, last vacuums, whether VACUUM could remove the dead
/// tuples now, and how the estimate was made.
#[pg_extern(volatile, parallel_unsafe)]
fn bloat_report(
    schema_name: default!(Option<String>, "NULL"),
    rel: default!(Option<RegClass>, "NULL"),
    min_bytes: default!(Option<i64>, 0),
    mode: default!(Option<String>, "'fast'"),
) -> TableIterator<
    'static,
    (
        name!(schema, String),
        name!(relation, String),
        name!(kind, String),
        name!(total_bytes, i64),
        name!(est_bloat_bytes, i64),
        name!(est_bloat_pct, f64),
        name!(total_pretty, String),
        name!(est_bloat_pretty, String),
        name!(live_tuples, Option<i64>),
        name!(dead_tuples, Option<i64>),
        name!(last_vacuum, Option<TimestampWithTimeZone>),
        name!(last_autovacuum, Option<TimestampWithTimeZone>),
        name!(removable, Option<bool>),
        name!(method, String),
        name!(relid, RegClass),
    ),
> {
    let mode = Mode::from_choice(check_choice("mode", &required(mode, "mode"), &MODES));
    let min_bytes = required(min_bytes, "min_bytes");
    if min_bytes < 0 {
        CapstoneError::InvalidParameter(format!("min_bytes must be 0 or more (got {min_bytes})"))
            .raise_hint(
                "rows with less estimated bloat than min_bytes are left out; 0 keeps every row",
            );
    }
    let pgstattuple = catalog::pgstattuple_schema();
    if mode == Mode::Exact && pgstattuple.is_none() {
        CapstoneError::NotSupported("mode 'exact' needs the pgstattuple extension".into())
            .raise_with(
                "exact mode reads every page with pgstattuple() and pgstatindex()",
                "CREATE EXTENSION pgstattuple; or use mode => 'approx', which needs nothing",
            );
    }
    let schema = schema_name
        .as_deref()
        .map(catalog::schema_oid)
        .transpose()
        .or_raise();
    let rel = rel.map(|r| r.0);
    let relkind = rel
        .map(catalog::check_relation)
        .transpose()
        .or_raise()
        .unwrap_or_default();
    let list = catalog::targets(schema, rel, &relkind).or_raise();
    let mut rows: Vec<Row> = measure::run(mode, &list, pgstattuple)
        .or_raise()
        .into_iter()
        .filter(|r| r.est_bloat_bytes >= min_bytes)
        .collect();
    // biggest reclaimable space first; ties keep schema, table, TOAST, index order
    rows.sort_by_key(|r| std::cmp::Reverse(r.est_bloat_bytes));
    TableIterator::new(rows.into_iter().map(|r| {
        (
            r.schema,
            r.relation,
            r.kind.label().to_string(),
            r.total_bytes,
            r.est_bloat_bytes,
            round(r.est_bloat_pct, 1),
            size_pretty(r.total_bytes),
            size_pretty(r.est_bloat_bytes),
            r.live_tuples,
            r.dead_tuples,
            r.last_vacuum,
            r.last_autovacuum,
            r.removable,
            r.method,
            RegClass(r.relid),
        )
    }))
}

/// Everything in this cluster holding back the xmin horizon: sessions with an
/// old snapshot or transaction (idle in transaction or busy), replication slots,
/// prepared transactions and hot-standby feedback, oldest first, each with the
/// SQL that releases it.
#[pg_extern(volatile, parallel_unsafe)]
fn xmin_holders() -> TableIterator<
    'static,
    (
        name!(holder_kind, String),
        name!(holder, String),
        name!(pid, Option<i32>),
        name!(role, Option<String>),
        name!(database, Option<String>),
        name!(xmin_age_xids, Option<i32>),
        name!(held_for, Option<Interval>),
        name!(detail, Option<String>),
        name!(fix, Option<String>),
    ),
> {
    TableIterator::new(holders::list().or_raise().into_iter().map(|h| {
        (
            h.kind, h.holder, h.pid, h.role, h.database, h.xmin_age, h.held_for, h.detail, h.fix,
        )
    }))
}

/// Start the scenario: a snapshot holder in another session, then heavy updates.
/// The holder keeps holding after this call (at most `hold`) until
/// `capstone.bloat_scenario_finish()` ends it; an error or cancel here ends it at once.
#[pg_extern(volatile, parallel_unsafe)]
fn bloat_scenario(
    rel: default!(Option<RegClass>, "NULL"),
    updates: default!(Option<i32>, 100000),
    hold: default!(Option<Interval>, "'5 min'"),
) -> TableIterator<
    'static,
    (
        name!(scenario_id, i64),
        name!(step, String),
        name!(metric, String),
        name!(value, Option<f64>),
        name!(detail, Option<String>),
    ),
> {
    let updates = check_range("updates", required(updates, "updates"), 1, 10_000_000);
    let hold = required(hold, "hold");
    let hold_ms =
        (hold.as_micros() / 1000).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    if !(1000..=86_400_000).contains(&hold_ms) {
        CapstoneError::InvalidParameter(format!(
            "hold must be between 1 second and 1 day (got {} ms)",
            hold_ms
        ))
        .raise_hint("hold bounds how long the snapshot holder waits for bloat_scenario_finish()");
    }
    let (id, steps) = scenario::start(rel.map(|r| r.0), updates, hold_ms).or_raise();
    TableIterator::new(steps.rows(id))
}

/// Finish a scenario started by `capstone.bloat_scenario()`: VACUUM while the
/// holder holds, end the holder, VACUUM again, and measure.
#[pg_extern(volatile, parallel_unsafe)]
fn bloat_scenario_finish(
    scenario_id: default!(Option<i64>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(scenario_id, i64),
        name!(step, String),
        name!(metric, String),
        name!(value, Option<f64>),
        name!(detail, Option<String>),
    ),
> {
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        CapstoneError::NotSupported("bloat_scenario_finish needs READ COMMITTED".into()).raise_hint(
            "it reads what its VACUUM workers commit; call it outside a REPEATABLE READ or SERIALIZABLE transaction",
        );
    }
    let (id, steps) = scenario::finish(scenario_id).or_raise();
    TableIterator::new(steps.rows(id))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn run(sql: &str) {
        let r = Spi::run(sql);
        assert!(r.is_ok(), "{sql}: {r:?}");
    }

    fn make_table() {
        run("CREATE TABLE bloat_t (id int PRIMARY KEY, status int NOT NULL, note text NOT NULL)
               WITH (autovacuum_enabled = false);
             INSERT INTO bloat_t SELECT g, g % 4, repeat('x', 20 + g % 17) FROM generate_series(1, 30000) g;
             CREATE INDEX bloat_t_status ON bloat_t (status);
             ANALYZE bloat_t");
    }

    #[pg_test]
    fn fresh_table_and_dedup_index_estimates_agree_with_pgstattuple() {
        make_table();
        run("CREATE EXTENSION pgstattuple");
        let off = |kind: &str, limit: f64| {
            let ok = Spi::get_one::<bool>(&format!(
                "SELECT bool_and(abs(f.est_bloat_pct - e.est_bloat_pct) <= {limit})
                   FROM capstone.bloat_report(rel => 'bloat_t') f
                   JOIN capstone.bloat_report(rel => 'bloat_t', mode => 'exact') e USING (relid)
                  WHERE f.kind = '{kind}'"
            ));
            assert_eq!(ok, Ok(Some(true)), "{kind}");
        };
        off("table", 5.0);
        off("index", 10.0);
        // the dedup index is what a catalog-only estimate gets wrong: ~3x smaller than expected
        let sizes = Spi::get_two::<i64, i64>(
            "SELECT total_bytes, live_tuples FROM capstone.bloat_report(rel => 'bloat_t_status')",
        );
        assert!(
            matches!(sizes, Ok((Some(total), Some(live))) if total < live * 12),
            "{sizes:?}"
        );
    }

    #[pg_test]
    fn approx_mode_reads_what_the_visibility_map_does_not_cover() {
        make_table();
        let got = Spi::get_two::<String, f64>(
            "SELECT method, est_bloat_pct FROM capstone.bloat_report(rel => 'bloat_t', mode => 'approx')
              WHERE kind = 'table'",
        );
        assert!(
            matches!(&got, Ok((Some(method), Some(pct))) if method.starts_with("approx: read ") && *pct < 5.0),
            "{got:?}"
        );
    }

    #[pg_test]
    fn schema_filter_and_min_bytes() {
        make_table();
        let n = Spi::get_one::<i64>(
            "SELECT count(*) FROM capstone.bloat_report(schema_name => 'public') WHERE relation = 'bloat_t' AND kind = 'table'",
        );
        assert_eq!(n, Ok(Some(1)));
        let n = Spi::get_one::<i64>(
            "SELECT count(*) FROM capstone.bloat_report(rel => 'bloat_t', min_bytes => 1000000000000)",
        );
        assert_eq!(n, Ok(Some(0)));
    }

    #[pg_test(error = "unknown mode \"slow\"")]
    fn unknown_mode_is_refused() {
        run("SELECT * FROM capstone.bloat_report(mode => 'slow')");
    }

    #[pg_test(error = "mode must not be NULL")]
    fn null_mode_is_refused() {
        run("SELECT * FROM capstone.bloat_report(mode => NULL)");
    }

    #[pg_test(error = "min_bytes must be 0 or more (got -1)")]
    fn negative_min_bytes_is_refused() {
        run("SELECT * FROM capstone.bloat_report(min_bytes => -1)");
    }

    #[pg_test(error = "\"bloat_v\" is a view")]
    fn a_view_is_refused() {
        run("CREATE VIEW bloat_v AS SELECT 1 AS x");
        run("SELECT * FROM capstone.bloat_report(rel => 'bloat_v')");
    }

    #[pg_test(error = "\"bloat_s\" is a sequence")]
    fn a_sequence_is_refused() {
        run("CREATE SEQUENCE bloat_s");
        run("SELECT * FROM capstone.bloat_report(rel => 'bloat_s')");
    }

    #[pg_test(error = "relation with OID 4000000000 does not exist")]
    fn a_dropped_relation_is_42p01() {
        run("SELECT * FROM capstone.bloat_report(rel => 4000000000::oid::regclass)");
    }

    #[pg_test(error = "schema \"no_such_schema\" does not exist")]
    fn an_unknown_schema_is_refused() {
        run("SELECT * FROM capstone.bloat_report(schema_name => 'no_such_schema')");
    }

    #[pg_test(error = "mode 'exact' needs the pgstattuple extension")]
    fn exact_mode_needs_pgstattuple() {
        run("SELECT * FROM capstone.bloat_report(mode => 'exact')");
    }

    #[pg_test]
    fn xmin_holders_never_lists_the_caller() {
        let mine = Spi::get_one::<i64>(
            "SELECT count(*) FROM capstone.xmin_holders() WHERE pid = pg_backend_pid()",
        );
        assert_eq!(mine, Ok(Some(0)));
    }

    /// The SQLSTATE a statement fails with, or NULL.
    fn sqlstate_helper() {
        run(
            "CREATE FUNCTION capstone_test_sqlstate(q text) RETURNS text LANGUAGE plpgsql AS $f$
             BEGIN EXECUTE q; RETURN NULL;
             EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $f$",
        );
    }

    #[pg_test(error = "updates must be between 1 and 10000000 (got 0)")]
    fn zero_updates_are_refused() {
        run("SELECT * FROM capstone.bloat_scenario(updates => 0)");
    }

    #[pg_test(error = "hold must be between 1 second and 1 day (got 0 ms)")]
    fn zero_hold_is_refused() {
        run("SELECT * FROM capstone.bloat_scenario(hold => '0 s')");
    }

    #[pg_test(error = "public.bloat_scenario_v is not an ordinary table")]
    fn a_view_is_not_a_scenario_table() {
        run("CREATE VIEW bloat_scenario_v AS SELECT 1 AS x");
        run("SELECT * FROM capstone.bloat_scenario('bloat_scenario_v')");
    }

    /// One transaction can start a scenario (the holder is another session, and it
    /// needs nothing this transaction wrote), but cannot finish it: its updates
    /// are not committed, so VACUUM could not remove them anyway.
    #[pg_test]
    fn a_scenario_holds_and_cannot_finish_in_the_same_transaction() {
        sqlstate_helper();
        let got = Spi::get_two::<f64, f64>(
            "SELECT max(value) FILTER (WHERE metric = 'holder_named_in_xmin_holders'),
                    max(value) FILTER (WHERE metric = 'rows_updated')
               FROM capstone.bloat_scenario(updates => 2000, hold => '3 s')",
        );
        assert_eq!(got, Ok((Some(1.0), Some(2000.0))));
        let state = Spi::get_one::<String>(
            "SELECT capstone_test_sqlstate('SELECT * FROM capstone.bloat_scenario_finish()')",
        );
        assert_eq!(state, Ok(Some("55000".to_string())));
    }
}
