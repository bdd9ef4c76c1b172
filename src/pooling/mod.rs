//! Pooling gate: how big a PgBouncer pool should be, and what transaction pooling
//! breaks for this workload.
//!
//! - `capstone.pool_size()` / `pool_size_json()` sample the server for a window and
//!   write the sizing out term by term: a core-bound estimate, Little's law
//!   (L = λ·W) measured two ways, a memory ceiling, and the recommended
//!   `default_pool_size`, `max_client_conn` and `max_connections`.
//! - `capstone.pooling_audit()` reads pg_stat_statements and the catalog for
//!   session state that does not survive transaction pooling.
//! - `capstone.pgbouncer_stats()` reads SHOW POOLS / SHOW STATS from a PgBouncer
//!   admin console through dblink.
//!
//! The arithmetic lives in `math.rs` and the statement classifier in `audit.rs`,
//! The rooms: `server` reads settings, counters and the host; `sizing` composes the
//! measurement with the arithmetic of `math`; `render` writes the terms out;
//! `audit` classifies statement texts and `findings` reads what it classifies;
//! `pgbouncer` reads the admin console. This module is the SQL surface only:
//! argument checks, calls, result rows.

// pgrx needs each result row spelled out as a name!() tuple in the signature
#![allow(clippy::type_complexity)]

pub mod audit;
pub mod findings;
pub mod math;
pub mod pgbouncer;
pub mod render;
pub mod server;
pub mod sizing;

use crate::infra::error::{check_range, required, CapstoneError, OrRaise};
use crate::infra::format::round;
use pgrx::prelude::*;
use pgrx::JsonB;
use render::Term;
use serde_json::json;
use sizing::Params;
use std::time::Duration;

fn check_finite(name: &str, v: f64, lo: f64, hi: f64) -> f64 {
    if !v.is_finite() {
        CapstoneError::InvalidParameter(format!("{name} must be a finite number (got {v})"))
            .raise_hint(format!("pass a value between {lo} and {hi}"));
    }
    check_range(name, v, lo, hi)
}

fn validate(
    sample: Option<Interval>,
    cores: Option<i32>,
    headroom: Option<f64>,
    core_factor: Option<f64>,
    nodes_per_query: Option<i32>,
    clients: Option<i32>,
    require_statements: Option<bool>,
) -> Params {
    let sample = required(sample, "sample");
    let micros = sample.as_micros();
    if micros <= 0 || micros > 3_600_000_000 {
        CapstoneError::InvalidParameter(format!(
            "sample must be greater than 0 and at most 1 hour (got {} s)",
            micros as f64 / 1e6
        ))
        .raise_hint("pass an interval such as '10 s': the window over which λ and L are measured");
    }
    let cores = cores.map(|c| check_range("cores", c, 1, 4096) as u32);
    let headroom = check_finite("headroom", headroom.unwrap_or(1.5), 1.0, 10.0);
    let core_factor = check_finite("core_factor", core_factor.unwrap_or(2.0), 0.5, 16.0);
    let nodes = check_range("nodes_per_query", nodes_per_query.unwrap_or(2), 0, 64) as u32;
    let clients = clients.map(|c| check_range("clients", c, 1, 10_000_000) as u32);
    Params {
        window: Duration::from_micros(micros as u64),
        cores,
        headroom,
        core_factor,
        nodes,
        clients,
        require_statements: require_statements.unwrap_or(false),
    }
}

/// A term's value as a psql user reads it: milliseconds to 3 decimals (a statement
/// takes a few µs), every other count, rate, ratio or size to 2. The evidence keeps the
/// exact values.
fn shown(t: &Term) -> Option<f64> {
    let digits = if t.unit == "ms" { 3 } else { 2 };
    t.value.map(|v| round(v, digits))
}

