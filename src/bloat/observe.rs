//! What the bloat scenario reads while it runs: sizes, the holder's row in
//! pg_stat_activity, whether xmin_holders() names it, dead tuples, bloat_report's row,
//! and a started scenario's record. Reads only; the steps are in `scenario`.

use super::workers::HOLDER_TYPE;
use crate::infra::error::{CapstoneError, Result};
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::Value;
use std::time::Duration;

/// An SPI failure in the scenario, as 55000 naming the step.
pub fn fail(what: &str) -> impl Fn(pgrx::spi::Error) -> CapstoneError + '_ {
    move |e| CapstoneError::PrerequisiteState(format!("bloat scenario: {what} failed: {e}"))
}

/// Run one statement of the scenario.
pub fn run(sql: &str, what: &str) -> Result<()> {
    Spi::run(sql).map_err(|e| fail(what)(e).into())
}

/// One bigint (0 when NULL or no row).
pub fn one_i64(sql: &str, args: &[pgrx::datum::DatumWithOid], what: &str) -> Result<i64> {
    Ok(Spi::get_one_with_args::<i64>(sql, args)
        .map_err(fail(what))?
        .unwrap_or(0))
}

/// pg_relation_size and pg_total_relation_size.
pub fn sizes(oid: pg_sys::Oid) -> Result<(i64, i64)> {
    Spi::get_two_with_args::<i64, i64>(
        "SELECT pg_catalog.pg_relation_size($1), pg_catalog.pg_total_relation_size($1)",
        &[oid.into()],
    )
    .map(|(a, b)| (a.unwrap_or(0), b.unwrap_or(0)))
    .map_err(|e| fail("measuring sizes")(e).into())
}

/// Sleep on the latch for a few milliseconds, honouring cancel.
pub fn nap() {
    crate::infra::worker::wait_latch(10);
    check_for_interrupts!();
}

/// The holder's row in pg_stat_activity, read fresh: (xmin age, seconds its transaction is open).
pub fn holder_state(pid: i32) -> Option<(i64, f64)> {
    unsafe { pg_sys::pgstat_clear_snapshot() };
    Spi::get_two_with_args::<i64, f64>(
        "SELECT pg_catalog.age(backend_xmin)::bigint,
                extract(epoch FROM pg_catalog.clock_timestamp() - xact_start)::float8
           FROM pg_catalog.pg_stat_activity
          WHERE pid = $1 AND backend_type = $2 AND backend_xmin IS NOT NULL",
        &[pid.into(), HOLDER_TYPE.into()],
    )
    .ok()
    .and_then(|(a, s)| Some((a?, s.unwrap_or(0.0))))
}

/// Whether xmin_holders() names backend `pid`.
pub fn holder_named(pid: i32) -> Result<bool> {
    Ok(one_i64(
        "SELECT count(*) FROM capstone.xmin_holders() WHERE pid = $1",
        &[pid.into()],
        "xmin_holders",
    )? > 0)
}

/// capstone.worker_timeout.
pub fn timeout() -> Duration {
    Duration::from_millis(crate::infra::gucs::worker_timeout_ms().max(0) as u64)
}

/// A started scenario, as its start capture recorded it.
pub struct Scenario {
    pub id: i64,
    pub relid: pg_sys::Oid,
    pub rel: String,
    pub holder_pid: i32,
    pub churn_xid: Option<String>,
}

/// The scenario `id` (the caller's latest when None), from its start evidence.
pub fn load_scenario(id: Option<i64>) -> Result<Scenario> {
    let id = match id {
        Some(id) => id,
        None => match Spi::get_one::<i64>(
            "SELECT id FROM capstone.evidence
              WHERE gate = 'bloat' AND label LIKE 'bloat scenario: start%' AND captured_by = current_user
              ORDER BY id DESC LIMIT 1",
        )
        .ok()
        .flatten()
        {
            Some(id) => id,
            None => {
                return Err(
                    CapstoneError::UndefinedObject("no bloat scenario has been started".into())
                        .with_hint("start one with SELECT * FROM capstone.bloat_scenario();"),
                )
            }
        },
    };
    let c = crate::infra::evidence::load(id);
    let p = &c.payload;
    let holder_pid = p.get("holder_pid").and_then(Value::as_i64);
    let relid = p.get("relid").and_then(Value::as_u64);
    // a transaction id is digits only (PostgreSQL 15 would read anything else as 0)
    let xid_ok = match p.get("churn_xid") {
        None | Some(Value::Null) => true,
        Some(Value::String(x)) => !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()),
        Some(_) => false,
    };
    let (Some(holder_pid), Some(relid), "bloat", true) =
        (holder_pid, relid, c.gate.as_str(), xid_ok)
    else {
        return Err(CapstoneError::WrongObjectType(format!(
            "evidence row {id} is not a bloat scenario start"
        ))
        .with_hint("pass the scenario_id that capstone.bloat_scenario() returned"));
    };
    Ok(Scenario {
        id,
        relid: pg_sys::Oid::from(relid as u32),
        rel: p
            .get("rel")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        holder_pid: holder_pid as i32,
        churn_xid: p
            .get("churn_xid")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// pg_stat_get_dead_tuples, read fresh.
pub fn dead_tuples(oid: pg_sys::Oid) -> Result<i64> {
    unsafe { pg_sys::pgstat_clear_snapshot() };
    one_i64(
        "SELECT coalesce(pg_catalog.pg_stat_get_dead_tuples($1), 0)",
        &[oid.into()],
        "pg_stat_get_dead_tuples",
    )
}

/// bloat_report's removable and est_bloat_pct for the table.
pub fn report_row(oid: pg_sys::Oid) -> Result<(Option<bool>, f64)> {
    Spi::get_two_with_args::<bool, f64>(
        "SELECT removable, est_bloat_pct FROM capstone.bloat_report(rel => $1::regclass) WHERE relid = $1::regclass",
        &[oid.into()],
    )
    .map(|(r, p)| (r, p.unwrap_or(0.0)))
    .map_err(|e| fail("bloat_report")(e).into())
}
