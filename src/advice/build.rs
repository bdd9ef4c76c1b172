//! index_prove with CREATE INDEX CONCURRENTLY. No function may run it (a function always
//! runs inside a transaction block), and the build waits for every transaction that
//! holds a snapshot, the caller's included, so it cannot run while the caller waits.
//! The proof therefore comes in two calls:
//!
//! 1. `index_prove(advice_id)` estimates and measures each statement before the build,
//!    stores that half (`index_prove_started`) and starts a background worker, as the
//!    caller, that waits for the caller's transaction to commit, runs CREATE INDEX
//!    CONCURRENTLY at top level (as a client's simple query does), ANALYZEs the table and
//!    stores how the build went (`index_prove_build`: its time or its error).
//! 2. `index_prove(advice_id)` again: while the worker runs it says so (55000, with the
//!    build's phase from pg_stat_progress_create_index); once the index is valid it
//!    measures each statement after and stores the proof (`index_prove`); a failed build
//!    is reported with its error and the invalid index it left is named for dropping.

use super::prove::{self, Before, Proof, Target};
use crate::infra::error::{CapstoneError, Result};
use crate::infra::evidence::{self, Gate};
use crate::infra::worker::{self, WorkerIdentity};
use pgrx::prelude::*;
use serde_json::{json, Value};
use std::time::Instant;

const STARTED: &str = "index_prove_started";
const BUILT: &str = "index_prove_build";
const WORKER_TYPE: &str = "capstone index build";

/// A started proof of the caller's that no `index_prove` row has finished yet.
struct Pending {
    id: i64,
    token: i64,
    pid: i32,
    runs: i32,
    before: Vec<Before>,
}

/// How the worker's build went, as it stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub ok: bool,
    pub build_ms: f64,
    pub error: Option<String>,
    pub evidence: i64,
}

/// What the second call should do, from what it finds.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// The index is built and valid: measure after.
    Measure,
    /// The worker is still at it.
    Wait,
    /// The build failed (its error), its worker ended without a result, or the index went
    /// before it was measured: the proof ends there, recorded as failed.
    Failed(String),
}

/// Decide from the build row, the index's state (None: no index; Some(valid)) and
/// whether the worker is alive.
pub fn next(built: Option<&Built>, index_valid: Option<bool>, alive: bool) -> Next {
    match (built, index_valid) {
        (Some(b), Some(true)) if b.ok => Next::Measure,
        (Some(b), _) if !b.ok => {
            Next::Failed(b.error.clone().unwrap_or_else(|| "unknown error".into()))
        }
        (Some(_), None) => Next::Failed("the index was dropped before it was measured".into()),
        (Some(_), Some(_)) => Next::Failed("the index was built but is not valid".into()),
        (None, _) if alive => Next::Wait,
        (None, _) => Next::Failed("its worker ended without a result (see the server log)".into()),
    }
}

fn rows(before: &[Before]) -> Vec<Proof> {
    before
        .iter()
        .map(|b| Proof {
            query: b.query.clone(),
            est_cost_before: b.est_cost_before,
            est_cost_after: b.est_cost_after,
            before_node: b.before_node.clone(),
            after_node: None,
            before_ms: b.before_ms,
            after_ms: None,
            verdict: "building",
        })
        .collect()
}

/// One evidence row of the caller's: its id and payload, from `sql` (selecting id, payload::text).
fn evidence_row(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
    what: &str,
) -> Result<Option<(i64, Value)>> {
    let row = crate::infra::spi::optional_row(sql, args, |r| {
        Ok((
            r.get::<i64>(1)?.unwrap_or_default(),
            r.get::<String>(2)?.unwrap_or_default(),
        ))
    })
    .map_err(crate::infra::spi::read_failed(what))?;
    Ok(row.map(|(id, text)| (id, serde_json::from_str(&text).unwrap_or(Value::Null))))
}