/// Pool sizing from concurrency math, one row per term. Samples the server for
/// `sample` (default 10 s) before answering.
#[pg_extern(volatile, parallel_unsafe)]
fn pool_size(
    sample: default!(Option<Interval>, "'10 s'"),
    cores: default!(Option<i32>, "NULL"),
    headroom: default!(Option<f64>, 1.5),
    core_factor: default!(Option<f64>, 2.0),
    nodes_per_query: default!(Option<i32>, 2),
    clients: default!(Option<i32>, "NULL"),
    require_statements: default!(Option<bool>, false),
) -> TableIterator<
    'static,
    (
        name!(section, String),
        name!(term, String),
        name!(value, Option<f64>),
        name!(unit, String),
        name!(source, String),
        name!(explanation, String),
    ),
> {
    let p = validate(
        sample,
        cores,
        headroom,
        core_factor,
        nodes_per_query,
        clients,
        require_statements,
    );
    let s = sizing::compute(&p).or_raise();
    let mut rows: Vec<_> = s
        .terms
        .into_iter()
        .map(|t| {
            (
                t.section.to_string(),
                t.term.to_string(),
                shown(&t),
                t.unit.to_string(),
                t.source,
                t.explanation,
            )
        })
        .collect();
    rows.push((
        "recommendation".into(),
        "evidence_id".into(),
        Some(s.evidence_id as f64),
        "id".into(),
        "capstone.evidence".into(),
        "every term above, the samples and the settings, stored with gate 'pooling'".into(),
    ));
    TableIterator::new(rows)
}

/// The same sizing as one jsonb document: {recommendation, terms, evidence_id}.
#[pg_extern(volatile, parallel_unsafe)]
fn pool_size_json(
    sample: default!(Option<Interval>, "'10 s'"),
    cores: default!(Option<i32>, "NULL"),
    headroom: default!(Option<f64>, 1.5),
    core_factor: default!(Option<f64>, 2.0),
    nodes_per_query: default!(Option<i32>, 2),
    clients: default!(Option<i32>, "NULL"),
    require_statements: default!(Option<bool>, false),
) -> JsonB {
    let p = validate(
        sample,
        cores,
        headroom,
        core_factor,
        nodes_per_query,
        clients,
        require_statements,
    );
    let s = sizing::compute(&p).or_raise();
    JsonB(json!({
        "recommendation": render::plan_json(&s.plan),
        "terms": s
            .terms
            .iter()
            .map(|t| render::term_json(&Term {
                value: shown(t),
                ..t.clone()
            }))
            .collect::<Vec<_>>(),
        "evidence_id": s.evidence_id,
    }))
}

/// What transaction pooling breaks for this workload: one row per finding.
#[pg_extern(volatile, parallel_unsafe)]
fn pooling_audit(
    all_databases: default!(Option<bool>, false),
) -> TableIterator<
    'static,
    (
        name!(issue, String),
        name!(risk, String),
        name!(evidence, String),
        name!(query, Option<String>),
        name!(calls, Option<i64>),
        name!(fix, String),
    ),
> {
    let all = all_databases.unwrap_or(false);
    let rows = findings::audit(all).or_raise();
    let payload = findings::payload(&rows, all);
    crate::infra::evidence::store(
        crate::infra::evidence::Gate::Pooling,
        Some("pooling_audit"),
        None,
        json!({}),
        payload,
    );
    TableIterator::new(
        rows.into_iter()
            .map(|r| (r.issue, r.risk, r.evidence, r.query, r.calls, r.fix)),
    )
}

// ---------------------------------------------------------------- pgbouncer_stats

/// SHOW POOLS and SHOW STATS of a PgBouncer admin console, one row per metric.
#[pg_extern(volatile, parallel_unsafe)]
fn pgbouncer_stats(
    conninfo: Option<String>,
) -> TableIterator<
    'static,
    (
        name!(source, String),
        name!(database, Option<String>),
        name!(username, Option<String>),
        name!(metric, String),
        name!(value, Option<String>),
    ),
