//! The isolation gate's SQL surface: `capstone.anomaly_demo(anomaly, mode)` reproduces
//! one concurrency anomaly with real sessions, `capstone.isolation_matrix()` runs the
//! whole catalogue under every level. Argument checks, calls and result rows only.
//!
//! The sessions are capstone background workers running as the caller (`session`,
//! `slots`, `protocol`, `session_worker`); the calling backend drives them one statement
//! at a time (`driver`) and is never one of them. A run (`runs`) checks, sweeps, runs
//! and cleans up; the lab's cases are in `shop`, the catalogue's in `catalogue` on
//! scratch tables (`scratch`); rows and evidence payloads in `rows`, SPI reads in `read`.

// pgrx needs each result row spelled out as a name!() tuple in the signature
#![allow(clippy::type_complexity)]

pub mod catalogue;
pub mod driver;
pub mod fixes;
pub mod protocol;
mod read;
pub mod rows;
pub mod runs;
pub mod scratch;
pub mod session;
mod session_worker;
pub mod shop;
mod slots;
pub mod verdict;

use crate::infra::error::{required, CapstoneError, OrRaise};
use pgrx::prelude::*;
use serde_json::json;
use shop::{ANOMALIES, MODES};

/// Every name anomaly_demo accepts: the lab's business cases, then the catalogue.
fn all_anomaly_names() -> Vec<&'static str> {
    let mut v = ANOMALIES.to_vec();
    v.extend(catalogue::names());
    v
}

/// A catalogue case's mode: an isolation level, or a fix run at read committed. Anything
/// else, or a fix that does not reach this case's conflict, is 22023 naming what applies.
fn catalogue_mode(case: &catalogue::Case, mode: &str) -> (&'static str, Option<fixes::Fix>) {
    let m = mode.trim();
    if let Some(level) = catalogue::LEVELS.iter().find(|l| l.eq_ignore_ascii_case(m)) {
        return (level, None);
    }
    let runnable = fixes::applicable(case);
    if let Some(fix) = fixes::parse(m).filter(|f| runnable.contains(f)) {
        return ("read committed", Some(fix));
    }
    let mut valid: Vec<&str> = catalogue::LEVELS.to_vec();
    valid.extend(runnable.iter().map(|f| f.name()));
    let what = if fixes::parse(m).is_some() || MODES.iter().any(|x| x.eq_ignore_ascii_case(m)) {
        format!("mode \"{mode}\" does not apply to {}", case.name)
    } else {
        format!("unknown mode \"{mode}\"")
    };
    CapstoneError::InvalidParameter(what).raise_with(
        format!("fix options for {}: {}", case.name, fixes::options(case)),
        format!("valid values for {}: {}", case.name, valid.join(", ")),
    )
}

/// Reproduce a concurrency anomaly with two real sessions in a fixed interleaving,
/// under one isolation level or locking strategy, and say whether it happened.
#[pg_extern(volatile, parallel_unsafe)]
fn anomaly_demo(
    anomaly: Option<String>,
    mode: Option<String>,
) -> TableIterator<
    'static,
    (
        name!(step, i32),
        name!(session, String),
        name!(statement, String),
        name!(result, Option<String>),
        name!(sqlstate, Option<String>),
        name!(wait_ms, f64),
    ),
> {
    let anomaly = required(anomaly, "anomaly");
    let mode = required(mode, "mode");
    let (anomaly, mode, (rows, roles)) = match catalogue::find(&anomaly) {
        Some(case) => {
            let (level, fix) = catalogue_mode(case, &mode);
            let shown = fix.map(fixes::Fix::name).unwrap_or(level);
            (
                case.name,
                shown,
                runs::demo_case(case, level, fix).or_raise(),
            )
        }
        None => {
            crate::infra::error::check_choice("anomaly", &anomaly, &all_anomaly_names());
            let anomaly = crate::infra::error::check_choice("anomaly", &anomaly, ANOMALIES);
            let mode = crate::infra::error::check_choice("mode", &mode, MODES);
            (anomaly, mode, runs::demo(anomaly, mode).or_raise())
        }
    };
    let payload = rows::demo_payload(anomaly, mode, &rows, &roles);
    crate::infra::evidence::store(
        crate::infra::evidence::Gate::Isolation,
        Some(&format!("{anomaly} under {mode}")),
        None,
        json!({}),
        payload,
    );
    TableIterator::new(rows.into_iter().map(|r| {
        (
            r.step,
            r.session,
            r.statement,
            r.result,
            r.sqlstate,
            rows::wait_ms(r.wait_ms),
        )
    }))
}

