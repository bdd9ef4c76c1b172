//! The long-transaction scenario, reproducible from psql in two calls:
//!
//! 1. `start` (capstone.bloat_scenario) starts a snapshot holder (a background worker,
//!    so another session, never the caller) that opens a REPEATABLE READ transaction and
//!    waits; then it rewrites every row of a lab-style table. The call commits, the
//!    holder keeps holding.
//! 2. `finish` (capstone.bloat_scenario_finish) shows the holder in `xmin_holders()` and
//!    `removable = false` in `bloat_report()`, runs VACUUM (VERBOSE) while it holds (in a
//!    second worker, because VACUUM cannot run inside a function), ends the holder, runs
//!    VACUUM again and measures what came free.
//!
//! Two calls are the minimum: VACUUM can only remove tuples whose deleting transaction
//! committed before the caller's own snapshot, and a single call cannot commit its
//! updates and then take a newer snapshot. Every step's numbers are returned as rows and
//! stored in `capstone.evidence`. The SQL surface and argument checks are in `mod.rs`.

use super::observe::{
    dead_tuples, fail, holder_named, holder_state, load_scenario, nap, one_i64, report_row, sizes,
    timeout, Scenario,
};
use super::steps::{ScenarioResult, Steps};
use super::workers::HOLDER_TYPE;
use super::{catalog, estimate, fixture, reader::Opened};
use crate::infra::error::{CapstoneError, Result};
use crate::infra::format::round;
use crate::infra::subxact::{self, Outcome};
use crate::infra::worker::{self, WorkerIdentity};
use pgrx::bgworkers::BackgroundWorkerStatus;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Instant;

