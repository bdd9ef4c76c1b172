//! The demo's two sessions: dynamic background workers that run as the calling role, in
//! the caller's database, each driven through a slot in a small static shared-memory
//! region.
//!
//! Why workers and not connections back to the server: a connection needs a password
//! for anyone but a superuser, and a worker started with the caller's role OID has
//! exactly the caller's rights, never more.
//!
//! The coordinator (the backend running `anomaly_demo`) writes a statement into a slot and
//! sets the worker's latch; the worker runs it and writes back the first column of the
//! first row as text (or the command tag), or the error's SQLSTATE and message, then sets
//! the coordinator's latch. A sequence number pairs each answer with its statement, so a
//! stale answer is never read. Transaction control is the worker's own (SPI cannot run
//! BEGIN or COMMIT): BEGIN starts a transaction with the isolation level set before any
//! snapshot, other statements run through SPI in a subtransaction so an error is caught
//! and leaves the transaction failed, as in psql; COMMIT of a failed transaction rolls
//! back; a statement outside BEGIN runs in its own transaction.

use crate::infra::error::CapstoneError;
use crate::infra::subxact::{self, Outcome};
use crate::infra::worker::{self, WorkerIdentity};
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerStatus, DynamicBackgroundWorker};
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgLwLock};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Sessions that may exist at once, cluster-wide (a demo uses two).
pub const SLOTS: usize = 8;
/// Longest statement a session accepts, in bytes.
pub const COMMAND_BYTES: usize = 8192;
/// An answer's text is cut at this many bytes (at a character boundary).
pub const RESULT_BYTES: usize = 1024;
const MESSAGE_BYTES: usize = 1024;
const ROLE_BYTES: usize = 64;

// slot states
const FREE: u8 = 0;
const STARTING: u8 = 1;
const IDLE: u8 = 2;
const PENDING: u8 = 3;
const RUNNING: u8 = 4;
const DONE: u8 = 5;
const EXITED: u8 = 6;

#[derive(Clone, Copy)]
#[repr(C)]
struct Slot {
    state: u8,
    /// the coordinator asks the worker to leave
    stop: bool,
    failed: bool,
    sqlstate: [u8; 5],
    coordinator: i32,
    worker: i32,
    generation: u64,
    /// the last statement sent and the last one answered
    sent: u64,
    answered: u64,
    command_len: u32,
    result_len: u32,
    message_len: u32,
    role_len: u32,
    command: [u8; COMMAND_BYTES],
    result: [u8; RESULT_BYTES],
    message: [u8; MESSAGE_BYTES],
    role: [u8; ROLE_BYTES],
}

const EMPTY_SLOT: Slot = Slot {
    state: FREE,
    stop: false,
    failed: false,
    sqlstate: [0; 5],
    coordinator: 0,
    worker: 0,
    generation: 0,
    sent: 0,
    answered: 0,
    command_len: 0,
    result_len: 0,
    message_len: 0,
    role_len: 0,
    command: [0; COMMAND_BYTES],
    result: [0; RESULT_BYTES],
    message: [0; MESSAGE_BYTES],
    role: [0; ROLE_BYTES],
};

#[derive(Clone, Copy)]
pub struct SessionSlots {
    generation: u64,
    slots: [Slot; SLOTS],
}

impl Default for SessionSlots {
    fn default() -> Self {
        SessionSlots {
            generation: 0,
            slots: [EMPTY_SLOT; SLOTS],
        }
    }
}

// SAFETY: plain bytes and integers, no pointers
unsafe impl PGRXSharedMemory for SessionSlots {}

static SLOTS_SHMEM: PgLwLock<SessionSlots> = unsafe { PgLwLock::new(c"capstone_demo_sessions") };
/// Set in the postmaster when the region is requested; inherited by every backend.
static REGISTERED: AtomicBool = AtomicBool::new(false);

/// Request the region. Only while shared_preload_libraries is being processed.
// pgrx's macro tests features pg13/pg14, which this crate does not declare
#[allow(unexpected_cfgs)]
pub fn init_shmem() {
    pg_shmem_init!(SLOTS_SHMEM);
    REGISTERED.store(true, Ordering::SeqCst);
}

/// Whether this server has the region (capstone was preloaded).
pub fn available() -> bool {
    REGISTERED.load(Ordering::SeqCst)
}