> {
    let conninfo = required(conninfo, "conninfo");
    let out = match pgbouncer::stats(&conninfo) {
        Ok(rows) => rows,
        Err(e) => e.raise(),
    };
    TableIterator::new(out)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn quiet_server_falls_back_to_the_core_bound() {
        // Other backends of the test cluster flush their statistics late (up to 10 s
        // after going idle), so a short sample is usually, not always, quiet: judge the
        // outcome by the count the function itself measured.
        let (pool, bound, xacts, says) = Spi::connect(|c| {
            let t = c.select(
                "SELECT max(value) FILTER (WHERE term = 'default_pool_size'),
                        max(value) FILTER (WHERE term = 'core_bound'),
                        max(value) FILTER (WHERE term = 'transactions'),
                        max(explanation) FILTER (WHERE term = 'transactions')
                   FROM capstone.pool_size(sample => '200 ms', cores => 3)",
                Some(1),
                &[],
            )?;
            let r = t.first();
            Ok::<_, pgrx::spi::Error>((
                r.get::<f64>(1)?,
                r.get::<f64>(2)?,
                r.get::<f64>(3)?,
                r.get::<String>(4)?,
            ))
        })
        .unwrap();
        // 3 cores × 2 = 6
        assert_eq!(bound, Some(6.0));
        let says = says.unwrap_or_default();
        if xacts.unwrap_or(0.0) < crate::pooling::math::MIN_TRANSACTIONS {
            assert_eq!(
                pool,
                Some(6.0),
                "too small a sample falls back to the core bound"
            );
            assert!(says.starts_with("the sample is too small"), "{says}");
        } else {
            assert!(says.contains("λ is measured"), "{says}");
        }
    }

    #[pg_test]
    fn json_variant_and_evidence() {
        let (basis, id) = Spi::get_two::<String, i64>(
            "SELECT j -> 'recommendation' ->> 'basis', (j ->> 'evidence_id')::bigint
               FROM capstone.pool_size_json(sample => '100 ms', cores => 2) j",
        )
        .unwrap();
        assert_eq!(basis.as_deref(), Some("quiet_fallback"));
        let label = Spi::get_one_with_args::<String>(
            "SELECT label FROM capstone.evidence WHERE gate = 'pooling' AND id = $1",
            &[id.unwrap().into()],
        )
        .unwrap();
        assert_eq!(label.as_deref(), Some("pool_size"));
    }

    #[pg_test]
    fn every_section_is_written_out() {
        let sections = Spi::get_one::<String>(
            "SELECT string_agg(DISTINCT section, ',' ORDER BY section)
               FROM capstone.pool_size(sample => '50 ms')",
        )
        .unwrap();
        assert_eq!(
            sections.as_deref(),
            Some("cores,littles_law,memory,recommendation")
        );
    }

    #[pg_test(error = "sample must be greater than 0 and at most 1 hour (got 0 s)")]
    fn zero_sample() {
        Spi::run("SELECT * FROM capstone.pool_size(sample => '0 s')").unwrap();
    }

    #[pg_test(error = "sample must be greater than 0 and at most 1 hour (got -1 s)")]
    fn negative_sample() {
        Spi::run("SELECT * FROM capstone.pool_size(sample => '-1 s')").unwrap();
    }

    #[pg_test(error = "cores must be between 1 and 4096 (got 0)")]
    fn zero_cores() {
        Spi::run("SELECT * FROM capstone.pool_size(sample => '1 s', cores => 0)").unwrap();
    }

    #[pg_test(error = "cores must be between 1 and 4096 (got -4)")]
    fn negative_cores() {
        Spi::run("SELECT capstone.pool_size_json(cores => -4)").unwrap();
    }

    #[pg_test(error = "headroom must be between 1 and 10 (got 0.5)")]
    fn headroom_below_one() {
        Spi::run("SELECT * FROM capstone.pool_size(sample => '1 s', headroom => 0.5)").unwrap();
    }

    #[pg_test(error = "sample must not be NULL")]
    fn null_sample() {
        Spi::run("SELECT * FROM capstone.pool_size(sample => NULL)").unwrap();
    }

    #[pg_test]
    fn audit_flags_session_state() {
        Spi::run("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").unwrap();
        Spi::run("SELECT pg_stat_statements_reset()").unwrap();
        // SPI statements are nested: pg_stat_statements records them with track = 'all'
        Spi::run("SET pg_stat_statements.track = 'all'").unwrap();
        Spi::run("SET search_path = public, capstone").unwrap();
        Spi::run("SET LOCAL work_mem = '8MB'").unwrap();
        Spi::run("SELECT pg_advisory_lock(4242)").unwrap();
        Spi::run("SELECT pg_advisory_xact_lock(4243)").unwrap();
        Spi::run("SELECT pg_advisory_unlock(4242)").unwrap();
        Spi::run("CREATE TEMP TABLE audit_tmp (a int)").unwrap();
        let issues = Spi::get_one::<String>(
            "SELECT string_agg(DISTINCT issue, ',' ORDER BY issue) FROM capstone.pooling_audit()",
        )
        .unwrap()
        .unwrap_or_default();
        assert!(issues.contains("session_advisory_lock"), "{issues}");
        assert!(issues.contains("session_set"), "{issues}");
        assert!(issues.contains("temp_table"), "{issues}");
        assert!(issues.contains("protocol_prepare"), "{issues}");
        // SET LOCAL and the _xact_ lock are fine in transaction mode
        let local = Spi::get_one::<i64>(
            "SELECT count(*) FROM capstone.pooling_audit()
              WHERE query ILIKE '%set local%' OR query ILIKE '%xact_lock%'",
        )
        .unwrap();
        assert_eq!(local, Some(0));
    }

    #[pg_test(error = "capstone.pgbouncer_stats needs the dblink extension")]
    fn pgbouncer_stats_without_dblink() {
        Spi::run(
            "SELECT * FROM capstone.pgbouncer_stats('host=127.0.0.1 port=1 dbname=pgbouncer')",
        )
        .unwrap();
    }

    #[pg_test(error = "conninfo must not be NULL")]
    fn pgbouncer_stats_null_conninfo() {
        Spi::run("SELECT * FROM capstone.pgbouncer_stats(NULL)").unwrap();
    }

    #[pg_test]
    fn pgbouncer_stats_rejects_a_postgres_server() {
        // The PyPI PostgreSQL 17/18 trees ship a dblink.so whose RUNPATH misses the
        // tree's own libpq, so it only loads with LD_LIBRARY_PATH set for the server.
        let created = crate::infra::subxact::run(crate::infra::subxact::Outcome::Commit, || {
            Spi::run("CREATE EXTENSION IF NOT EXISTS dblink")
        });
        if let Err(e) = created {
            let (_, msg) = crate::infra::subxact::describe(&e);
            assert!(msg.contains("could not load library"), "{msg}");
            pgrx::warning!("dblink cannot be loaded on this server, test skipped: {msg}");
            return;
        }
        let port = Spi::get_one::<String>("SHOW port").unwrap().unwrap();
        let sock = Spi::get_one::<String>(
            "SELECT split_part(current_setting('unix_socket_directories'), ',', 1)",
        )
        .unwrap()
        .unwrap();
        let conninfo = format!(
            "host={sock} port={port} dbname=pgrx_tests user={}",
            whoami()
        );
        let r = crate::infra::subxact::run(crate::infra::subxact::Outcome::Rollback, || {
            Spi::run_with_args(
                "SELECT * FROM capstone.pgbouncer_stats($1)",
                &[conninfo.as_str().into()],
            )
        });
        let e = r.expect_err("a PostgreSQL server is not a PgBouncer console");
        let (state, msg) = crate::infra::subxact::describe(&e);
        assert_eq!(state, "22023", "{msg}");
        assert!(
            msg.starts_with("conninfo does not lead to a PgBouncer admin console"),
            "{msg}"
        );
    }

    fn whoami() -> String {
        Spi::get_one::<String>("SELECT current_user::text")
            .unwrap()
            .unwrap_or_default()
    }
}