/// Start the scenario on `rel` (a scratch table when None): a snapshot holder in
/// another session, then `updates` rows rewritten. The holder keeps holding after this
/// call (at most `hold_ms`) until `finish` ends it; an error or cancel here ends it at once.
pub fn start(rel: Option<pg_sys::Oid>, updates: i32, hold_ms: i64) -> Result<(i64, Steps)> {
    let table = match rel {
        Some(oid) => fixture::check_table(oid)?,
        None => fixture::scratch_table(updates)?,
    };
    let mut steps = Steps::default();
    steps.add(
        "setup",
        "rows",
        // the scratch table's rows are known; a caller's table is not counted in full
        Some(if table.created {
            f64::from(updates)
        } else {
            one_i64(
                "SELECT greatest(reltuples, 0)::bigint FROM pg_catalog.pg_class WHERE oid = $1",
                &[table.oid.into()],
                "reading reltuples",
            )? as f64
        }),
        Some(format!(
            "{}{}",
            table.name,
            if table.created {
                " (scratch table, created now)"
            } else {
                " (pg_class.reltuples)"
            }
        )),
    );
    let (heap0, total0) = sizes(table.oid)?;
    steps.num("before", "heap_bytes", heap0 as f64);
    steps.num("before", "total_bytes", total0 as f64);

    let token = one_i64(
        "SELECT nextval('capstone.worker_token_seq')",
        &[],
        "nextval",
    )?;
    let handle = worker::launch_with_args(
        "bloat holder",
        "capstone_bloat_holder_main",
        WorkerIdentity::of_caller(token),
        &[hold_ms],
    );
    let slot = Mutex::new(Some(handle));
    // from here to the end, an error or a cancel ends the holder before it is re-raised
    let held = worker::terminate_on_error(&slot, || -> Result<i64> {
        let started = slot
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|h| h.wait_for_startup()));
        let pid = match started {
            Some(Ok(pid)) => pid,
            _ => {
                return Err(CapstoneError::InsufficientResources(
                    "the snapshot holder did not start".into(),
                )
                .with_hint("check max_worker_processes and the server log"))
            }
        };
        // the holder has its snapshot once its xmin shows
        let t0 = Instant::now();
        let (age, _) = loop {
            if let Some(s) = holder_state(pid) {
                break s;
            }
            let alive = slot
                .lock()
                .ok()
                .and_then(|g| g.as_ref().map(|h| h.pid()))
                .map(|p| matches!(p, Ok(_) | Err(BackgroundWorkerStatus::NotYetStarted)))
                .unwrap_or(false);
            if !alive {
                return Err(CapstoneError::PrerequisiteState(
                    "the snapshot holder exited before taking its snapshot".into(),
                )
                .with_hint("see the server log for the worker's own messages"));
            }
            if t0.elapsed() >= timeout() {
                return Err(CapstoneError::Timeout(
                    "the snapshot holder took no snapshot in time".into(),
                )
                .with_hint("capstone.worker_timeout sets the limit"));
            }
            nap();
        };
        steps.num("hold", "holder_pid", f64::from(pid));
        steps.num("hold", "holder_xmin_age_xids", age as f64);
        steps.flag("hold", "holder_named_in_xmin_holders", holder_named(pid)?);
        let t1 = Instant::now();
        let n = one_i64(
            &table.update_sql,
            &[i64::from(updates).into()],
            "the updates",
        )?;
        steps.num("churn", "rows_updated", n as f64);
        steps.num(
            "churn",
            "elapsed_ms",
            round(t1.elapsed().as_secs_f64() * 1000.0, 2),
        );
        let (heap1, total1) = sizes(table.oid)?;
        steps.num("after", "heap_bytes", heap1 as f64);
        steps.num("after", "total_bytes", total1 as f64);
        steps.num(
            "after",
            "heap_growth_pct",
            if heap0 > 0 {
                round(100.0 * (heap1 - heap0) as f64 / heap0 as f64, 1)
            } else {
                0.0
            },
        );
        let churn_xid =
            Spi::get_one::<String>("SELECT pg_catalog.pg_current_xact_id_if_assigned()::text")
                .ok()
                .flatten();
        let payload = json!({
            "relid": table.oid.to_u32(),
            "rel": table.name,
            "scratch": table.created,
            "holder_pid": pid,
            "holder_token": token,
            "hold_ms": hold_ms,
            "updates": updates,
            "churn_xid": churn_xid,
            "summary": format!(
                "a background worker (pid {pid}) holds a REPEATABLE READ snapshot while {} rows of {} are rewritten",
                updates, table.name
            ),
            "table": steps.json(),
        });
        Ok(crate::infra::evidence::store(
            crate::infra::evidence::Gate::Bloat,
            Some(&format!("bloat scenario: start (holder token {token})")),
            Some(&table.update_sql),
            json!({}),
            payload,
        ))
    });
    if held.is_err() {
        // as for a raised error: the holder must not outlive a failed start
        if let Some(h) = slot.lock().ok().and_then(|mut g| g.take()) {
            let _ = h.terminate();
        }
    }
    let id = held?;
    // the updates' counters should reach the shared statistics as soon as this commits
    unsafe { pg_sys::pgstat_force_next_flush() };
    Ok((id, steps))
}

/// Run VACUUM (VERBOSE) on the scenario's table in a worker and read back what it printed.
fn vacuum_in_worker(s: &Scenario, step: i64) -> Result<(estimate::VacuumReport, Vec<String>)> {
    let token = one_i64(
        "SELECT nextval('capstone.worker_token_seq')",
        &[],
        "nextval",
    )?;
    let handle = worker::launch_with_args(
        "bloat vacuum",
        "capstone_bloat_vacuum_main",
        WorkerIdentity::of_caller(token),
        &[i64::from(s.relid.to_u32()), s.id, step],
    );
    worker::wait_for_exit(handle, "bloat vacuum", timeout());
    let Some(payload) = Spi::get_one_with_args::<JsonB>(
        "SELECT payload FROM capstone.evidence
          WHERE gate = 'bloat' AND payload->>'token' = $1 AND captured_by = current_user
          ORDER BY id DESC LIMIT 1",
        &[token.to_string().into()],
    )
    .ok()
    .flatten()
    .map(|j| j.0) else {
        return Err(CapstoneError::PrerequisiteState(
            "the VACUUM worker exited without reporting".into(),
        )
        .with_hint("see the server log for its error; the caller must own the table"));
    };
    let lines: Vec<String> = payload
        .get("lines")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok((estimate::parse_vacuum_verbose(&lines), lines))
}