/// Copy `s` into `buf`, cut at a character boundary; the length written.
pub fn put(buf: &mut [u8], s: &str) -> u32 {
    let mut n = s.len().min(buf.len());
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    buf[..n].copy_from_slice(&s.as_bytes()[..n]);
    n as u32
}

fn get(buf: &[u8], len: u32) -> String {
    String::from_utf8_lossy(&buf[..(len as usize).min(buf.len())]).into_owned()
}

fn alive(pid: i32) -> bool {
    pid != 0 && unsafe { !pg_sys::BackendPidGetProc(pid).is_null() }
}

fn wake(pid: i32) {
    if pid == 0 {
        return;
    }
    unsafe {
        let proc_ = pg_sys::BackendPidGetProc(pid);
        if !proc_.is_null() {
            pg_sys::SetLatch(&raw mut (*proc_).procLatch);
        }
    }
}

/// Wait on our latch at most `ms`, then optionally serve interrupts (cancel, terminate).
fn nap(ms: i64, interrupts: bool) {
    crate::infra::worker::wait_latch(ms);
    if interrupts {
        check_for_interrupts!();
    }
}

/// How one statement ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Row(String),
    Failed(String, String),
}

// ---------------------------------------------------------------------------------------
// coordinator side

/// One session, as its coordinator knows it.
struct Session {
    slot: usize,
    generation: u64,
    pid: i32,
    role: String,
    handle: Option<DynamicBackgroundWorker>,
}

/// The sessions a coordinator opened; `close_all` ends them all.
#[derive(Default)]
pub struct Sessions {
    open: RefCell<Vec<Session>>,
}

impl Sessions {
    /// Start a session worker as the current role and wait until it is ready.
    pub fn open(&self, label: &str, token: i64, timeout: Duration) {
        let (slot, generation) = reserve().unwrap_or_else(|| {
            CapstoneError::InsufficientResources(format!(
                "all {SLOTS} capstone demo session slots are in use"
            ))
            .raise_hint("wait for the running demos to finish")
        });
        let handle = PgTryBuilder::new(|| {
            worker::launch_with_args(
                "demo session",
                "capstone_demo_session_main",
                WorkerIdentity::of_caller(token),
                &[slot as i64, generation as i64],
            )
        })
        .catch_others(|e| {
            release(slot, generation);
            e.rethrow()
        })
        .execute();
        // from here on close_all ends the worker and frees its slot, whatever happens
        self.open.borrow_mut().push(Session {
            slot,
            generation,
            pid: 0,
            role: String::new(),
            handle: Some(handle),
        });
        let started = Instant::now();
        loop {
            let ready = {
                let g = SLOTS_SHMEM.share();
                let s = &g.slots[slot];
                (s.generation == generation && s.state == IDLE)
                    .then(|| (s.worker, get(&s.role, s.role_len)))
            };
            if let Some((pid, role)) = ready {
                if let Some(s) = self.open.borrow_mut().last_mut() {
                    s.pid = pid;
                    s.role = role;
                }
                return;
            }
            let gone = self
                .open
                .borrow()
                .last()
                .and_then(|s| s.handle.as_ref().map(|h| h.pid()))
                .is_some_and(|st| {
                    matches!(
                        st,
                        Err(BackgroundWorkerStatus::Stopped)
                            | Err(BackgroundWorkerStatus::Untracked { .. })
                            | Err(BackgroundWorkerStatus::PostmasterDied)
                    )
                });
            if gone {
                CapstoneError::PrerequisiteState(format!(
                    "demo session {label} exited before it was ready"
                ))
                .raise_hint(format!(
                    "the session connects to this database as {}; see the server log for its error (CONNECT privilege, connection limit)",
                    crate::infra::owner::caller()
                ));
            }
            if started.elapsed() > timeout {
                CapstoneError::Timeout(format!("demo session {label} did not start")).raise_hint(
                    "capstone.worker_timeout bounds the wait; check max_worker_processes",
                );
            }
            nap(1, true);
        }
    }

    fn with<R>(&self, s: usize, f: impl FnOnce(&Session) -> R) -> Option<R> {
        self.open.borrow().get(s).map(f)
    }

    pub fn pid(&self, s: usize) -> i32 {
        self.with(s, |x| x.pid).unwrap_or(0)
    }