/// Every catalogue anomaly under every isolation level, each run on real concurrent
/// sessions, as one table: observed, or prevented and how.
#[pg_extern(volatile, parallel_unsafe)]
fn isolation_matrix() -> TableIterator<
    'static,
    (
        name!(anomaly, String),
        name!(alias, String),
        name!(read_committed, String),
        name!(repeatable_read, String),
        name!(serializable, String),
        name!(fix_options, String),
    ),
> {
    let (m, roles) = runs::matrix().or_raise();
    let payload = rows::matrix_payload(&m, &roles);
    crate::infra::evidence::store(
        crate::infra::evidence::Gate::Isolation,
        Some("isolation matrix"),
        None,
        json!({}),
        payload,
    );
    TableIterator::new(m.into_iter().map(move |(c, vs)| {
        let mut cs = rows::cells(&vs).into_iter();
        (
            c.name.to_string(),
            c.alias.to_string(),
            cs.next().unwrap_or_default(),
            cs.next().unwrap_or_default(),
            cs.next().unwrap_or_default(),
            fixes::options(c),
        )
    }))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// Demos run one at a time per database and refuse with 55P03 while another runs; the
    /// pg_tests run on parallel threads in one database, so each demo test first waits for
    /// the demo lock (its own transaction then holds it, and the demo's try succeeds).
    fn wait_for_other_demos() -> spi::Result<()> {
        Spi::run_with_args(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[super::read::DEMO_LOCK_KEY.into()],
        )
    }

    fn observed_at(level: &str) -> spi::Result<Option<String>> {
        Spi::get_one::<String>(&format!(
            "SELECT string_agg(anomaly, ' ' ORDER BY anomaly) FROM iso_m WHERE {level} = 'observed'"
        ))
    }

    #[pg_test]
    fn the_matrix_is_what_each_level_promises() -> spi::Result<()> {
        wait_for_other_demos()?;
        Spi::run("CREATE TEMP TABLE iso_m AS SELECT * FROM capstone.isolation_matrix()")?;
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM iso_m")?, Some(14));
        assert_eq!(
            observed_at("read_committed")?.as_deref(),
            Some("g2 g2_item g_single g_single_write p4 pmp pmp_write read_only read_only_deferrable")
        );
        assert_eq!(
            observed_at("repeatable_read")?.as_deref(),
            Some("g2 g2_item read_only read_only_deferrable")
        );
        assert_eq!(observed_at("serializable")?, None);
        // every prevented cell says how, and every anomaly names its fix options
        assert_eq!(
            Spi::get_one::<i64>(
                "SELECT count(*) FROM iso_m, LATERAL (VALUES (read_committed), (repeatable_read), (serializable)) c(cell)
                  WHERE cell <> 'observed' AND cell NOT LIKE 'prevented (%)'"
            )?,
            Some(0)
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM iso_m WHERE fix_options = ''")?,
            Some(0)
        );
        // the matrix is on record as the caller's
        assert_eq!(
            Spi::get_one::<i64>(
                "SELECT jsonb_array_length(payload->'matrix') FROM capstone.evidence
                  WHERE label = 'isolation matrix' AND captured_by = current_user ORDER BY id DESC LIMIT 1"
            )?,
            Some(14)
        );
        Ok(())
    }

    #[pg_test]
    fn a_fix_prevents_what_read_committed_lets_through() -> spi::Result<()> {
        wait_for_other_demos()?;
        let verdict = |case: &str, mode: &str| {
            Spi::get_one_with_args::<String>(
                "SELECT result FROM capstone.anomaly_demo($1, $2) WHERE session = 'check'",
                &[case.into(), mode.into()],
            )
        };
        let rc = verdict("p4", "read committed")?.unwrap_or_default();
        assert!(rc.starts_with("ANOMALY p4"), "{rc}");
        for (case, mode, how) in [
            ("p4", "atomic_update", "blocked: B waited for A"),
            ("p4", "select for update", "blocked: B waited for A"),
            ("g2_item", "advisory_lock", "blocked: B waited for A"),
            ("g2", "constraint", "23505"),
        ] {
            let v = verdict(case, mode)?.unwrap_or_default();
            assert!(
                v.starts_with("prevented (") && v.contains(how),
                "{case} {mode}: {v}"
            );
        }
        Ok(())
    }

    #[pg_test(error = "mode \"for_update\" does not apply to g2")]
    fn a_row_lock_is_refused_for_a_predicate_conflict() {
        let _ = Spi::run("SELECT * FROM capstone.anomaly_demo('g2', 'for_update')");
    }
}