fn pending(t: &Target) -> Result<Option<Pending>> {
    let Some((id, p)) = evidence_row(
        "SELECT s.id, s.payload::text FROM capstone.evidence s
          WHERE s.gate = 'index' AND s.label = $2 AND s.captured_by::text = $3
            AND (s.payload->>'advice_id')::bigint = $1
            AND NOT EXISTS (SELECT 1 FROM capstone.evidence p
                             WHERE p.gate = 'index' AND p.label = 'index_prove'
                               AND (p.payload->>'started_id')::bigint = s.id)
          ORDER BY s.id DESC LIMIT 1",
        &[
            t.advice_id.into(),
            STARTED.into(),
            crate::infra::owner::caller().into(),
        ],
        "the started proofs",
    )?
    else {
        return Ok(None);
    };
    let before: Vec<Before> = p
        .get("statements")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    let int = |k: &str| p.get(k).and_then(Value::as_i64).unwrap_or_default();
    Ok(Some(Pending {
        id,
        token: int("token"),
        pid: int("worker_pid") as i32,
        runs: int("runs").clamp(1, 100) as i32,
        before,
    }))
}

fn built(p: &Pending) -> Result<Option<Built>> {
    let row = evidence_row(
        "SELECT id, payload::text FROM capstone.evidence
          WHERE gate = 'index' AND label = $2 AND captured_by::text = $3
            AND (payload->>'started_id')::bigint = $1
          ORDER BY id DESC LIMIT 1",
        &[
            p.id.into(),
            BUILT.into(),
            crate::infra::owner::caller().into(),
        ],
        "the build result",
    )?;
    Ok(row.map(|(id, v)| Built {
        ok: v.get("ok").and_then(Value::as_bool).unwrap_or(false),
        build_ms: v
            .get("build_ms")
            .and_then(Value::as_f64)
            .unwrap_or_default(),
        error: v.get("error").and_then(Value::as_str).map(String::from),
        evidence: id,
    }))
}

fn alive(pid: i32) -> bool {
    // a worker that has not connected yet has a PGPROC but no pg_stat_activity row
    if pid <= 0 || unsafe { pg_sys::BackendPidGetProc(pid) }.is_null() {
        return false;
    }
    // the backend status is read once per transaction: drop that copy, the worker may have
    // connected since this transaction first looked
    let _ = Spi::run("SELECT pg_catalog.pg_stat_clear_snapshot()");
    Spi::get_one_with_args::<String>(
        "SELECT backend_type FROM pg_catalog.pg_stat_activity WHERE pid = $1",
        &[pid.into()],
    )
    .ok()
    .flatten()
    .is_none_or(|t| t == WORKER_TYPE)
}

/// What the build is doing, from pg_stat_progress_create_index (empty when the
/// worker has not begun it, e.g. while it waits for the starting transaction).
fn progress(pid: i32) -> String {
    Spi::get_one_with_args::<String>(
        "SELECT format('phase: %s; blocks %s of %s; tuples %s of %s', phase, blocks_done, blocks_total,
                       tuples_done, tuples_total)
           FROM pg_catalog.pg_stat_progress_create_index WHERE pid = $1",
        &[pid.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| "the build has not begun: the worker waits for the transaction that started it to commit".into())
}

/// The concurrent proof: start it, or carry on with the caller's started one.
/// Returns the evidence row and the rows: `building` ones when it started the build.
pub fn prove_concurrently(t: Target, runs: i32, queries_given: bool) -> Result<(i64, Vec<Proof>)> {
    let Some(p) = pending(&t)? else {
        return start(t, runs);
    };
    let same = p.before.iter().map(|b| &b.query).eq(t.statements.iter());
    if queries_given && !same {
        return Err(CapstoneError::InvalidParameter(format!(
            "advice {} is already being proven (evidence row {}) on other statements",
            t.advice_id, p.id
        ))
        .with_hint(format!(
            "finish it first: call capstone.index_prove({}) without queries, or with the same ones",
            t.advice_id
        )));
    }
    let b = built(&p)?;
    let is_alive = alive(p.pid);
    match next(b.as_ref(), prove::index_state(&t), is_alive) {
        Next::Measure => {
            let b = b.unwrap_or(Built {
                ok: true,
                build_ms: 0.0,
                error: None,
                evidence: 0,
            });
            prove::after(
                &t,
                &p.before,
                p.runs,
                json!({"concurrently": true, "build_ms": b.build_ms, "started_id": p.id,
                       "build_evidence": b.evidence, "token": p.token}),
            )
        }
        Next::Wait => Err(CapstoneError::PrerequisiteState(format!(
            "{} is still being built concurrently",
            t.name
        ))
        .with(
            progress(p.pid),
            format!(
                "call capstone.index_prove({}) again when it is done; the build waits for every transaction older than its snapshots",
                t.advice_id
            ),
        )),
        Next::Failed(error) => failed(&t, &p, &error),
    }
}