    /// The roles the sessions ran as, in session order.
    pub fn roles(&self) -> Vec<String> {
        self.open.borrow().iter().map(|x| x.role.clone()).collect()
    }

    pub fn count(&self) -> usize {
        self.open.borrow().len()
    }

    /// Hand a statement to session `s`; it starts running at once.
    pub fn send(&self, s: usize, sql: &str) {
        if sql.len() > COMMAND_BYTES {
            CapstoneError::InvalidParameter(format!(
                "a demo session statement is at most {COMMAND_BYTES} bytes (got {})",
                sql.len()
            ))
            .raise();
        }
        let Some((slot, generation, pid)) = self.with(s, |x| (x.slot, x.generation, x.pid)) else {
            CapstoneError::PrerequisiteState("no such demo session".into()).raise()
        };
        let accepted = {
            let mut g = SLOTS_SHMEM.exclusive();
            let x = &mut g.slots[slot];
            if x.generation == generation && x.state == IDLE {
                x.command_len = put(&mut x.command, sql);
                x.sent += 1;
                x.state = PENDING;
                true
            } else {
                false
            }
        };
        if !accepted || !alive(pid) {
            CapstoneError::PrerequisiteState("a demo session stopped accepting statements".into())
                .raise();
        }
        wake(pid);
    }

    /// Cancel the statement session `s` is running (a lock wait, say), as
    /// pg_cancel_backend would: the statement fails with 57014 and the session stays.
    pub fn cancel(&self, s: usize) {
        let pid = self.pid(s);
        if pid != 0 && self.busy(s) {
            unsafe extern "C" {
                fn kill(pid: pg_sys::pid_t, sig: std::ffi::c_int) -> std::ffi::c_int;
            }
            // SAFETY: our own worker's pid, still alive (busy checked it)
            unsafe { kill(pid, pg_sys::SIGINT as std::ffi::c_int) };
        }
    }

    /// Whether session `s` is still running its statement (false once it has answered
    /// or is gone).
    pub fn busy(&self, s: usize) -> bool {
        let Some((slot, generation, pid)) = self.with(s, |x| (x.slot, x.generation, x.pid)) else {
            return false;
        };
        let running = {
            let g = SLOTS_SHMEM.share();
            let x = &g.slots[slot];
            x.generation == generation && (x.state == PENDING || x.state == RUNNING)
        };
        running && alive(pid)
    }

    /// The answer to the statement last sent to `s`, waiting for it at most `timeout`.
    pub fn result(&self, s: usize, timeout: Duration) -> Answer {
        let started = Instant::now();
        while self.busy(s) {
            if started.elapsed() > timeout {
                return Answer::Failed("57014".into(), "timed out".into());
            }
            nap(1, true);
        }
        let Some((slot, generation)) = self.with(s, |x| (x.slot, x.generation)) else {
            return Answer::Failed("08003".into(), "no such demo session".into());
        };
        let mut g = SLOTS_SHMEM.exclusive();
        let x = &mut g.slots[slot];
        if x.generation != generation || x.state != DONE || x.answered != x.sent {
            return Answer::Failed("08006".into(), "the demo session ended".into());
        }
        x.state = IDLE;
        if x.failed {
            Answer::Failed(
                String::from_utf8_lossy(&x.sqlstate).into_owned(),
                get(&x.message, x.message_len),
            )
        } else {
            Answer::Row(get(&x.result, x.result_len))
        }
    }

    /// End every session and free its slot. Waits until each worker is gone, so no
    /// session backend outlives the call; serves no interrupts, so a second cancel
    /// cannot leave a session behind.
    pub fn close_all(&self) {
        let sessions: Vec<Session> = self.open.borrow_mut().drain(..).collect();
        for s in &sessions {
            let mut g = SLOTS_SHMEM.exclusive();
            let x = &mut g.slots[s.slot];
            if x.generation == s.generation {
                x.stop = true;
            }
        }
        for s in &sessions {
            wake(s.pid);
        }
        for mut s in sessions {
            let started = Instant::now();
            let mut handle = s.handle.take();
            loop {
                let running = matches!(
                    handle.as_ref().map(|h| h.pid()),
                    Some(Ok(_)) | Some(Err(BackgroundWorkerStatus::NotYetStarted))
                );
                if !running {
                    break;
                }
                // a session inside a statement (waiting for a lock, say) is terminated:
                // its SIGTERM handler is the backend's own, which ends a lock wait too
                if started.elapsed() > Duration::from_millis(200) || self_busy(&s) {
                    if let Some(h) = handle.take() {
                        let _ = h.terminate().wait_for_shutdown();
                    }
                    break;
                }
                nap(1, false);
            }
            release(s.slot, s.generation);
        }
    }
}

