//! The migration gate's SQL surface: an in-database backfill worker for expand-contract
//! changes, DDL that never queues behind a table lock, and lock evidence. Argument
//! checks, calls and result rows only; the work lives in the files beside it, and
//! errors from there are raised here.
//!
//! - `backfill_start` validates the change under the caller's privileges and queues a
//!   job (`clauses.rs`, `jobs.rs`); a dynamic background worker runs it as the caller,
//!   one transaction per keyset batch (`batch.rs`, `worker.rs`).
//! - `safe_ddl` runs one DDL statement under `lock_timeout` with retries and backoff,
//!   logging every attempt (`safe_ddl.rs`), and warns about known-dangerous forms
//!   (`warnings.rs`).
//! - `lock_snapshot` / `lock_watch` show who waits on whom (`locks.rs`).

// pgrx needs each result row spelled out as a name!() tuple in the signature
#![allow(clippy::type_complexity)]

pub mod batch;
mod clauses;
mod jobs;
pub mod lint;
mod locks;
mod safe_ddl;
pub mod worker;

use crate::infra::error::{
    check_choice, check_range, notice, required, warning, CapstoneError, Failure, OrRaise,
};
use crate::infra::regclass::{self, RegClass};
use pgrx::datetime::Interval;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;

/// What a migration step stops with: capstone's own error, or the server's error from
/// the caller's SQL (the clauses, the DDL), re-raised unchanged at the surface.
pub enum Stop {
    Failure(Failure),
    Server(Box<CaughtError>),
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Self {
        Stop::Failure(f)
    }
}

impl From<CapstoneError> for Stop {
    fn from(e: CapstoneError) -> Self {
        Stop::Failure(e.into())
    }
}

/// Raise a step's [`Stop`] at the SQL surface.
trait OrRethrow<T> {
    fn or_rethrow(self) -> T;
}

impl<T> OrRethrow<T> for std::result::Result<T, Stop> {
    fn or_rethrow(self) -> T {
        match self {
            Ok(v) => v,
            Err(Stop::Failure(f)) => Err::<T, _>(f).or_raise(),
            Err(Stop::Server(e)) => (*e).rethrow(),
        }
    }
}

