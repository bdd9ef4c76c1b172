//! The bloat scenario's two background workers: the snapshot holder (a REPEATABLE READ
//! transaction that waits) and the vacuum worker (VACUUM (VERBOSE) at its own top level,
//! its INFO output captured into the evidence store). They never raise to a caller.

use super::estimate;
use crate::infra::worker;
use pgrx::bgworkers::BackgroundWorker;
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::json;
use std::ffi::{CStr, CString};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `pg_stat_activity.backend_type` of the snapshot holder.
pub const HOLDER_TYPE: &str = "capstone bloat holder";

/// The snapshot holder: a REPEATABLE READ transaction that takes its snapshot and
/// waits, ending on SIGTERM (pg_terminate_backend, or the caller's error path), on
/// postmaster death, or when its hold runs out. It never writes.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn capstone_bloat_holder_main(_arg: pg_sys::Datum) {
    let Some((ident, args)) = worker::attach_with_args() else {
        log!("capstone bloat holder: malformed bgw_extra, exiting");
        return;
    };
    let hold = Duration::from_millis(args.first().copied().unwrap_or(0).max(0) as u64);
    let started = Instant::now();
    unsafe {
        pg_sys::SetConfigOption(
            c"default_transaction_isolation".as_ptr(),
            c"repeatable read".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
        );
    }
    let activity = CString::new(format!(
        "capstone bloat holder {}: REPEATABLE READ snapshot held until terminated (at most {} s)",
        ident.token,
        hold.as_secs()
    ))
    .unwrap_or_default();
    BackgroundWorker::transaction(|| {
        // The transaction's snapshot is taken now and, in REPEATABLE READ, stays
        // registered until commit: this backend's xmin holds the horizon from here on.
        // read-only: a snapshot, no xid, like a long report query
        if let Err(e) = Spi::connect(|c| c.select("SELECT 1", None, &[]).map(|_| ())) {
            log!("capstone bloat holder: {e}");
            return;
        }
        unsafe {
            pg_sys::pgstat_report_activity(
                pg_sys::BackendState::STATE_IDLEINTRANSACTION,
                activity.as_ptr(),
            )
        };
        while started.elapsed() < hold {
            if !BackgroundWorker::wait_latch(Some(Duration::from_millis(100))) {
                break;
            }
        }
    });
}

/// INFO messages captured while the vacuum worker runs VACUUM (VERBOSE).
static CAPTURED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static PREVIOUS_HOOK: Mutex<pg_sys::emit_log_hook_type> = Mutex::new(None);

/// Keep INFO messages (VACUUM VERBOSE's report) for the evidence row instead of
/// the server log; everything else passes through untouched.
#[pg_guard]
unsafe extern "C-unwind" fn capture_info(edata: *mut pg_sys::ErrorData) {
    unsafe {
        if !edata.is_null() && (*edata).elevel == pg_sys::INFO as i32 {
            if !(*edata).message.is_null() {
                let m = CStr::from_ptr((*edata).message)
                    .to_string_lossy()
                    .into_owned();
                if let Ok(mut v) = CAPTURED.lock() {
                    v.push(m);
                }
            }
            (*edata).output_to_server = false;
        }
        let prev = PREVIOUS_HOOK.lock().ok().and_then(|g| *g);
        if let Some(prev) = prev {
            prev(edata);
        }
    }
}