fn self_busy(s: &Session) -> bool {
    let g = SLOTS_SHMEM.share();
    let x = &g.slots[s.slot];
    x.generation == s.generation && (x.state == PENDING || x.state == RUNNING)
}

/// A free slot for a new session of this backend, with its generation. A slot whose
/// coordinator and worker are both gone (a crashed or terminated demo) is taken back.
fn reserve() -> Option<(usize, u64)> {
    let mut g = SLOTS_SHMEM.exclusive();
    let me = unsafe { pg_sys::MyProcPid };
    let i = (0..SLOTS).find(|&i| {
        let x = &g.slots[i];
        x.state == FREE || (!alive(x.coordinator) && !alive(x.worker))
    })?;
    g.generation += 1;
    let generation = g.generation;
    let x = &mut g.slots[i];
    *x = EMPTY_SLOT;
    x.state = STARTING;
    x.coordinator = me;
    x.generation = generation;
    Some((i, generation))
}

fn release(slot: usize, generation: u64) {
    let mut g = SLOTS_SHMEM.exclusive();
    if g.slots[slot].generation == generation {
        g.slots[slot].state = FREE;
        g.slots[slot].worker = 0;
        g.slots[slot].coordinator = 0;
    }
}

// ---------------------------------------------------------------------------------------
// worker side

/// What a statement asks of the session's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Begin,
    Commit,
    Rollback,
    /// transaction control a demo session does not do (savepoints, two-phase, chains)
    Unsupported,
    /// anything else: runs through SPI
    Other,
}

/// What the session does with a statement, given its transaction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// start a transaction block (or, already in one, answer BEGIN as PostgreSQL does)
    Begin,
    Commit,
    /// COMMIT of a failed transaction: roll back and answer ROLLBACK
    RollbackFailed,
    Rollback,
    Run,
    /// inside a failed transaction: 25P02 without running
    Refuse,
    Unsupported,
}

/// The session's transaction state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Txn {
    pub in_block: bool,
    pub failed: bool,
}

/// Pure: the action for a statement of `kind` in state `t`.
pub fn decide(kind: Kind, t: Txn) -> Action {
    match kind {
        Kind::Begin if t.in_block && t.failed => Action::Refuse,
        Kind::Begin => Action::Begin,
        Kind::Commit if t.failed => Action::RollbackFailed,
        Kind::Commit => Action::Commit,
        Kind::Rollback => Action::Rollback,
        Kind::Unsupported => Action::Unsupported,
        Kind::Other if t.in_block && t.failed => Action::Refuse,
        Kind::Other => Action::Run,
    }
}

/// A BEGIN's options, as PostgreSQL's parser gives them.
#[derive(Debug, Default, Clone, Copy)]
struct BeginOptions {
    isolation: Option<i32>,
    read_only: Option<bool>,
    deferrable: Option<bool>,
}

/// The parsed statement text: its kind, BEGIN's options, and the command tag of the
/// last statement (for statements that return no rows).
struct Parsed {
    kind: Kind,
    begin: BeginOptions,
    tag: String,
}

fn isolation_code(name: &str) -> Option<i32> {
    match name {
        "serializable" => Some(pg_sys::XACT_SERIALIZABLE as i32),
        "repeatable read" => Some(pg_sys::XACT_REPEATABLE_READ as i32),
        "read committed" => Some(pg_sys::XACT_READ_COMMITTED as i32),
        "read uncommitted" => Some(pg_sys::XACT_READ_UNCOMMITTED as i32),
        _ => None,
    }
}