fn record_vacuum(steps: &mut Steps, step: &str, r: &estimate::VacuumReport, lines: &[String]) {
    let tuples = lines
        .iter()
        .flat_map(|l| l.lines())
        .find(|l| l.trim_start().starts_with("tuples:"))
        .map(|l| l.trim().to_string());
    steps.add(
        step,
        "dead_not_yet_removable",
        r.not_yet_removable.map(|n| n as f64),
        tuples,
    );
    steps.add(step, "removed", r.removed.map(|n| n as f64), None);
    steps.num(
        step,
        "verbose_lines_not_yet_removable",
        r.lines_not_yet_removable as f64,
    );
    steps.add(
        step,
        "removable_cutoff_age_xids",
        r.cutoff_age_xids.map(|n| n as f64),
        None,
    );
}

fn finish_steps(s: &Scenario) -> Result<(Steps, ScenarioResult)> {
    let mut steps = Steps::default();
    // 1. while the holder holds
    let (age, _) = holder_state(s.holder_pid).unwrap_or((0, 0.0));
    steps.num("held", "holder_xmin_age_xids", age as f64);
    let named_while_held = holder_named(s.holder_pid)?;
    steps.flag("held", "holder_named_in_xmin_holders", named_while_held);
    steps.num("held", "dead_tuples", dead_tuples(s.relid)? as f64);
    let (removable, _) = report_row(s.relid)?;
    steps.add(
        "held",
        "removable",
        removable.map(|r| if r { 1.0 } else { 0.0 }),
        Some("bloat_report(rel).removable".into()),
    );
    // 2. VACUUM cannot remove what the holder's snapshot may still see
    let (r, lines) = vacuum_in_worker(s, 1)?;
    record_vacuum(&mut steps, "vacuum while held", &r, &lines);
    let held_not_removable = r.not_yet_removable.unwrap_or(0);
    steps.num(
        "vacuum while held",
        "dead_tuples_after",
        dead_tuples(s.relid)? as f64,
    );
    // 3. end the holder
    let held_for = holder_state(s.holder_pid)
        .map(|(_, secs)| secs)
        .unwrap_or(0.0);
    let terminated = Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.pg_terminate_backend($1, 10000)",
        &[s.holder_pid.into()],
    )
    .map_err(fail("pg_terminate_backend"))?
    .unwrap_or(false);
    let t0 = Instant::now();
    while holder_state(s.holder_pid).is_some() && t0.elapsed() < timeout() {
        nap();
    }
    steps.flag("release", "holder_terminated", terminated);
    steps.num("release", "held_for_s", round(held_for, 2));
    steps.flag(
        "release",
        "holder_named_in_xmin_holders",
        holder_named(s.holder_pid)?,
    );
    // 4. now VACUUM removes them
    let (r, lines) = vacuum_in_worker(s, 2)?;
    record_vacuum(&mut steps, "vacuum after release", &r, &lines);
    let removed_after_release = r.removed.unwrap_or(0);
    // 5. what is left: free space, ready for reuse
    let dead = dead_tuples(s.relid)?;
    steps.num("after", "dead_tuples", dead as f64);
    let (heap, _) = sizes(s.relid)?;
    steps.num("after", "heap_bytes", heap as f64);
    let fsm: u64 = Opened::try_open(s.relid)
        .map(|o| (0..o.nblocks()).map(|b| o.recorded_free(b)).sum())
        .unwrap_or(0);
    steps.add(
        "after",
        "fsm_free_bytes",
        Some(fsm as f64),
        Some("free space map: what inserts and updates can reuse".into()),
    );
    let free_pct = catalog::pgstattuple_schema().and_then(|nsp| {
        Spi::get_one_with_args::<f64>(
            &format!(
                "SELECT free_percent FROM {}.pgstattuple($1::regclass)",
                pgrx::spi::quote_identifier(nsp)
            ),
            &[s.relid.into()],
        )
        .ok()
        .flatten()
        .map(|p| round(p, 1))
    });
    steps.add(
        "after",
        "pgstattuple_free_percent",
        free_pct,
        free_pct
            .is_none()
            .then(|| "pgstattuple is not installed".to_string()),
    );
    let (removable, pct) = report_row(s.relid)?;
    steps.num("after", "est_bloat_pct", pct);
    steps.add(
        "after",
        "removable",
        removable.map(|r| if r { 1.0 } else { 0.0 }),
        Some("bloat_report(rel).removable".into()),
    );
    let outcome = ScenarioResult {
        held_not_removable,
        removed_after_release,
        fsm_free: fsm,
        named_while_held,
        removable_after: removable == Some(true),
    };
    Ok((steps, outcome))
}

