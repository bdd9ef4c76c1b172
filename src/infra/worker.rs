//! Dynamic background workers that run as the caller, in the caller's database.
//!
//! Every capstone worker (smoke test, backfill, anomaly sessions, snapshot
//! holders) starts the same way: the calling backend passes its database OID,
//! its current role OID and a job token through `bgw_extra`, the worker connects
//! with `BackgroundWorkerInitializeConnectionByOid`, and so runs with exactly the
//! caller's privileges, never as a superuser it was not started by.

use crate::infra::error::CapstoneError;
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BackgroundWorkerStatus, DynamicBackgroundWorker,
    SignalWakeFlags,
};
use pgrx::prelude::*;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wait on this backend's latch for at most `ms` milliseconds (or until it is set), then
/// reset it; the postmaster's death ends the process. Interrupts are the caller's to serve.
pub fn wait_latch(ms: i64) {
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            ms,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
    }
}

/// Identity a worker runs under, parsed back out of `bgw_extra`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerIdentity {
    pub database: u32,
    pub role: u32,
    pub token: i64,
}

impl WorkerIdentity {
    pub fn encode(&self) -> String {
        format!("{} {} {}", self.database, self.role, self.token)
    }

    pub fn decode(s: &str) -> Option<WorkerIdentity> {
        match Self::decode_with_args(s)? {
            (ident, args) if args.is_empty() => Some(ident),
            _ => None,
        }
    }

    /// The identity followed by `args`, all as decimal integers: what `launch_with_args`
    /// puts in `bgw_extra`. None when it would not fit in `bgw_extra` (127 bytes).
    pub fn encode_with_args(&self, args: &[i64]) -> Option<String> {
        let mut s = self.encode();
        for a in args {
            s.push(' ');
            s.push_str(&a.to_string());
        }
        (s.len() < BGW_EXTRA_BYTES).then_some(s)
    }

    /// Parse `encode_with_args` output back into the identity and its arguments.
    pub fn decode_with_args(s: &str) -> Option<(WorkerIdentity, Vec<i64>)> {
        let mut it = s.split_whitespace();
        let database = it.next()?.parse().ok()?;
        let role = it.next()?.parse().ok()?;
        let token = it.next()?.parse().ok()?;
        let args = it.map(|a| a.parse().ok()).collect::<Option<Vec<i64>>>()?;
        Some((
            WorkerIdentity {
                database,
                role,
                token,
            },
            args,
        ))
    }

    /// The calling backend's database and current role (after SET ROLE), with a token.
    pub fn of_caller(token: i64) -> WorkerIdentity {
        unsafe {
            WorkerIdentity {
                database: pg_sys::MyDatabaseId.to_u32(),
                role: pg_sys::GetUserId().to_u32(),
                token,
            }
        }
    }
}

/// `bgw_extra` is a 128-byte C string.
const BGW_EXTRA_BYTES: usize = 128;

/// Start a dynamic worker running `function` (an exported symbol of this
/// library) for `ident`. The caller is notified of start and stop.
pub fn launch(kind: &str, function: &str, ident: WorkerIdentity) -> DynamicBackgroundWorker {
    launch_with_args(kind, function, ident, &[])
}

/// `launch`, passing a few integers the worker needs (a relation OID, a time limit)
/// after the identity in `bgw_extra`; `attach_with_args` gives them back.
pub fn launch_with_args(
    kind: &str,
    function: &str,
    ident: WorkerIdentity,
    args: &[i64],
) -> DynamicBackgroundWorker {
    let extra = ident.encode_with_args(args).unwrap_or_else(|| {
        CapstoneError::InvalidParameter(format!(
            "arguments for the capstone {kind} worker do not fit in bgw_extra"
        ))
        .raise()
    });
    let name = format!("capstone {kind} {}", ident.token);
    let builder = BackgroundWorkerBuilder::new(&name)
        .set_type(&format!("capstone {kind}"))
        .set_library("capstone")
        .set_function(function)
        .set_argument(Some(pg_sys::Datum::from(ident.token)))
        .set_extra(&extra)
        .enable_spi_access()
        .set_notify_pid(unsafe { pg_sys::MyProcPid });
    match builder.load_dynamic() {
        Ok(handle) => handle,
        Err(_) => CapstoneError::InsufficientResources(format!(
            "could not start a capstone {kind} background worker"
        ))
        .raise_with(
            "all background worker slots are in use",
            "raise max_worker_processes (restart required) or wait for other workers to finish",
        ),
    }
}

