//! A demo session's own side: the background worker that waits on its slot, runs each
//! statement with psql's transaction behaviour (BEGIN with its level before any snapshot,
//! a failed statement fails the block, COMMIT of a failed block rolls back) and answers.
//! It never raises to the coordinator: every error becomes an answer.

use super::protocol::{decide, parse, Action, Answer, Txn};
use super::slots::{
    alive, available, get, nap, put, wake, DONE, EXITED, IDLE, PENDING, RUNNING, SLOTS,
    SLOTS_SHMEM, STARTING,
};
use crate::infra::subxact::{self, Outcome};
use crate::infra::worker;
use pgrx::bgworkers::BackgroundWorker;
use pgrx::prelude::*;

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
    worker::die_on_sigterm();
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
