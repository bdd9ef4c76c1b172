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
//!
//! This file is the coordinator's side (`Sessions`); the slots are in `slots`, the
//! statement rules in `protocol`, the worker in `session_worker`.

pub use super::protocol::Answer;
use super::slots::{
    alive, get, nap, put, release, reserve, wake, DONE, IDLE, PENDING, RUNNING, SLOTS, SLOTS_SHMEM,
};
pub use super::slots::{available, init_shmem, COMMAND_BYTES};
use crate::infra::error::{CapstoneError, Result};
use crate::infra::worker::{self, WorkerIdentity};
use pgrx::bgworkers::{BackgroundWorkerStatus, DynamicBackgroundWorker};
use pgrx::prelude::*;
use std::cell::RefCell;
use std::time::{Duration, Instant};

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
    pub fn open(&self, label: &str, token: i64, timeout: Duration) -> Result<()> {
        let Some((slot, generation)) = reserve() else {
            return Err(CapstoneError::InsufficientResources(format!(
                "all {SLOTS} capstone demo session slots are in use"
            ))
            .with_hint("wait for the running demos to finish"));
        };
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
                return Ok(());
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
                return Err(CapstoneError::PrerequisiteState(format!(
                    "demo session {label} exited before it was ready"
                ))
                .with_hint(format!(
                    "the session connects to this database as {}; see the server log for its error (CONNECT privilege, connection limit)",
                    crate::infra::owner::caller()
                )));
            }
            if started.elapsed() > timeout {
                return Err(
                    CapstoneError::Timeout(format!("demo session {label} did not start"))
                        .with_hint(
                            "capstone.worker_timeout bounds the wait; check max_worker_processes",
                        ),
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
    pub fn send(&self, s: usize, sql: &str) -> Result<()> {
        if sql.len() > COMMAND_BYTES {
            return Err(CapstoneError::InvalidParameter(format!(
                "a demo session statement is at most {COMMAND_BYTES} bytes (got {})",
                sql.len()
            ))
            .into());
        }
        let Some((slot, generation, pid)) = self.with(s, |x| (x.slot, x.generation, x.pid)) else {
            return Err(CapstoneError::PrerequisiteState("no such demo session".into()).into());
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
            return Err(CapstoneError::PrerequisiteState(
                "a demo session stopped accepting statements".into(),
            )
            .into());
        }
        wake(pid);
        Ok(())
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

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::{Answer, Sessions, COMMAND_BYTES};
    use crate::infra::error::OrRaise;
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
        s.open("t", 1, t).or_raise();
        let run = |sql: &str| {
            s.send(0, sql).or_raise();
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
        Sessions::default()
            .send(0, &"x".repeat(COMMAND_BYTES + 1))
            .or_raise();
    }
}