/// Wait for a worker to exit, at most `timeout`. On timeout, on cancel, or on
/// any error in the caller, the worker is terminated: nothing is left behind.
pub fn wait_for_exit(handle: DynamicBackgroundWorker, kind: &str, timeout: Duration) {
    let slot = Mutex::new(Some(handle));
    let started = Instant::now();
    let outcome = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| loop {
        let status = slot.lock().ok().and_then(|g| g.as_ref().map(|h| h.pid()));
        match status {
            Some(Ok(_)) | Some(Err(BackgroundWorkerStatus::NotYetStarted)) => {}
            Some(Err(BackgroundWorkerStatus::PostmasterDied)) => {
                return Err(CapstoneError::PrerequisiteState(
                    "postmaster died while a capstone worker was running".into(),
                ));
            }
            _ => return Ok(()),
        }
        if started.elapsed() >= timeout {
            return Err(CapstoneError::Timeout(format!(
                "capstone {kind} worker did not finish within {} ms",
                timeout.as_millis()
            )));
        }
        wait_latch(10);
        check_for_interrupts!();
    }))
    .catch_others(|e| {
        terminate(&slot);
        e.rethrow()
    })
    .execute();
    if let Err(err) = outcome {
        terminate(&slot);
        err.raise_hint("see the server log for the worker's own messages; capstone.worker_timeout sets the limit");
    }
}

/// Run `f`; when it raises an error or the query is cancelled, terminate the worker
/// in `slot` before re-raising, so no worker outlives a failed call.
pub fn terminate_on_error<R>(
    slot: &Mutex<Option<DynamicBackgroundWorker>>,
    f: impl FnOnce() -> R,
) -> R {
    PgTryBuilder::new(std::panic::AssertUnwindSafe(f))
        .catch_others(|e| {
            terminate(slot);
            e.rethrow()
        })
        .execute()
}

fn terminate(slot: &Mutex<Option<DynamicBackgroundWorker>>) {
    if let Some(h) = slot.lock().ok().and_then(|mut g| g.take()) {
        let _ = h.terminate();
    }
}

/// Called first in every worker: signals, then connect as the submitting role.
pub fn attach() -> Option<WorkerIdentity> {
    match attach_with_args()? {
        (ident, args) if args.is_empty() => Some(ident),
        _ => None,
    }
}

/// `attach` for workers started with `launch_with_args`: also returns the arguments.
pub fn attach_with_args() -> Option<(WorkerIdentity, Vec<i64>)> {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let (ident, args) = WorkerIdentity::decode_with_args(BackgroundWorker::get_extra())?;
    BackgroundWorker::connect_worker_to_spi_by_oid(
        Some(pg_sys::Oid::from(ident.database)),
        Some(pg_sys::Oid::from(ident.role)),
    );
    Some((ident, args))
}

/// Run `f` in a transaction of its own, with a snapshot, as a worker's unit of work; an
/// error aborts it and comes back as (SQLSTATE, message).
pub fn in_transaction<R>(f: impl FnOnce() -> R) -> Result<R, (String, String)> {
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let f = std::panic::AssertUnwindSafe(f);
    let r = PgTryBuilder::new(move || {
        let f = f;
        Ok((f.0)())
    })
    .catch_others(|e| Err(crate::infra::subxact::describe(&e)))
    .execute();
    unsafe {
        match r {
            Ok(_) => {
                pg_sys::PopActiveSnapshot();
                pg_sys::CommitTransactionCommand();
            }
            Err(_) => pg_sys::AbortCurrentTransaction(),
        }
    }
    r
}