/// Integer, boolean or string value of a DefElem's A_Const argument.
unsafe fn const_value(arg: *mut pg_sys::Node) -> (Option<i64>, Option<String>) {
    if arg.is_null() || (*arg).type_ != pg_sys::NodeTag::T_A_Const {
        return (None, None);
    }
    let c = arg as *mut pg_sys::A_Const;
    if (*c).isnull {
        return (None, None);
    }
    let val = &(*c).val;
    match val.node.type_ {
        pg_sys::NodeTag::T_Integer => (Some(val.ival.ival as i64), None),
        pg_sys::NodeTag::T_Boolean => (Some(val.boolval.boolval as i64), None),
        pg_sys::NodeTag::T_String if !val.sval.sval.is_null() => (
            None,
            Some(
                std::ffi::CStr::from_ptr(val.sval.sval)
                    .to_string_lossy()
                    .into_owned(),
            ),
        ),
        _ => (None, None),
    }
}

unsafe fn begin_options(stmt: *mut pg_sys::TransactionStmt) -> BeginOptions {
    let mut o = BeginOptions::default();
    let list = (*stmt).options;
    if list.is_null() {
        return o;
    }
    for i in 0..(*list).length as usize {
        let d = (*(*list).elements.add(i)).ptr_value as *mut pg_sys::DefElem;
        if d.is_null() || (*d).defname.is_null() {
            continue;
        }
        let name = std::ffi::CStr::from_ptr((*d).defname).to_string_lossy();
        let (n, s) = const_value((*d).arg);
        match name.as_ref() {
            "transaction_isolation" => o.isolation = s.as_deref().and_then(isolation_code),
            "transaction_read_only" => o.read_only = n.map(|v| v != 0),
            "transaction_deferrable" => o.deferrable = n.map(|v| v != 0),
            _ => {}
        }
    }
    o
}

/// Parse `sql` with PostgreSQL's parser. Text of several statements is one `Other` unless
/// one of them is transaction control, which a session takes only on its own.
fn parse(sql: &str) -> Parsed {
    let stmts = crate::infra::parse::raw_statements(sql, "a demo session statement");
    let mut parsed = Parsed {
        kind: Kind::Other,
        begin: BeginOptions::default(),
        tag: String::new(),
    };
    for (i, &node) in stmts.iter().enumerate() {
        if node.is_null() {
            continue;
        }
        unsafe {
            parsed.tag =
                std::ffi::CStr::from_ptr(pg_sys::GetCommandTagName(pg_sys::CreateCommandTag(node)))
                    .to_string_lossy()
                    .into_owned();
            if (*node).type_ != pg_sys::NodeTag::T_TransactionStmt {
                continue;
            }
            let t = node as *mut pg_sys::TransactionStmt;
            use pg_sys::TransactionStmtKind as K;
            let kind = match (*t).kind {
                K::TRANS_STMT_BEGIN | K::TRANS_STMT_START => Kind::Begin,
                K::TRANS_STMT_COMMIT if !(*t).chain => Kind::Commit,
                K::TRANS_STMT_ROLLBACK if !(*t).chain => Kind::Rollback,
                _ => Kind::Unsupported,
            };
            parsed.kind = if stmts.len() > 1 {
                Kind::Unsupported
            } else {
                kind
            };
            if kind == Kind::Begin && i == 0 {
                parsed.begin = begin_options(t);
            }
        }
    }
    parsed
}

/// Run `sql` through SPI: the first column of the first row as text, else the command tag.
unsafe fn spi_run(sql: &str, tag: &str) -> Answer {
    let Ok(c) = std::ffi::CString::new(sql) else {
        return Answer::Failed("22023".into(), "statement contains a NUL byte".into());
    };
    // as exec_simple_query does: parse analysis needs a snapshot; SPI still takes a new
    // one per statement at READ COMMITTED, and the transaction's first one is taken here
    pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    pg_sys::SPI_connect();
    let rc = pg_sys::SPI_execute(c.as_ptr(), false, 0);
    let answer = if rc < 0 {
        Answer::Failed(
            "0A000".into(),
            format!("a demo session cannot run this statement (SPI code {rc})"),
        )
    } else {
        let table = pg_sys::SPI_tuptable;
        let n = pg_sys::SPI_processed;
        if !table.is_null() {
            let mut v = String::new();
            if n > 0 && (*(*table).tupdesc).natts > 0 {
                let p = pg_sys::SPI_getvalue(*(*table).vals, (*table).tupdesc, 1);
                if !p.is_null() {
                    v = std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned();
                }
            }
            Answer::Row(v)
        } else {
            Answer::Row(command_status(rc, tag, n))
        }
    };
    pg_sys::SPI_finish();
    pg_sys::PopActiveSnapshot();
    answer
}