pub fn interval_ms(i: &Interval) -> i64 {
    (i.as_micros() / 1000).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Queue a backfill of `rel`: `UPDATE rel SET set_clause WHERE where_clause`, in
/// keyset batches, one transaction each, by a background worker running as you.
#[pg_extern(volatile, parallel_unsafe)]
fn backfill_start(
    rel: Option<RegClass>,
    set_clause: Option<String>,
    where_clause: default!(Option<String>, "NULL"),
    batch_size: default!(Option<i32>, 1000),
    lock_timeout: default!(Option<Interval>, "'500ms'"),
    pause: default!(Option<Interval>, "'0'"),
    max_retries: default!(Option<i32>, 10),
) -> i64 {
    crate::infra::search_path::guarded(|| {
        let rel = regclass::lookup(required(rel, "rel"));
        let set_clause = required(set_clause, "set_clause");
        if set_clause.trim().is_empty() {
            Err::<(), _>(
                CapstoneError::InvalidParameter("set_clause must not be empty".into())
                    .with_hint("e.g. 'name_first = split_part(full_name, '' '', 1)'"),
            )
            .or_raise();
        }
        let where_clause = where_clause.filter(|w| !w.trim().is_empty());
        let batch_size = check_range("batch_size", batch_size.unwrap_or(1000), 1, 1_000_000);
        let lock_ms = check_range(
            "lock_timeout (ms)",
            lock_timeout.as_ref().map(interval_ms).unwrap_or(500),
            1,
            3_600_000,
        );
        let pause_ms = check_range(
            "pause (ms)",
            pause.as_ref().map(interval_ms).unwrap_or(0),
            0,
            3_600_000,
        );
        let max_retries = check_range("max_retries", max_retries.unwrap_or(10), 0, 1000);
        let kind = match rel.relkind.as_str() {
            "r" => Ok(()),
            "p" => Err(CapstoneError::WrongObjectType(format!("{} is a partitioned table", rel.qualified))
                .with_hint("backfill each partition: SELECT capstone.backfill_start(p, ...) FROM pg_partition_tree(...) WHERE isleaf")),
            k => Err(CapstoneError::WrongObjectType(format!("{} is not a table (relkind {k})", rel.qualified))
                .with_hint("backfill the table a view or index belongs to")),
        };
        kind.or_raise();
        if !jobs::may_update(rel.oid) {
            Err::<(), _>(
                CapstoneError::InsufficientPrivilege(format!(
                    "permission denied: UPDATE on {}",
                    rel.qualified
                ))
                .with_hint(
                    "the backfill runs as you; you need to own the table or hold UPDATE on it",
                ),
            )
            .or_raise();
        }
        let keys = jobs::find_key(rel.oid)
            .ok_or_else(|| {
                CapstoneError::PrerequisiteState(format!("{} has no usable key for keyset batches", rel.qualified)).with(
                    "a backfill needs a primary key or unique index of NOT NULL integer columns (at most 4), so each batch is an index range, never OFFSET",
                    "add one first, e.g. ALTER TABLE ... ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
                )
            })
            .or_raise();
        let check = clauses::validate_update(&rel.qualified, &set_clause, where_clause.as_deref())
            .or_raise();
        // column, type and permission errors surface now, as the caller
        if jobs::dry_run(&check).or_rethrow() == jobs::DryRun::Locked {
            // that is what the job's retries are for
            notice(format!(
                "{} is locked by another session; the clauses will be checked by the first batch",
                rel.qualified
            ));
        }
        let key_hi = jobs::key_hi(&rel.qualified, &keys).or_rethrow();
        let id = jobs::insert(jobs::NewJob {
            relid: rel.oid,
            relname: &rel.qualified,
            keys: &keys,
            set_clause,
            where_clause,
            batch_size,
            lock_ms,
            pause_ms,
            max_retries,
            key_hi,
        })
        .or_raise();
        // start now if a worker slot is free; otherwise the launcher starts it later
        if jobs::running() < crate::infra::gucs::backfill_max_workers() as i64 {
            worker::start_job(id);
        }
        id
    })
}

/// Progress of backfill jobs: %, rows/s, ETA, retries, state.
#[pg_extern(stable, parallel_safe)]
fn backfill_status(
    job: default!(Option<i64>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(job, i64),
        name!(relation, String),
        name!(state, String),
        name!(rows_done, i64),
        name!(rows_estimate, i64),
        name!(pct, Option<f64>),
        name!(rows_per_s, Option<f64>),
        name!(eta, Option<String>),
        name!(batches, i32),
        name!(retries, i32),
        name!(lock_timeouts, i32),
        name!(last_error, Option<String>),
        name!(role, String),
    ),
> {
    if let Some(j) = job {
        jobs::check_exists(j).or_raise();
    }
    TableIterator::new(jobs::status(job))
}

/// Pause a job: its worker stops after the current batch; progress is kept.
#[pg_extern(volatile, parallel_unsafe)]
fn backfill_pause(job: Option<i64>) -> String {
    jobs::set_state(required(job, "job"), &["queued", "running"], "paused").or_raise()
}

/// Resume a paused (or failed) job from its last committed batch.
#[pg_extern(volatile, parallel_unsafe)]
fn backfill_resume(job: Option<i64>) -> String {
    let s = jobs::set_state(required(job, "job"), &["paused", "failed"], "queued").or_raise();
    worker::start_job(job.unwrap_or(0));
    s
}

/// Cancel a job: its worker stops after the current batch; committed batches stay.
#[pg_extern(volatile, parallel_unsafe)]
fn backfill_cancel(job: Option<i64>) -> String {
    jobs::set_state(
        required(job, "job"),
        &["queued", "running", "paused", "failed"],
        "cancelled",
    )
    .or_raise()
}

/// Run one DDL statement under lock_timeout, retrying with backoff, so it never
/// waits in the lock queue blocking everyone behind it. Returns one row per attempt.
#[pg_extern(volatile, parallel_unsafe)]
fn safe_ddl(
    ddl: Option<String>,
    lock_timeout: default!(Option<Interval>, "'500ms'"),
    max_retries: default!(Option<i32>, 10),
    allow: default!(Option<Vec<String>>, "ARRAY[]::text[]"),
    dry_run: default!(Option<bool>, false),
) -> TableIterator<
    'static,
    (
        name!(attempt, i32),
        name!(waited_ms, f64),
        name!(outcome, String),
        name!(risk, String),
        name!(warnings, Vec<String>),
    ),
> {
    crate::infra::search_path::guarded(|| {
        let ddl = required(ddl, "ddl");
        let ddl = ddl.trim().trim_end_matches(';').trim().to_string();
        if ddl.is_empty() {
            Err::<(), _>(CapstoneError::InvalidParameter(
                "ddl must not be empty".into(),
            ))
            .or_raise();
        }
        let lock_ms = check_range(
            "lock_timeout (ms)",
            lock_timeout.as_ref().map(interval_ms).unwrap_or(500),
            1,
            600_000,
        );
        let max_retries = check_range("max_retries", max_retries.unwrap_or(10), 0, 100);
        let stmt = safe_ddl::classify(&ddl).or_raise();
        // the text and errors kept in capstone.ddl_attempts
        let (logged_ddl, redacted) = match stmt.secret {
            Some(kind) => (
                format!(
                    "{kind} … (redacted: the statement may carry a password or connection string)"
                ),
                true,
            ),
            None => (ddl.clone(), false),
        };
        let allow = allow.unwrap_or_default();
        for a in &allow {
            check_choice("allow", a, &["rewrite", "scan"]);
        }
        // the statement runs in this session: its statement_timeout is the one in force
        let mut settings = lint::settings(lint::SMALL_TABLE_BYTES, lint::THROUGHPUT_MB_S);
        settings.statement_timeout = lint::catalog::statement_timeout_in_force();
        let found = lint::findings(&ddl, settings).or_raise();
        let warnings = safe_ddl::warnings(&found);
        let (bytes, rows) = safe_ddl::target_size(stmt.target.as_deref());
        let risk = safe_ddl::risk(warnings.len(), bytes, rows);
        let refusal = safe_ddl::refusal(&found, &allow, lint::SMALL_TABLE_BYTES);
        if dry_run.unwrap_or(false) {
            let outcome = match &refusal {
                Some(f) => format!("dry run: would be refused ({})", f.finding.rule),
                None => "dry run: not applied".to_string(),
            };
            return TableIterator::new(vec![(0, 0.0, outcome, risk, warnings)]);
        }
        if let Some(f) = refusal {
            safe_ddl::refuse(f).raise();
        }
        for w in &warnings {
            warning(format!("safe_ddl: {w}"));
        }
        let out = safe_ddl::run(&safe_ddl::Attempts {
            ddl: &ddl,
            logged_ddl: &logged_ddl,
            redacted,
            lock_ms,
            max_retries,
            risk: &risk,
            warnings: &warnings,
        })
        .or_rethrow();
        TableIterator::new(out)
    })
}

/// Who holds and who waits for which lock right now, and how many sessions queue behind each.
#[pg_extern(volatile, parallel_safe)]
fn lock_snapshot() -> TableIterator<
    'static,
    (
        name!(pid, i32),
        name!(role, Option<String>),
        name!(mode, String),
        name!(object, String),
        name!(granted, bool),
        name!(waiting_ms, Option<f64>),
        name!(blocked_by, Vec<i32>),
        name!(queued_behind, i32),
        name!(query, Option<String>),
    ),
> {
    unsafe { pg_sys::pgstat_clear_snapshot() };
    TableIterator::new(
        locks::snapshot()
            .into_iter()
            .map(|r| (r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8)),
    )
}

/// Sample lock_snapshot every `every` for `duration`; store the samples as evidence.
#[pg_extern(volatile, parallel_unsafe)]
fn lock_watch(
    duration: default!(Option<Interval>, "'10 s'"),
    every: default!(Option<Interval>, "'100 ms'"),
    label: default!(Option<String>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(sample, i32),
        name!(at_ms, f64),
        name!(waiting, i32),
        name!(max_wait_ms, Option<f64>),
        name!(max_queue, i32),
        name!(max_wait_behind_ddl_ms, Option<f64>),
        name!(blocked, Vec<String>),
    ),
> {
    let dur = check_range(
        "duration (ms)",
        duration.as_ref().map(interval_ms).unwrap_or(10_000),
        1,
        3_600_000,
    );
    let step = check_range(
        "every (ms)",
        every.as_ref().map(interval_ms).unwrap_or(100),
        10,
        60_000,
    );
    TableIterator::new(locks::watch(dur, step, label.as_deref()))
}