/// What PostgreSQL's own `die()` does for a background worker: the next
/// CHECK_FOR_INTERRUPTS, wherever it is (a lock wait, a long statement, a nap), ends the
/// process with FATAL, which rolls its transaction back.
unsafe extern "C-unwind" fn on_sigterm(_signal_args: i32) {
    (&raw mut pg_sys::InterruptPending).write_volatile(1);
    (&raw mut pg_sys::ProcDiePending).write_volatile(1);
    pg_sys::SetLatch(pg_sys::MyLatch);
}

/// Make SIGTERM (pg_terminate_backend, a fast shutdown) end this worker as it ends any
/// backend, even inside a lock wait or a long command that a flag read by the worker's
/// own loop would never reach.
pub fn die_on_sigterm() {
    unsafe {
        #[cfg(not(feature = "pg18"))]
        pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(on_sigterm));
        #[cfg(feature = "pg18")]
        pg_sys::pqsignal_be(pg_sys::SIGTERM as i32, Some(on_sigterm));
    }
}

/// Run one utility statement the way a client's simple query runs it: at top level,
/// outside any transaction block, in a transaction of its own. This is what the commands
/// that manage their own transactions need (CREATE INDEX CONCURRENTLY, REINDEX
/// CONCURRENTLY), which no function may run. Only a worker, which owns its transaction
/// state, can call it. An error aborts the transaction and comes back as
/// (SQLSTATE, message).
pub fn run_top_level(sql: &str) -> Result<(), (String, String)> {
    let Ok(text) = std::ffi::CString::new(sql) else {
        return Err(("22023".into(), "the statement contains a NUL byte".into()));
    };
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_RUNNING, text.as_ptr());
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let text_ptr = text.as_ptr();
    let r = PgTryBuilder::new(move || unsafe {
        // the parse tree must outlive the commits the command makes on its way
        let old = pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
        let list = pg_sys::raw_parser(text_ptr, pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        let raws = crate::infra::parse::list_ptrs::<pg_sys::RawStmt>(list);
        let [raw] = raws.as_slice() else {
            pg_sys::MemoryContextSwitchTo(old);
            return Err(("42601".into(), "expected exactly one statement".into()));
        };
        let mut stmt = PgBox::<pg_sys::PlannedStmt>::alloc_node(pg_sys::NodeTag::T_PlannedStmt);
        stmt.commandType = pg_sys::CmdType::CMD_UTILITY;
        stmt.canSetTag = true;
        stmt.utilityStmt = (**raw).stmt;
        stmt.stmt_location = (**raw).stmt_location;
        stmt.stmt_len = (**raw).stmt_len;
        pg_sys::ProcessUtility(
            stmt.into_pg(),
            text_ptr,
            false,
            pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            pg_sys::None_Receiver,
            std::ptr::null_mut(),
        );
        pg_sys::MemoryContextSwitchTo(old);
        Ok(())
    })
    .catch_others(|e| Err(crate::infra::subxact::describe(&e)))
    .execute();
    unsafe {
        match r {
            Ok(()) => {
                if pg_sys::ActiveSnapshotSet() {
                    pg_sys::PopActiveSnapshot();
                }
                pg_sys::CommitTransactionCommand();
            }
            Err(_) => pg_sys::AbortCurrentTransaction(),
        }
        pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_IDLE, std::ptr::null());
    }
    r
}

/// The smoke worker: connect as the caller, write one row, exit.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn capstone_smoke_main(_arg: pg_sys::Datum) {
    let Some(ident) = attach() else {
        log!("capstone smoke worker: malformed bgw_extra, exiting");
        return;
    };
    BackgroundWorker::transaction(|| {
        // the role this worker runs as, read before capstone writes its proof row
        let role = crate::infra::owner::caller();
        crate::infra::owner::write(|| {
            Spi::run_with_args(
                "INSERT INTO capstone.worker_smoke_log (token, pid, database, role, backend_type)
                 SELECT $1, pg_backend_pid(), current_database(), $2,
                        (SELECT backend_type FROM pg_catalog.pg_stat_activity WHERE pid = pg_backend_pid())",
                &[ident.token.into(), role.into()],
            )
        })
    })
    .unwrap_or_else(|e| log!("capstone smoke worker: insert failed: {e}"));
}

