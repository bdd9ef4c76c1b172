//! On-call triage, the SQL surface: `capstone.triage()` runs the first diagnostic query
//! of each of the seven failure modes live and says what it found, how bad it is, and
//! the first fix. Argument checks and result rows only; the probes are `probes`, running
//! them `run`, a finding `finding`, the per-probe statement timeout `timeout`.

mod finding;
mod probes;
mod run;
mod timeout;

pub use finding::{Finding, Severity};
pub use run::run_triage;

use pgrx::prelude::*;

/// The on-call view: one row per failure mode, each from a live diagnostic query, most
/// severe first.
#[pg_extern(volatile, parallel_unsafe)]
fn triage(
    probe_timeout_ms: default!(Option<i32>, 500),
) -> TableIterator<
    'static,
    (
        name!(mode, String),
        name!(severity, String),
        name!(finding, String),
        name!(first_fix, String),
        name!(probe_ms, f64),
        name!(status, String),
        name!(probe, String),
    ),
> {
    let t = crate::infra::error::check_range(
        "probe_timeout_ms",
        probe_timeout_ms.unwrap_or(500),
        10,
        60_000,
    );
    let rows = run_triage(t);
    TableIterator::new(rows.into_iter().map(|f| {
        (
            f.mode,
            f.severity.as_str().to_string(),
            f.finding,
            f.first_fix,
            crate::infra::format::round(f.ms, 2),
            f.status,
            f.probe,
        )
    }))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn triage_has_seven_rows_and_runs_every_probe() -> Result<(), pgrx::spi::Error> {
        let n = Spi::get_one::<i64>("SELECT count(*) FROM capstone.triage() WHERE status = 'ok'")?;
        assert_eq!(n, Some(7));
        Ok(())
    }

    #[pg_test]
    fn missing_fk_index_is_found() -> Result<(), pgrx::spi::Error> {
        Spi::run(
            "CREATE TABLE t_parent (id int PRIMARY KEY);
             CREATE TABLE t_child (id int PRIMARY KEY, parent_id int REFERENCES t_parent);",
        )?;
        let (sev, fix) = Spi::get_two::<String, String>(
            "SELECT severity, first_fix FROM capstone.triage() WHERE mode = 'schema'",
        )?;
        assert_eq!(sev.as_deref(), Some("warn"));
        assert_eq!(
            fix.as_deref(),
            Some("CREATE INDEX CONCURRENTLY ON public.t_child (parent_id);")
        );
        Ok(())
    }

    #[pg_test]
    fn prepared_transaction_is_named_in_bloat_row() -> Result<(), pgrx::spi::Error> {
        // the probe reads pg_prepared_xacts; a statement timeout of 10 ms must not break it
        let status = Spi::get_one::<String>(
            "SELECT status FROM capstone.triage(probe_timeout_ms => 10) WHERE mode = 'bloat'",
        )?;
        assert!(matches!(status.as_deref(), Some("ok") | Some("timeout")));
        Ok(())
    }

    #[pg_test(error = "probe_timeout_ms must be between 10 and 60000 (got 0)")]
    fn bad_timeout() -> Result<(), pgrx::spi::Error> {
        Spi::run("SELECT * FROM capstone.triage(0)")
    }
}