/// End a started proof whose build failed: the rows say so, the evidence keeps the error,
/// and a warning names what to drop if the failure left an invalid index behind.
fn failed(t: &Target, p: &Pending, error: &str) -> Result<(i64, Vec<Proof>)> {
    let left = prove::index_state(t).is_some();
    let hint = if left {
        format!(
            "it left an invalid index behind: DROP INDEX CONCURRENTLY IF EXISTS {}; then call capstone.index_prove({}) again",
            pgrx::spi::quote_identifier(&t.name),
            t.advice_id
        )
    } else {
        format!(
            "fix the cause, then call capstone.index_prove({}) again to start a new proof",
            t.advice_id
        )
    };
    crate::infra::error::warning_hint(
        format!("the concurrent build of {} failed: {error}", t.name),
        hint,
    );
    let id = evidence::store(
        Gate::Index,
        Some("index_prove"),
        Some(&prove::build_sql(t, true)),
        json!({"advice_id": t.advice_id, "runs": p.runs, "min_speedup": prove::MIN_SPEEDUP}),
        json!({"advice_id": t.advice_id, "index": t.name, "concurrently": true, "started_id": p.id,
               "build_failed": error, "invalid_index_left": left, "statements": p.before}),
    );
    let mut out = rows(&p.before);
    for r in &mut out {
        r.verdict = "build failed";
    }
    Ok((id, out))
}

fn start(t: Target, runs: i32) -> Result<(i64, Vec<Proof>)> {
    prove::refuse_built(&t)?;
    let owns = Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.pg_has_role(c.relowner, 'USAGE') FROM pg_catalog.pg_class c WHERE c.oid = $1",
        &[t.relid.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !owns {
        return Err(CapstoneError::InsufficientPrivilege(format!(
            "must be the owner of {} to build an index on it",
            t.table
        ))
        .with_hint("ask the table's owner to run capstone.index_prove, or to grant you its role"));
    }
    let before = prove::before(&t, runs)?;
    let token: i64 = Spi::get_one("SELECT nextval('capstone.worker_token_seq')")
        .ok()
        .flatten()
        .ok_or_else(|| {
            CapstoneError::PrerequisiteState("capstone.worker_token_seq is missing".into())
                .with_hint("ALTER EXTENSION capstone UPDATE")
        })?;
    // the worker waits for this transaction: a commit shows it the started row, a rollback
    // (the transaction's status) tells it to give up
    let xid = unsafe { pg_sys::GetTopFullTransactionId() }.value as i64;
    let handle = worker::launch_with_args(
        "index build",
        "capstone_index_build_main",
        WorkerIdentity::of_caller(token),
        &[xid],
    );
    let pid = handle.wait_for_startup().unwrap_or(0);
    // started means forked: wait (briefly) for its PGPROC, which is how a later call tells a
    // live worker from one that has ended
    let since = Instant::now();
    while pid > 0
        && unsafe { pg_sys::BackendPidGetProc(pid) }.is_null()
        && since.elapsed() < std::time::Duration::from_secs(5)
    {
        worker::wait_latch(1);
        check_for_interrupts!();
    }
    let sql = prove::build_sql(&t, true);
    let id = evidence::store(
        Gate::Index,
        Some(STARTED),
        Some(&sql),
        json!({"advice_id": t.advice_id, "runs": runs, "min_speedup": prove::MIN_SPEEDUP}),
        json!({"advice_id": t.advice_id, "index": t.name, "relid": t.relid.to_u32(), "table": t.table,
               "build": sql, "token": token, "worker_pid": pid, "runs": runs, "statements": before}),
    );
    crate::infra::error::notice_hint(
        format!(
            "{} is being built with CREATE INDEX CONCURRENTLY by a background worker, which starts once this transaction commits",
            t.name
        ),
        format!(
            "call capstone.index_prove({}) again to measure each statement after the build",
            t.advice_id
        ),
    );
    Ok((id, rows(&before)))
}

/// The started row the worker `token` builds, once its transaction has committed.
fn load_started(token: i64) -> Option<(i64, Value)> {
    evidence_row(
        "SELECT id, payload::text FROM capstone.evidence
          WHERE gate = 'index' AND label = $2 AND (payload->>'token')::bigint = $1
            AND captured_by::text = current_user::text",
        &[token.into(), STARTED.into()],
        "the started proof",
    )
    .ok()
    .flatten()
}

fn transaction_status(xid: i64) -> Option<String> {
    Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.pg_xact_status($1::text::pg_catalog.xid8)::text",
        &[xid.to_string().into()],
    )
    .ok()
    .flatten()
}

