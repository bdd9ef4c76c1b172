//! The driver: the calling backend runs a script on its sessions one statement at a
//! time, and the interleaving is deterministic without sleeps. A statement is sent and
//! the driver waits until it has finished or is blocked (pg_blocking_pids, or
//! pg_safe_snapshot_blocking_pids for a DEFERRABLE snapshot); when the next statement in
//! script order belongs to a blocked session, another session's next statement runs
//! instead. It reports what each statement did; verdicts are the cases' own.

use super::catalogue;
use super::rows::{session_label, Row};
use super::session;
use crate::infra::error::{CapstoneError, Result};
use pgrx::prelude::*;
use std::time::{Duration, Instant};

/// One statement of the script.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 0 = session A, 1 = session B, 2 = session C.
    pub session: usize,
    /// names the statement for the verdict (empty where the verdict reads only the final state)
    pub label: &'static str,
    pub sql: String,
}

/// The two sessions, driven by the calling backend.
pub struct Driver {
    pub sessions: session::Sessions,
    pub timeout: Duration,
}

/// How one statement ended.
pub enum Ended {
    Row(String),
    Failed(String, String),
}

impl From<session::Answer> for Ended {
    fn from(a: session::Answer) -> Ended {
        match a {
            session::Answer::Row(v) => Ended::Row(v),
            session::Answer::Failed(c, m) => Ended::Failed(c, m),
        }
    }
}

impl Driver {
    pub fn connect(&self, label: &str, token: i64) -> Result<()> {
        self.sessions.open(label, token, self.timeout)
    }

    pub fn send(&self, s: usize, sql: &str) -> Result<()> {
        self.sessions.send(s, sql)
    }

    pub fn busy(&self, s: usize) -> bool {
        self.sessions.busy(s)
    }

    /// Whether session `s` is blocked, and by whom: pg_blocking_pids for a lock wait,
    /// pg_safe_snapshot_blocking_pids for a READ ONLY DEFERRABLE snapshot wait. Never a
    /// timeout: a statement that is merely slow is not blocked.
    fn waiting(&self, s: usize) -> Option<Wait> {
        let pid = self.sessions.pid(s);
        let (locks, safe) = Spi::get_two_with_args::<Vec<i32>, Vec<i32>>(
            "SELECT pg_catalog.pg_blocking_pids($1), pg_catalog.pg_safe_snapshot_blocking_pids($1)",
            &[pid.into()],
        )
        .ok()?;
        let (locks, safe) = (locks.unwrap_or_default(), safe.unwrap_or_default());
        let safe_snapshot = locks.is_empty() && !safe.is_empty();
        let pids = if safe_snapshot { safe } else { locks };
        if pids.is_empty() {
            return None;
        }
        let mut w = Wait {
            safe_snapshot,
            ..Default::default()
        };
        for p in pids {
            match (0..self.sessions.count()).find(|&k| self.sessions.pid(k) == p) {
                Some(k) => w.sessions.push(k),
                None => w.others.push(p),
            }
        }
        Some(w)
    }

    /// Collect a finished statement's result (first column of the first row, or the command tag).
    pub fn result(&self, s: usize) -> Ended {
        self.sessions.result(s, self.timeout).into()
    }

    fn tick() {
        crate::infra::worker::wait_latch(1);
        check_for_interrupts!();
    }

    /// Run one statement synchronously (setup/teardown).
    pub fn exec(&self, s: usize, sql: &str) -> Result<Ended> {
        self.send(s, sql)?;
        Ok(self.result(s))
    }

    pub fn disconnect_all(&self) {
        self.sessions.close_all();
    }
}

/// What a blocked statement waits for: the sessions (and any other backends) holding it up.
#[derive(Clone, Default)]
struct Wait {
    sessions: Vec<usize>,
    others: Vec<i32>,
    /// a SERIALIZABLE READ ONLY DEFERRABLE snapshot wait, not a lock
    safe_snapshot: bool,
}

impl Wait {
    fn who(&self) -> String {
        let mut v: Vec<String> = self
            .sessions
            .iter()
            .map(|&s| format!("session {}", session_label(s)))
            .collect();
        v.extend(self.others.iter().map(|p| format!("pid {p}")));
        v.join(" and ")
    }

    fn note(&self, failed: bool) -> String {
        let when = if failed { "after waiting" } else { "waited" };
        if self.safe_snapshot {
            format!("{when} for a safe snapshot until {} finished", self.who())
        } else if self.sessions.len() + self.others.len() > 1 {
            format!("{when} for the locks of {}", self.who())
        } else {
            format!("{when} for {}'s lock", self.who())
        }
    }
}

/// A statement in flight: script index, send time, send order, and what it waited for.
#[derive(Clone)]
struct InFlight {
    idx: usize,
    since: Instant,
    order: i32,
    waited: Option<Wait>,
}

fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Run the script on `n` sessions; the result rows in send order and, per statement, what
/// it observed (for the verdict).
pub fn run_script(d: &Driver, steps: &[Step], n: usize) -> Result<(Vec<Row>, Vec<catalogue::Obs>)> {
    let mut rows: Vec<Row> = Vec::new();
    let mut obs: Vec<catalogue::Obs> = Vec::new();
    let mut done = vec![false; steps.len()];
    let mut pending: Vec<Option<InFlight>> = vec![None; n];
    let mut aborted = vec![false; n];
    let started = Instant::now();
    let mut order = 0;
    let finish = |f: InFlight,
                  ended: Ended,
                  rows: &mut Vec<Row>,
                  obs: &mut Vec<catalogue::Obs>,
                  aborted: &mut Vec<bool>| {
        let st = &steps[f.idx];
        let mut o = catalogue::Obs {
            session: st.session,
            label: st.label,
            sent: f.order,
            ..Default::default()
        };
        if let Some(w) = &f.waited {
            o.waited_for = w.sessions.clone();
            o.safe_snapshot = w.safe_snapshot;
        }
        let (result, code) = match ended {
            Ended::Row(v) => {
                o.value = Some(v.clone());
                match &f.waited {
                    Some(w) => (Some(format!("{v} ({})", w.note(false))), None),
                    None => (Some(v), None),
                }
            }
            Ended::Failed(c, m) => {
                aborted[st.session] = true;
                o.code = Some(c.clone());
                let m = match &f.waited {
                    Some(w) => format!("{m} ({})", w.note(true)),
                    None => m,
                };
                (Some(m), Some(c))
            }
        };
        obs.push(o);
        rows.push(Row {
            step: f.order,
            session: session_label(st.session),
            statement: one_line(&st.sql),
            result,
            sqlstate: code,
            wait_ms: f.since.elapsed().as_secs_f64() * 1000.0,
        });
    };
    while done.iter().any(|d| !d) {
        if started.elapsed() > d.timeout {
            return Err(CapstoneError::Timeout("the demo script did not finish".into())
                .with_hint("capstone.worker_timeout bounds the demo; see pg_stat_activity for capstone_demo sessions"));
        }
        // collect statements that finished
        for (s, slot) in pending.iter_mut().enumerate() {
            if slot.is_some() && !d.busy(s) {
                if let Some(f) = slot.take() {
                    let ended = d.result(s);
                    done[f.idx] = true;
                    finish(f, ended, &mut rows, &mut obs, &mut aborted);
                }
            }
        }
        // which sessions are blocked now, asked once per round
        let blocked: Vec<bool> = (0..n)
            .map(|s| pending[s].is_some() && d.waiting(s).is_some())
            .collect();
        // the next statement in script order whose session is free, and every other
        // session has either finished everything before it or is blocked
        let next = (0..steps.len()).find(|&k| {
            if done[k] || pending.iter().any(|p| p.as_ref().map(|f| f.idx) == Some(k)) {
                return false;
            }
            let s = steps[k].session;
            pending[s].is_none()
                && (0..k).all(|j| {
                    let o = steps[j].session;
                    done[j] || (o != s && blocked[o])
                })
        });
        let Some(k) = next else {
            Driver::tick();
            continue;
        };
        let s = steps[k].session;
        order += 1;
        let is_rollback = steps[k].sql == "ROLLBACK";
        if aborted[s] && !is_rollback {
            // an aborted transaction only accepts ROLLBACK
            if steps[k].sql == "COMMIT" {
                let f = InFlight {
                    idx: k,
                    since: Instant::now(),
                    order,
                    waited: None,
                };
                let ended = d.exec(s, "ROLLBACK")?;
                finish(f, ended, &mut rows, &mut obs, &mut aborted);
                if let Some(r) = rows.last_mut() {
                    r.statement = "ROLLBACK (the transaction had failed)".into();
                }
                aborted[s] = false;
            } else {
                rows.push(Row {
                    step: order,
                    session: session_label(s),
                    statement: one_line(&steps[k].sql),
                    result: Some("skipped: the transaction had failed".into()),
                    sqlstate: None,
                    wait_ms: 0.0,
                });
                obs.push(catalogue::Obs {
                    session: s,
                    label: steps[k].label,
                    sent: order,
                    skipped: true,
                    ..Default::default()
                });
            }
            done[k] = true;
            continue;
        }
        if is_rollback {
            aborted[s] = false;
        }
        d.send(s, &steps[k].sql)?;
        let mut f = InFlight {
            idx: k,
            since: Instant::now(),
            order,
            waited: None,
        };
        // wait until it finishes or blocks: that makes the interleaving deterministic
        while d.busy(s) {
            if let Some(w) = d.waiting(s) {
                f.waited = Some(w);
                break;
            }
            if f.since.elapsed() > d.timeout {
                break;
            }
            Driver::tick();
        }
        pending[s] = Some(f);
    }
    rows.sort_by_key(|r| r.step);
    Ok((rows, obs))
}