/// The command status PostgreSQL sends for a statement that returned no rows.
fn command_status(rc: i32, tag: &str, n: u64) -> String {
    match rc as u32 {
        pg_sys::SPI_OK_INSERT => format!("INSERT 0 {n}"),
        pg_sys::SPI_OK_UPDATE | pg_sys::SPI_OK_DELETE | pg_sys::SPI_OK_SELINTO => {
            format!("{tag} {n}")
        }
        pg_sys::SPI_OK_MERGE => format!("MERGE {n}"),
        _ => tag.to_string(),
    }
}

/// Run a piece of the transaction machinery (CommitTransactionCommand may raise, e.g. a
/// serializable commit's 40001), catching its error like PostgresMain's recovery does:
/// the caller then aborts the transaction and the session stays usable.
fn guarded(f: impl FnOnce()) -> Result<(), (String, String)> {
    PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        f();
        Ok(())
    }))
    .catch_others(|e| Err(subxact::describe(&e)))
    .execute()
}

fn commit() -> Answer {
    match guarded(|| unsafe { pg_sys::CommitTransactionCommand() }) {
        Ok(()) => Answer::Row("COMMIT".into()),
        Err((code, msg)) => {
            unsafe { pg_sys::AbortCurrentTransaction() };
            Answer::Failed(code, msg)
        }
    }
}

/// One statement, with the session's transaction state.
fn execute(t: &mut Txn, sql: &str) -> Answer {
    let implicit = !t.in_block;
    if implicit {
        unsafe { pg_sys::StartTransactionCommand() };
    }
    // a syntax error is the statement's error; inside a block it fails the transaction
    let parsed = match subxact::run(Outcome::Commit, || parse(sql)) {
        Ok(p) => p,
        Err(e) => {
            let (code, msg) = subxact::describe(&e);
            if implicit {
                unsafe { pg_sys::AbortCurrentTransaction() };
            } else {
                t.failed = true;
            }
            return Answer::Failed(code, msg);
        }
    };
    match decide(parsed.kind, *t) {
        Action::Begin => {
            if !t.in_block {
                // no snapshot has been taken yet in this transaction: the level holds for it
                unsafe {
                    if let Some(level) = parsed.begin.isolation {
                        pg_sys::XactIsoLevel = level;
                    }
                    if let Some(ro) = parsed.begin.read_only {
                        pg_sys::XactReadOnly = ro;
                    }
                    if let Some(d) = parsed.begin.deferrable {
                        pg_sys::XactDeferrable = d;
                    }
                }
                t.in_block = true;
            }
            Answer::Row(parsed.tag)
        }
        Action::Commit => {
            *t = Txn::default();
            commit()
        }
        Action::RollbackFailed | Action::Rollback => {
            *t = Txn::default();
            unsafe { pg_sys::AbortCurrentTransaction() };
            Answer::Row("ROLLBACK".into())
        }
        Action::Refuse => Answer::Failed(
            "25P02".into(),
            "current transaction is aborted, commands ignored until end of transaction block"
                .into(),
        ),
        Action::Unsupported => {
            if implicit {
                unsafe { pg_sys::AbortCurrentTransaction() };
            }
            Answer::Failed(
                "0A000".into(),
                "a demo session runs BEGIN, COMMIT and ROLLBACK only as statements of their own, and no savepoints or two-phase commands".into(),
            )
        }
        Action::Run => {
            let ran = subxact::run(Outcome::Commit, || unsafe { spi_run(sql, &parsed.tag) });
            let answer = match ran {
                Ok(a) => a,
                Err(e) => {
                    let (code, msg) = subxact::describe(&e);
                    Answer::Failed(code, msg)
                }
            };
            let failed = matches!(answer, Answer::Failed(..));
            if implicit {
                if failed {
                    unsafe { pg_sys::AbortCurrentTransaction() };
                    answer
                } else {
                    match commit() {
                        Answer::Row(_) => answer,
                        err => err,
                    }
                }
            } else {
                t.failed = failed;
                answer
            }
        }
    }
}