/// Finish scenario `scenario_id` (the caller's latest when None): VACUUM while the
/// holder holds, end the holder, VACUUM again, and measure.
pub fn finish(scenario_id: Option<i64>) -> Result<(i64, Steps)> {
    let s = load_scenario(scenario_id)?;
    let done = format!("bloat scenario {}: finish", s.id);
    let finished = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM capstone.evidence
                         WHERE gate = 'bloat' AND label = $1 AND captured_by = current_user)",
        &[done.as_str().into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if finished {
        return Err(CapstoneError::PrerequisiteState(format!(
            "bloat scenario {} is already finished",
            s.id
        ))
        .with_hint("start a new one with SELECT * FROM capstone.bloat_scenario();"));
    }
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = $1)",
        &[s.relid.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !exists {
        return Err(CapstoneError::UndefinedTable(format!(
            "the scenario's table {} was dropped",
            s.rel
        ))
        .with_hint("start a new scenario"));
    }
    let committed = match &s.churn_xid {
        None => true,
        Some(x) => {
            Spi::get_one_with_args::<String>(
                "SELECT pg_catalog.pg_xact_status($1::xid8)",
                &[x.as_str().into()],
            )
            .ok()
            .flatten()
            .as_deref()
                == Some("committed")
        }
    };
    if !committed {
        return Err(CapstoneError::PrerequisiteState(format!(
            "the updates of bloat scenario {} have not committed",
            s.id
        ))
        .with_hint(
            "run bloat_scenario() and bloat_scenario_finish() as two statements, not inside one transaction block",
        ));
    }
    if holder_state(s.holder_pid).is_none() {
        return Err(CapstoneError::PrerequisiteState(format!(
            "the snapshot holder of bloat scenario {} (pid {}) has already ended",
            s.id, s.holder_pid
        ))
        .with_hint("its hold ran out or it was terminated; start again, e.g. capstone.bloat_scenario(hold => '15 min')"));
    }
    // any error or cancel from here on ends the holder before it is re-raised
    let ran = subxact::run(Outcome::Commit, || -> Result<Steps> {
        let (steps, outcome) = finish_steps(&s)?;
        crate::infra::evidence::store(
            crate::infra::evidence::Gate::Bloat,
            Some(&done),
            None,
            json!({}),
            json!({
                "scenario": s.id,
                "relid": s.relid.to_u32(),
                "rel": s.rel,
                "summary": outcome.verdict(),
                "verdict": outcome.verdict(),
                "proven": outcome.proven(),
                "table": steps.json(),
                "chart": outcome.chart(),
            }),
        );
        Ok(steps)
    });
    let end_holder = || {
        let _ = Spi::run_with_args(
            "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity
              WHERE pid = $1 AND backend_type = $2",
            &[s.holder_pid.into(), HOLDER_TYPE.into()],
        );
    };
    match ran {
        Ok(Ok(steps)) => Ok((s.id, steps)),
        Ok(Err(f)) => {
            end_holder();
            Err(f)
        }
        Err(e) => {
            end_holder();
            (*e).rethrow()
        }
    }
}