/// The build worker: waits for the started row, builds the index concurrently as the
/// caller, ANALYZEs the table, and stores how it went.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn capstone_index_build_main(_arg: pg_sys::Datum) {
    let Some((ident, args)) = worker::attach_with_args() else {
        log!("capstone index build worker: malformed bgw_extra, exiting");
        return;
    };
    let Some(&xid) = args.first() else {
        log!("capstone index build worker: no transaction given, exiting");
        return;
    };
    worker::die_on_sigterm();
    let _ = worker::in_transaction(|| {
        Spi::run("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)")
    });
    let (started_id, payload) = loop {
        // the status first: once it is no longer in progress, the row read after it shows
        // whether the transaction committed it
        let status = worker::in_transaction(|| transaction_status(xid))
            .ok()
            .flatten();
        if let Ok(Some(found)) = worker::in_transaction(|| load_started(ident.token)) {
            break found;
        }
        if status.as_deref() != Some("in progress") {
            log!("capstone index build worker: the transaction that started it did not commit it, exiting");
            return;
        }
        worker::wait_latch(50);
        check_for_interrupts!();
    };
    let text = |k: &str| {
        payload
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let sql = text("build");
    let relid = payload.get("relid").and_then(Value::as_u64).unwrap_or(0) as u32;
    let began = Instant::now();
    let built = worker::run_top_level(&sql);
    let build_ms = began.elapsed().as_secs_f64() * 1000.0;
    let analyzed = match &built {
        Ok(()) => worker::in_transaction(|| {
            let analyze = Spi::get_one_with_args::<String>(
                "SELECT pg_catalog.format('ANALYZE %s', $1::pg_catalog.regclass)",
                &[pg_sys::Oid::from(relid).into()],
            )?
            .unwrap_or_default();
            Spi::run(&analyze)
        })
        .map_err(|(code, msg)| format!("{msg} ({code})"))
        .and_then(|r| r.map_err(|e| e.to_string())),
        Err(_) => Ok(()),
    };
    let error = built
        .as_ref()
        .err()
        .map(|(code, msg)| format!("{msg} ({code})"));
    let stored = worker::in_transaction(|| {
        evidence::store(
            Gate::Index,
            Some(BUILT),
            Some(&sql),
            json!({"started_id": started_id}),
            json!({"started_id": started_id, "advice_id": payload.get("advice_id"), "index": text("index"),
                   "ok": built.is_ok(), "build_ms": build_ms, "error": error,
                   "analyze_error": analyzed.err(), "worker_pid": unsafe { pg_sys::MyProcPid }}),
        )
    });
    if let Err((code, msg)) = stored {
        log!("capstone index build worker: could not store the build result: {msg} ({code})");
    }
}

#[cfg(test)]
mod unit {
    use super::{next, Built, Next};

    fn b(ok: bool) -> Built {
        Built {
            ok,
            build_ms: 1.0,
            error: (!ok).then(|| "relation \"x\" already exists (42P07)".into()),
            evidence: 7,
        }
    }

    #[test]
    fn measured_only_once_built_and_valid() {
        assert_eq!(next(Some(&b(true)), Some(true), false), Next::Measure);
        assert_eq!(next(Some(&b(true)), Some(true), true), Next::Measure);
        // the worker has not stored its result yet
        assert_eq!(next(None, Some(false), true), Next::Wait);
        assert_eq!(next(None, Some(true), true), Next::Wait);
        assert_eq!(next(None, None, true), Next::Wait);
    }

    #[test]
    fn a_failed_build_ends_the_proof_with_its_error() {
        let e = Next::Failed("relation \"x\" already exists (42P07)".into());
        assert_eq!(next(Some(&b(false)), None, false), e);
        assert_eq!(next(Some(&b(false)), Some(false), true), e);
        // the worker died (terminated, crash) without a word
        assert!(
            matches!(next(None, Some(false), false), Next::Failed(m) if m.contains("without a result"))
        );
        assert!(
            matches!(next(None, None, false), Next::Failed(m) if m.contains("without a result"))
        );
        // built, then dropped by hand before the second call
        assert!(
            matches!(next(Some(&b(true)), None, false), Next::Failed(m) if m.contains("dropped"))
        );
    }
}