/// Write the answer to statement `seq` into the slot and wake the coordinator.
fn answer(slot: usize, generation: u64, seq: u64, a: &Answer) {
    let coordinator = {
        let mut g = SLOTS_SHMEM.exclusive();
        let x = &mut g.slots[slot];
        if x.generation != generation || x.sent != seq {
            return;
        }
        match a {
            Answer::Row(v) => {
                x.failed = false;
                x.result_len = put(&mut x.result, v);
            }
            Answer::Failed(code, msg) => {
                x.failed = true;
                x.sqlstate = [b'X', b'X', b'0', b'0', b'0'];
                put(&mut x.sqlstate, code);
                x.message_len = put(&mut x.message, msg);
                x.result_len = 0;
            }
        }
        x.answered = seq;
        x.state = DONE;
        x.coordinator
    };
    wake(coordinator);
}

/// What PostgreSQL's own `die()` does for a background worker: the next
/// CHECK_FOR_INTERRUPTS, wherever it is (a lock wait, a long statement, this loop's
/// nap), ends the process with FATAL, which rolls its transaction back.
unsafe extern "C-unwind" fn on_sigterm(_signal_args: i32) {
    (&raw mut pg_sys::InterruptPending).write_volatile(1);
    (&raw mut pg_sys::ProcDiePending).write_volatile(1);
    pg_sys::SetLatch(pg_sys::MyLatch);
}