/// Start a background worker in this database as the current role, let it write
/// one row and exit, then report what it saw. Proves the worker pattern every
/// stateful gate uses.
#[pg_extern(volatile, parallel_unsafe)]
fn worker_smoke() -> TableIterator<
    'static,
    (
        name!(worker_pid, i32),
        name!(database, String),
        name!(role, String),
        name!(backend_type, Option<String>),
        name!(elapsed_ms, f64),
    ),
> {
    let token: i64 = Spi::get_one("SELECT nextval('capstone.worker_token_seq')")
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            CapstoneError::PrerequisiteState("capstone.worker_token_seq is missing".into()).raise()
        });
    let started = Instant::now();
    let handle = launch(
        "smoke",
        "capstone_smoke_main",
        WorkerIdentity::of_caller(token),
    );
    wait_for_exit(
        handle,
        "smoke",
        Duration::from_millis(crate::infra::gucs::worker_timeout_ms() as u64),
    );
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let row = Spi::connect(|c| {
        let t = c.select(
            "SELECT pid, database, role, backend_type FROM capstone.worker_smoke_log WHERE token = $1",
            Some(1),
            &[token.into()],
        )?;
        if t.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        let r = t.first();
        Ok(Some((
            r.get::<i32>(1)?.unwrap_or(0),
            r.get::<String>(2)?.unwrap_or_default(),
            r.get::<String>(3)?.unwrap_or_default(),
            r.get::<String>(4)?,
        )))
    });
    match row {
        Ok(Some((pid, db, role, bt))) => TableIterator::once((pid, db, role, bt, elapsed_ms)),
        _ => CapstoneError::PrerequisiteState("the smoke worker exited without writing its row".into())
            .raise_hint("check the server log for the worker's error, and that capstone.worker_smoke_log exists"),
    }
}

#[cfg(test)]
mod unit {
    use super::WorkerIdentity;

    #[test]
    fn identity_round_trips() {
        let id = WorkerIdentity {
            database: 16384,
            role: 10,
            token: 42,
        };
        assert_eq!(WorkerIdentity::decode(&id.encode()), Some(id));
    }

    #[test]
    fn arguments_round_trip_and_fit() {
        let id = WorkerIdentity {
            database: u32::MAX,
            role: u32::MAX,
            token: i64::MAX,
        };
        let s = id.encode_with_args(&[16384, 300_000, -1]).unwrap();
        assert_eq!(
            WorkerIdentity::decode_with_args(&s),
            Some((id, vec![16384, 300_000, -1]))
        );
        // plain decode refuses trailing arguments; a worker must ask for them
        assert_eq!(WorkerIdentity::decode(&s), None);
        assert!(id.encode_with_args(&[i64::MIN; 5]).is_none());
    }

    #[test]
    fn identity_rejects_garbage() {
        assert_eq!(WorkerIdentity::decode(""), None);
        assert_eq!(WorkerIdentity::decode("1 2"), None);
        assert_eq!(WorkerIdentity::decode("1 2 3 4"), None);
        assert_eq!(WorkerIdentity::decode("a b c"), None);
        assert_eq!(WorkerIdentity::decode_with_args("1 2 3 x"), None);
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn smoke_worker_runs_as_caller_in_callers_database() {
        // A pg_test body is one uncommitted transaction, so a role created here would be
        // invisible to the worker; the golden test covers a granted non-superuser role.
        let (db, role, bt) = Spi::get_three::<String, String, String>(
            "SELECT database, role, backend_type FROM capstone.worker_smoke()",
        )
        .unwrap();
        let here = Spi::get_one::<String>("SELECT current_database()::text").unwrap();
        let me = Spi::get_one::<String>("SELECT current_user::text").unwrap();
        assert_eq!(db, here);
        assert_eq!(role, me);
        assert_eq!(bt.as_deref(), Some("capstone smoke"));
    }
}
