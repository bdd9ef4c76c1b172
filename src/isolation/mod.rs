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
            if MODES.iter().any(|m| m.eq_ignore_ascii_case(mode.trim()))
                && !catalogue::LEVELS
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(mode.trim()))
            {
                CapstoneError::InvalidParameter(format!(
                    "mode \"{mode}\" applies to the lab cases lost_update and write_skew, not to {}",
                    case.name
                ))
                .raise_hint(format!(
                    "valid values for {}: {}",
                    case.name,
                    catalogue::LEVELS.join(", ")
                ));
            }
            let mode = crate::infra::error::check_choice("mode", &mode, catalogue::LEVELS);
            (case.name, mode, runs::demo_case(case, mode).or_raise())
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
        )
    }))
}