/// Entry point of a demo session worker: `bgw_extra` carries the caller's identity,
/// then the slot and its generation.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn capstone_demo_session_main(_arg: pg_sys::Datum) {
    let Some((_ident, args)) = worker::attach_with_args() else {
        log!("capstone demo session: malformed bgw_extra, exiting");
        return;
    };
    let (Some(&slot), Some(&generation)) = (args.first(), args.get(1)) else {
        log!("capstone demo session: no slot given, exiting");
        return;
    };
    if !available() || slot < 0 || slot as usize >= SLOTS {
        log!("capstone demo session: no session slot {slot}, exiting");
        return;
    }
    let (slot, generation) = (slot as usize, generation as u64);
    // SIGTERM as in any backend: a terminate ends even a lock wait inside SPI, which
    // a flag read only by this loop could not
    unsafe {
        #[cfg(not(feature = "pg18"))]
        pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(on_sigterm));
        #[cfg(feature = "pg18")]
        pg_sys::pqsignal_be(pg_sys::SIGTERM as i32, Some(on_sigterm));
    }
    // who this session is, and what pg_stat_activity calls it
    let role = BackgroundWorker::transaction(|| {
        Spi::get_one::<String>(
            "SELECT current_user::text FROM pg_catalog.set_config('application_name', 'capstone_demo', false) a,
                    pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false) p",
        )
    })
    .ok()
    .flatten()
    .unwrap_or_default();
    let coordinator = {
        let mut g = SLOTS_SHMEM.exclusive();
        let x = &mut g.slots[slot];
        if x.generation != generation || x.state != STARTING {
            return;
        }
        x.worker = unsafe { pg_sys::MyProcPid };
        x.role_len = put(&mut x.role, &role);
        x.state = IDLE;
        x.coordinator
    };
    wake(coordinator);
    let mut t = Txn::default();
    loop {
        let next = {
            let mut g = SLOTS_SHMEM.exclusive();
            let x = &mut g.slots[slot];
            if x.generation != generation || x.stop || !alive(x.coordinator) {
                None
            } else if x.state == PENDING {
                x.state = RUNNING;
                Some(Some((x.sent, get(&x.command, x.command_len))))
            } else {
                Some(None)
            }
        };
        match next {
            None => break,
            Some(Some((seq, sql))) => {
                let a = execute(&mut t, &sql);
                answer(slot, generation, seq, &a);
            }
            Some(None) => {
                nap(100, false);
                // a cancel with no statement running cancels nothing, as for an idle
                // backend; a terminate still ends the session here
                unsafe { (&raw mut pg_sys::QueryCancelPending).write_volatile(0) };
                check_for_interrupts!();
            }
        }
    }
    if unsafe { pg_sys::IsTransactionState() } {
        unsafe { pg_sys::AbortCurrentTransaction() };
    }
    let mut g = SLOTS_SHMEM.exclusive();
    let x = &mut g.slots[slot];
    if x.generation == generation {
        x.state = EXITED;
        x.worker = 0;
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn put_cuts_at_a_character_boundary() {
        let mut buf = [0u8; 4];
        assert_eq!(put(&mut buf, "ab"), 2);
        assert_eq!(get(&buf, 2), "ab");
        // 'é' is two bytes: "aaaé" does not fit in 4, so it is cut before the é
        assert_eq!(put(&mut buf, "aaé"), 4);
        assert_eq!(put(&mut buf, "aaaé"), 3);
        assert_eq!(get(&buf, 3), "aaa");
    }

    #[test]
    fn transactions_behave_as_in_psql() {
        let idle = Txn::default();
        let open = Txn {
            in_block: true,
            failed: false,
        };
        let failed = Txn {
            in_block: true,
            failed: true,
        };
        assert_eq!(decide(Kind::Begin, idle), Action::Begin);
        assert_eq!(decide(Kind::Other, idle), Action::Run);
        assert_eq!(decide(Kind::Other, open), Action::Run);
        assert_eq!(decide(Kind::Other, failed), Action::Refuse);
        assert_eq!(decide(Kind::Commit, open), Action::Commit);
        assert_eq!(decide(Kind::Commit, failed), Action::RollbackFailed);
        assert_eq!(decide(Kind::Rollback, failed), Action::Rollback);
        assert_eq!(decide(Kind::Unsupported, open), Action::Unsupported);
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::{Answer, Sessions, COMMAND_BYTES};
    use pgrx::prelude::*;
    use std::time::Duration;

    fn row(s: &str) -> Answer {
        Answer::Row(s.to_string())
    }

    fn code(a: &Answer) -> &str {
        match a {
            Answer::Failed(c, _) => c,
            Answer::Row(_) => "00000",
        }
    }

    #[pg_test]
    fn a_session_behaves_like_psql() {
        let s = Sessions::default();
        let t = Duration::from_secs(30);
        s.open("t", 1, t);
        let run = |sql: &str| {
            s.send(0, sql);
            s.result(0, t)
        };
        let me = Spi::get_one::<String>("SELECT current_user::text");
        assert!(matches!(&me, Ok(Some(_))), "current_user: {me:?}");
        if let Ok(Some(me)) = me {
            assert_eq!(run("SELECT current_user::text"), Answer::Row(me));
        }
        assert_eq!(run("SELECT 41 + 1"), row("42"));
        assert_eq!(run("SELECT 1 WHERE false"), row(""));
        // the level holds for the whole transaction, then falls back to the default
        assert_eq!(run("BEGIN ISOLATION LEVEL SERIALIZABLE"), row("BEGIN"));
        assert_eq!(run("SHOW transaction_isolation"), row("serializable"));
        // an error fails the transaction, as in psql
        assert_eq!(code(&run("SELECT 1 / 0")), "22012");
        assert_eq!(code(&run("SELECT 1")), "25P02");
        assert_eq!(run("COMMIT"), row("ROLLBACK"));
        assert_eq!(run("SHOW transaction_isolation"), row("read committed"));
        assert_eq!(run("BEGIN READ ONLY"), row("BEGIN"));
        assert_eq!(code(&run("CREATE TEMP TABLE ro (a int)")), "25006");
        assert_eq!(run("ROLLBACK"), row("ROLLBACK"));
        // autocommit, and the command tag when no rows come back
        assert_eq!(run("CREATE TEMP TABLE x (a int)"), row("CREATE TABLE"));
        assert_eq!(run("INSERT INTO x VALUES (1), (2)"), row("INSERT 0 2"));
        assert_eq!(run("UPDATE x SET a = a + 1"), row("UPDATE 2"));
        assert_eq!(run("SELECT sum(a)::text FROM x"), row("5"));
        assert_eq!(code(&run("SELEC 1")), "42601");
        assert_eq!(code(&run("SAVEPOINT a")), "0A000");
        assert_eq!(code(&run("BEGIN; SELECT 1")), "0A000");
        assert_eq!(run("SELECT 1"), row("1"));
        s.close_all();
        assert_eq!(s.count(), 0);
    }

    #[pg_test(error = "a demo session statement is at most 8192 bytes (got 8193)")]
    fn a_long_statement_is_refused() {
        Sessions::default().send(0, &"x".repeat(COMMAND_BYTES + 1));
    }
}