/// Run `sql` (one VACUUM statement) at top level, outside any transaction block,
/// as psql would: VACUUM refuses to run inside a function or a transaction block,
/// but a background worker's own top level is neither. Returns its INFO output.
fn vacuum_top_level(sql: &str) -> Result<Vec<String>, String> {
    let csql = CString::new(sql).map_err(|e| e.to_string())?;
    unsafe {
        // INFO reaches emit_log_hook only when it would be logged; the hook then keeps it out of the log
        pg_sys::SetConfigOption(
            c"log_min_messages".as_ptr(),
            c"info".as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
        );
        if let Ok(mut p) = PREVIOUS_HOOK.lock() {
            *p = pg_sys::emit_log_hook;
        }
        if let Ok(mut v) = CAPTURED.lock() {
            v.clear();
        }
        pg_sys::emit_log_hook = Some(capture_info);

        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        // VACUUM commits and starts transactions of its own, so the parse tree and the
        // memory vacuum() keeps across them must live outside the transaction
        let cxt = pg_sys::AllocSetContextCreateExtended(
            pg_sys::TopMemoryContext,
            c"capstone bloat vacuum".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        let old = pg_sys::MemoryContextSwitchTo(cxt);
        let list = pg_sys::raw_parser(csql.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        let stmt = if list.is_null() || (*list).length != 1 {
            std::ptr::null_mut()
        } else {
            let raw = (*(*list).elements).ptr_value as *mut pg_sys::RawStmt;
            let node = (*raw).stmt;
            if (*node).type_ == pg_sys::NodeTag::T_VacuumStmt {
                node as *mut pg_sys::VacuumStmt
            } else {
                std::ptr::null_mut()
            }
        };
        let pstate = pg_sys::make_parsestate(std::ptr::null_mut());
        (*pstate).p_sourcetext = csql.as_ptr();
        pg_sys::MemoryContextSwitchTo(old);
        if stmt.is_null() {
            pg_sys::CommitTransactionCommand();
            pg_sys::MemoryContextDelete(cxt);
            return Err(format!("not a single VACUUM statement: {sql}"));
        }
        let portal = pg_sys::PortalContext;
        pg_sys::PortalContext = cxt;
        pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_RUNNING, csql.as_ptr());
        pg_sys::ExecVacuum(pstate, stmt, true);
        pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_IDLE, std::ptr::null());
        pg_sys::CommitTransactionCommand();
        pg_sys::PortalContext = portal;
        pg_sys::MemoryContextDelete(cxt);

        let prev = PREVIOUS_HOOK.lock().ok().and_then(|g| *g);
        pg_sys::emit_log_hook = prev;
    }
    Ok(CAPTURED
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default())
}

/// The vacuum worker: VACUUM (VERBOSE) the scenario's table as the caller, and
/// store what VACUUM printed as evidence for the caller to read back.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn capstone_bloat_vacuum_main(_arg: pg_sys::Datum) {
    let Some((ident, args)) = worker::attach_with_args() else {
        log!("capstone bloat vacuum: malformed bgw_extra, exiting");
        return;
    };
    let [relid, scenario, step] = args[..] else {
        log!("capstone bloat vacuum: expected 3 arguments, exiting");
        return;
    };
    let name = BackgroundWorker::transaction(|| {
        Spi::get_one_with_args::<String>(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = $1",
            &[pg_sys::Oid::from(relid as u32).into()],
        )
        .ok()
        .flatten()
    });
    let Some(name) = name else {
        log!("capstone bloat vacuum: relation {relid} does not exist, exiting");
        return;
    };
    let sql = format!("VACUUM (VERBOSE) {name}");
    let (lines, error) = match vacuum_top_level(&sql) {
        Ok(lines) => (lines, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let report = estimate::parse_vacuum_verbose(&lines);
    let what = if step == 1 {
        "vacuum while held"
    } else {
        "vacuum after release"
    };
    let label = format!("bloat scenario {scenario}: {what}");
    BackgroundWorker::transaction(|| {
        crate::infra::evidence::store(
            crate::infra::evidence::Gate::Bloat,
            Some(&label),
            Some(&sql),
            json!({}),
            json!({
                "token": ident.token.to_string(),
                "summary": match report.not_yet_removable {
                    Some(n) if n > 0 => format!("{sql}: {n} dead row versions are not yet removable"),
                    _ => format!("{sql}: {} dead row versions removed", report.removed.unwrap_or(0)),
                },
                "text": lines.join("\n"),
                "scenario": scenario,
                "step": step,
                "lines": lines,
                "error": error,
                "removed": report.removed,
                "remain": report.remain,
                "not_yet_removable": report.not_yet_removable,
                "removable_cutoff_age_xids": report.cutoff_age_xids,
            }),
        );
    });
}
