//! The backfill worker, and the launcher that brings jobs back after a restart.
//!
//! Each job runs in a dynamic background worker connected to the job's database
//! as the job's role. One transaction per batch: `SET LOCAL lock_timeout` and
//! `statement_timeout`, the keyset UPDATE, and the progress row, committed
//! together, so a crash never applies a batch twice or skips one. A lock
//! timeout (55P03) is retried with exponential backoff and jitter up to
//! `max_retries`, after which the job pauses with the reason.
//!
//! New rows inserted after the job started are not chased: the key range is
//! fixed at submit time (`key_hi`), because the expand phase's dual-write
//! trigger already fills the new column for every row written after it was
//! created. Chasing the tail would race the writers it is meant to serve.

use crate::infra::worker::{attach, in_transaction, launch, WorkerIdentity};
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;
use std::time::{Duration, Instant};

static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Has this worker been asked to stop? pgrx's flag is reset when read, so keep it sticky.
pub fn stopping() -> bool {
    if BackgroundWorker::sigterm_received() {
        STOP.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    STOP.load(std::sync::atomic::Ordering::SeqCst)
}

/// Sleep without ignoring cancel requests (caller backends) or SIGTERM (workers).
pub fn sleep_interruptible(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        let left = until
            .saturating_duration_since(Instant::now())
            .as_millis()
            .clamp(1, 100) as i64;
        unsafe {
            pg_sys::WaitLatch(
                pg_sys::MyLatch,
                (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
                left,
                pg_sys::PG_WAIT_EXTENSION,
            );
            pg_sys::ResetLatch(pg_sys::MyLatch);
        }
        if unsafe { !pg_sys::MyBgworkerEntry.is_null() } {
            if stopping() {
                return;
            }
        } else {
            check_for_interrupts!();
        }
    }
}

/// Start the worker for a job (as the caller: the job's role).
pub fn start_job(job: i64) {
    // the worker outlives this call; it is not waited for
    let _handle = launch(
        "backfill",
        "capstone_backfill_main",
        WorkerIdentity::of_caller(job),
    );
}

struct Job {
    rel: String,
    keys: Vec<String>,
    set_clause: String,
    where_clause: Option<String>,
    batch_size: i32,
    lock_ms: i32,
    pause_ms: i32,
    max_retries: i32,
    key_hi: Option<Vec<i64>>,
    last_key: Option<Vec<i64>>,
    relid: pg_sys::Oid,
    /// the submitter's search_path, for the clauses they wrote (NULL: jobs from 0.1.0)
    search_path: Option<String>,
}

enum Batch {
    Done,
    Rows,
    Failed(String, String),
}

fn load_job(id: i64) -> Option<(String, Job)> {
    Spi::connect(|c| {
        let t = c.select(
            "SELECT state, relname, key_columns, set_clause, where_clause, batch_size, lock_timeout_ms, pause_ms,
                    max_retries, key_hi, last_key, relid, search_path
               FROM capstone.backfill_jobs WHERE id = $1",
            Some(1),
            &[id.into()],
        )?;
        if t.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        let r = t.first();
        Ok(Some((
            r.get::<String>(1)?.unwrap_or_default(),
            Job {
                rel: r.get::<String>(2)?.unwrap_or_default(),
                keys: r.get::<Vec<String>>(3)?.unwrap_or_default(),
                set_clause: r.get::<String>(4)?.unwrap_or_default(),
                where_clause: r.get::<String>(5)?,
                batch_size: r.get::<i32>(6)?.unwrap_or(1000),
                lock_ms: r.get::<i32>(7)?.unwrap_or(500),
                pause_ms: r.get::<i32>(8)?.unwrap_or(0),
                max_retries: r.get::<i32>(9)?.unwrap_or(10),
                key_hi: r.get::<Vec<i64>>(10)?,
                last_key: r.get::<Vec<i64>>(11)?,
                relid: r.get::<pg_sys::Oid>(12)?.unwrap_or(pg_sys::InvalidOid),
                search_path: r.get::<String>(13)?,
            },
        )))
    })
    .ok()
    .flatten()
}

fn finish(id: i64, state: &str, error: Option<String>) {
    let _ = in_transaction(|| {
        crate::infra::owner::write(|| {
            Spi::run_with_args(
            "UPDATE capstone.backfill_jobs
                SET state = CASE WHEN state IN ('cancelled', 'paused') AND $2 <> 'failed' THEN state ELSE $2 END,
                    last_error = coalesce($3, last_error), worker_pid = NULL, updated_at = clock_timestamp(),
                    finished_at = CASE WHEN $2 IN ('done', 'failed') THEN clock_timestamp() ELSE finished_at END
              WHERE id = $1",
            &[id.into(), state.into(), error.into()],
        )
        })
    });
    flush_wal();
}

/// One batch, with its progress, in one transaction.
fn run_batch(id: i64, job: &Job, retries: i32, timeouts: i32) -> Batch {
    let first = job.last_key.is_none();
    let (bound_sql, update_sql) = super::batch::batch_sql(
        &job.rel,
        &job.keys,
        &job.set_clause,
        job.where_clause.as_deref(),
        first,
    );
    let started = Instant::now();
    let r = in_transaction(|| {
        Spi::run(&format!("SET LOCAL lock_timeout = '{}ms'", job.lock_ms))?;
        Spi::run(&format!(
            "SET LOCAL statement_timeout = '{}ms'",
            job.lock_ms.saturating_mul(20).max(60_000)
        ))?;
        // the clauses resolve names as they did for the submitter at backfill_start
        if let Some(path) = &job.search_path {
            Spi::run_with_args(
                "SELECT pg_catalog.set_config('search_path', $1, true)",
                &[path.clone().into()],
            )?;
        }
        // the batch's last key; no row at all means the range is exhausted
        let last = Spi::connect(|c| {
            let t = c.select(
                &bound_sql,
                Some(1),
                &[
                    job.last_key.clone().into(),
                    job.key_hi.clone().into(),
                    (job.batch_size as i64).into(),
                ],
            )?;
            if t.is_empty() {
                Ok::<_, pgrx::spi::Error>(None)
            } else {
                t.first().get::<Vec<i64>>(1)
            }
        })?;
        let rows = match &last {
            Some(upper) => Spi::get_one_with_args::<i64>(
                &update_sql,
                &[job.last_key.clone().into(), upper.clone().into()],
            )?
            .unwrap_or(0),
            None => 0,
        };
        // the bookkeeping below is capstone's own record, written as its tables' owner
        // under the pinned path (crate::infra::owner::write)
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match last {
            None => {
                crate::infra::owner::write(|| {
                    Spi::run_with_args(
                    "UPDATE capstone.backfill_jobs SET state = 'done', finished_at = clock_timestamp(),
                            updated_at = clock_timestamp(), worker_pid = NULL WHERE id = $1",
                    &[id.into()],
                )
                })?;
                Ok::<_, pgrx::spi::Error>(false)
            }
            Some(last) => {
                crate::infra::owner::write(|| {
                    Spi::run_with_args(
                    "WITH j AS (UPDATE capstone.backfill_jobs
                                   SET last_key = $2, rows_done = rows_done + $3, batches_done = batches_done + 1,
                                       updated_at = clock_timestamp()
                                 WHERE id = $1 RETURNING batches_done)
                     INSERT INTO capstone.backfill_batches (job_id, batch_no, key_from, key_to, rows, ms, retries, lock_timeouts)
                     SELECT $1, batches_done, $4, $2, $3::int, $7, $5, $6 FROM j",
                    &[
                        id.into(),
                        last.into(),
                        rows.into(),
                        job.last_key.clone().into(),
                        retries.into(),
                        timeouts.into(),
                        ms.into(),
                    ],
                )
                })?;
                Ok(true)
            }
        }
    });
    match r {
        Ok(Ok(true)) => Batch::Rows,
        Ok(Ok(false)) => Batch::Done,
        Ok(Err(e)) => Batch::Failed("XX000".into(), e.to_string()),
        Err((code, msg)) => Batch::Failed(code, msg),
    }
}

/// Wait until every WAL record this worker wrote is on disk (its asynchronous commits
/// included), as a synchronous commit would have.
fn flush_wal() {
    // SAFETY: plain backend calls; XLogFlush takes the WAL write lock itself
    unsafe { pg_sys::XLogFlush(pg_sys::GetXLogInsertRecPtr()) };
}

/// Backoff before retry `n` (1-based): exponential from 50 ms, capped at 5 s, with jitter.
pub fn backoff(n: i32, seed: u64) -> Duration {
    let base = (50u64 << (n.clamp(1, 7) as u32)).min(5000);
    let jitter = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add((n as u64).wrapping_mul(1442695040888963407))
        % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn capstone_backfill_main(_arg: pg_sys::Datum) {
    let Some(ident) = attach() else {
        log!("capstone backfill worker: malformed bgw_extra, exiting");
        return;
    };
    let id = ident.token;
    // the submitting transaction may not have committed yet: wait for the job row
    let start = Instant::now();
    let job = loop {
        if stopping() {
            return;
        }
        let j = in_transaction(|| load_job(id)).ok().flatten();
        if let Some(j) = j {
            break j;
        }
        if start.elapsed() > Duration::from_secs(60) {
            log!("capstone backfill worker: job {id} never became visible (the submitting transaction rolled back?)");
            return;
        }
        sleep_interruptible(Duration::from_millis(50));
    };
    let (state, mut job) = job;
    if !matches!(state.as_str(), "queued" | "running") {
        return;
    }
    // one worker per job, whoever started it
    let owner = in_transaction(|| {
        Spi::get_one_with_args::<bool>(
            "SELECT pg_try_advisory_lock(hashtext('capstone.backfill'), $1::int)",
            &[(id as i32).into()],
        )
    });
    if !matches!(owner, Ok(Ok(Some(true)))) {
        return;
    }
    // the role's privilege is checked again now: it may have been revoked since submit
    let ok = in_transaction(|| {
        Spi::get_one_with_args::<bool>(
            "SELECT has_table_privilege($1, 'UPDATE')",
            &[job.relid.into()],
        )
    });
    if !matches!(ok, Ok(Ok(Some(true)))) {
        finish(
            id,
            "failed",
            Some("42501: the job's role may no longer UPDATE the table".into()),
        );
        return;
    }
    let _ = in_transaction(|| {
        crate::infra::owner::write(|| {
            Spi::run_with_args(
            "UPDATE capstone.backfill_jobs SET state = 'running', worker_pid = pg_backend_pid(),
                    started_at = coalesce(started_at, clock_timestamp()), updated_at = clock_timestamp()
              WHERE id = $1 AND state IN ('queued', 'running')",
            &[id.into()],
        )
        })
    });
    // A batch's rows and its progress row commit together, so a commit lost in a crash
    // loses both and the job redoes that batch from the last durable key: nothing is
    // done twice or skipped. The worker therefore need not wait for each commit's WAL
    // flush (the one fixed cost per batch); the last batch's "done" is flushed below.
    let _ = in_transaction(|| Spi::run("SET synchronous_commit = off"));
    let seed = unsafe { pg_sys::MyProcPid as u64 };
    loop {
        if stopping() {
            // leave the job 'running': the launcher resumes it after a restart
            return;
        }
        // pause and cancel are seen between batches
        match in_transaction(|| load_job(id)).ok().flatten() {
            Some((s, j)) if s == "running" => job = j,
            Some((s, j)) if s == "queued" => job = j,
            _ => return,
        }
        let mut retries = 0;
        let mut timeouts = 0;
        let outcome = loop {
            match run_batch(id, &job, retries, timeouts) {
                Batch::Failed(code, msg)
                    if code == "55P03" || code == "40P01" || code == "40001" =>
                {
                    retries += 1;
                    if code == "55P03" {
                        timeouts += 1;
                    }
                    // visible at once in backfill_status, not only when the batch finally commits
                    let timeout = i32::from(code == "55P03");
                    let _ = in_transaction(|| {
                        crate::infra::owner::write(|| {
                            Spi::run_with_args(
                            "UPDATE capstone.backfill_jobs SET retries = retries + 1, lock_timeouts = lock_timeouts + $2,
                                    last_error = $3, updated_at = clock_timestamp() WHERE id = $1",
                            &[id.into(), timeout.into(), format!("{code}: {msg} (retrying)").into()],
                        )
                        })
                    });
                    if retries > job.max_retries {
                        break Some((
                            "paused",
                            format!("{code}: {msg} (gave up after {} retries)", job.max_retries),
                        ));
                    }
                    sleep_interruptible(backoff(retries, seed));
                    if stopping() {
                        return;
                    }
                }
                Batch::Failed(code, msg) => break Some(("failed", format!("{code}: {msg}"))),
                Batch::Done => break Some(("done", String::new())),
                Batch::Rows => break None,
            }
        };
        match outcome {
            Some(("done", _)) => {
                // the job's end is reported durably: backfill_status never reverts to running
                flush_wal();
                return;
            }
            Some((state, err)) => {
                finish(id, state, Some(err));
                return;
            }
            None => {}
        }
        if job.pause_ms > 0 {
            sleep_interruptible(Duration::from_millis(job.pause_ms as u64));
        }
    }
}

/// Registered from `_PG_init` when capstone is preloaded: after every (re)start of
/// the server, and every `capstone.backfill_naptime`, it starts a short-lived
/// recovery worker per database, which restarts unfinished jobs.
pub fn register_launcher() {
    BackgroundWorkerBuilder::new("capstone launcher")
        .set_type("capstone launcher")
        .set_library("capstone")
        .set_function("capstone_launcher_main")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(10)))
        .load();
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn capstone_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let db = crate::infra::gucs::launcher_database();
    BackgroundWorker::connect_worker_to_spi(Some(&db), None);
    loop {
        let dbs = in_transaction(|| {
            Spi::connect(|c| {
                let mut v = Vec::new();
                for r in c.select(
                    "SELECT oid FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate",
                    None,
                    &[],
                )? {
                    if let Some(o) = r.get::<pg_sys::Oid>(1)? {
                        v.push(o.to_u32());
                    }
                }
                Ok::<_, pgrx::spi::Error>(v)
            })
        });
        if let Ok(Ok(dbs)) = dbs {
            for d in dbs {
                let ident = WorkerIdentity {
                    database: d,
                    role: 0,
                    token: 0,
                };
                let b = BackgroundWorkerBuilder::new(&format!("capstone recovery {d}"))
                    .set_type("capstone recovery")
                    .set_library("capstone")
                    .set_function("capstone_recovery_main")
                    .set_extra(&ident.encode())
                    .enable_spi_access();
                let _ = b.load_dynamic();
            }
        }
        let nap = crate::infra::gucs::backfill_naptime_ms().max(1000) as u64;
        let until = Instant::now() + Duration::from_millis(nap);
        while Instant::now() < until {
            sleep_interruptible(Duration::from_millis(200));
            if stopping() {
                return;
            }
        }
    }
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn capstone_recovery_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let Some(ident) = WorkerIdentity::decode(BackgroundWorker::get_extra()) else {
        return;
    };
    // the bootstrap superuser reads the job table (row-level security is bypassed);
    // each job worker then runs as the job's own role
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(ident.database)), None);
    let jobs = in_transaction(|| {
        let installed =
            Spi::get_one::<bool>("SELECT to_regclass('capstone.backfill_jobs') IS NOT NULL")?
                .unwrap_or(false);
        if !installed {
            return Ok::<_, pgrx::spi::Error>(vec![]);
        }
        let max = crate::infra::gucs::backfill_max_workers() as i64;
        Spi::connect(|c| {
            let mut v = Vec::new();
            for r in c.select(
                "WITH live AS (SELECT pid FROM pg_catalog.pg_stat_activity WHERE backend_type = 'capstone backfill')
                 SELECT id, role_oid FROM capstone.backfill_jobs j
                  WHERE state IN ('running', 'queued')
                    AND (worker_pid IS NULL OR worker_pid NOT IN (SELECT pid FROM live))
                  ORDER BY (state = 'running') DESC, id
                  LIMIT greatest($1 - (SELECT count(*) FROM live), 0)",
                None,
                &[max.into()],
            )? {
                if let (Some(id), Some(role)) = (r.get::<i64>(1)?, r.get::<pg_sys::Oid>(2)?) {
                    v.push((id, role.to_u32()));
                }
            }
            Ok(v)
        })
    });
    if let Ok(Ok(jobs)) = jobs {
        for (id, role) in jobs {
            let ident = WorkerIdentity {
                database: ident.database,
                role,
                token: id,
            };
            let b = BackgroundWorkerBuilder::new(&format!("capstone backfill {id}"))
                .set_type("capstone backfill")
                .set_library("capstone")
                .set_function("capstone_backfill_main")
                .set_extra(&ident.encode())
                .enable_spi_access();
            match b.load_dynamic() {
                Ok(_) => {}
                Err(_) => {
                    log!("capstone recovery: no worker slot for backfill job {id}; will retry")
                }
            }
        }
    }
}

#[cfg(test)]
mod unit {
    use super::backoff;

    #[test]
    fn backoff_grows_and_is_capped() {
        let a = backoff(1, 7).as_millis();
        let b = backoff(4, 7).as_millis();
        let c = backoff(40, 7).as_millis();
        assert!((50..=100).contains(&a), "{a}");
        assert!(b >= 400, "{b}");
        assert!(c <= 5000, "{c}");
    }
}
