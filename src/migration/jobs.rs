//! The backfill job row: SPI reads and writes of `capstone.backfill_jobs` for
//! start, status, pause, resume and cancel (the key, the key range, the dry run, the
//! job record). Errors are returned, never raised: the SQL surface in `mod.rs` raises.

use super::Stop;
use crate::infra::error::{CapstoneError, Result};
use crate::infra::subxact::{self, Outcome};
use pgrx::prelude::*;

/// Columns of the best keyset key: the primary key or a unique, non-partial,
/// NOT NULL btree index of integer columns (at most 4), fewest columns first.
pub fn find_key(oid: pg_sys::Oid) -> Option<Vec<String>> {
    Spi::get_one_with_args::<Vec<String>>(
        "SELECT array_agg(a.attname::text ORDER BY k.ord)
           FROM pg_catalog.pg_index i
           CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
           JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
          WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
          GROUP BY i.indexrelid, i.indisprimary
         HAVING bool_and(a.attnotnull AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype))
            AND count(*) <= 4
          ORDER BY i.indisprimary DESC, count(*)
          LIMIT 1",
        &[oid.into()],
    )
    .ok()
    .flatten()
}

/// May the caller UPDATE the table?
pub fn may_update(oid: pg_sys::Oid) -> bool {
    Spi::get_one_with_args::<bool>("SELECT has_table_privilege($1, 'UPDATE')", &[oid.into()])
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// How the zero-row dry run of the clauses went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    Checked,
    /// someone holds a conflicting lock right now: the first batch checks the clauses
    Locked,
}

/// Plan and run the clauses with zero rows, as the caller: column, type and permission
/// errors come back now (the server's own error, to re-raise unchanged).
pub fn dry_run(check: &str) -> std::result::Result<DryRun, Stop> {
    if let Err(e) = subxact::run(Outcome::Rollback, || {
        Spi::run("SET LOCAL lock_timeout = '200ms'")?;
        crate::infra::search_path::as_caller(|| Spi::run(check))
    }) {
        let (code, _) = subxact::describe(&e);
        if code == "55P03" {
            return Ok(DryRun::Locked);
        }
        return Err(Stop::Server(e));
    }
    Ok(DryRun::Checked)
}

/// The table's last key now (the job's fixed upper bound); None for an empty table.
pub fn key_hi(rel: &str, keys: &[String]) -> std::result::Result<Option<Vec<i64>>, Stop> {
    let desc = keys
        .iter()
        .map(|k| format!("{} DESC", pgrx::spi::quote_identifier(k)))
        .collect::<Vec<_>>()
        .join(", ");
    let cols = keys
        .iter()
        .map(pgrx::spi::quote_identifier)
        .collect::<Vec<_>>()
        .join(", ");
    let hi_sql = format!("SELECT ARRAY[{cols}]::bigint[] FROM {rel} ORDER BY {desc} LIMIT 1");
    match subxact::run(Outcome::Rollback, || {
        Spi::run("SET LOCAL lock_timeout = '2s'")?;
        // an empty table has no last key: the job is recorded as done
        crate::infra::spi::optional_row(&hi_sql, &[], |r| r.get_one::<Vec<i64>>())
            .map(Option::flatten)
    }) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Stop::Failure(
            CapstoneError::PrerequisiteState(format!("could not read the key range: {e}")).into(),
        )),
        Err(e) => Err(Stop::Server(e)),
    }
}

/// A job to record, as `backfill_start` checked it.
pub struct NewJob<'a> {
    pub relid: pg_sys::Oid,
    pub relname: &'a str,
    pub keys: &'a [String],
    pub set_clause: String,
    pub where_clause: Option<String>,
    pub batch_size: i32,
    pub lock_ms: i64,
    pub pause_ms: i64,
    pub max_retries: i32,
    pub key_hi: Option<Vec<i64>>,
}

/// Record the job (as the tables' owner, naming the caller); its id.
pub fn insert(job: NewJob<'_>) -> Result<i64> {
    let role_oid = unsafe { pg_sys::GetUserId() };
    let role_name = crate::infra::owner::caller();
    let state = if job.key_hi.is_some() {
        "queued"
    } else {
        "done"
    };
    crate::infra::owner::write(|| Spi::get_one_with_args::<i64>(
        "INSERT INTO capstone.backfill_jobs (relid, relname, key_columns, set_clause, where_clause, batch_size,
                                             lock_timeout_ms, pause_ms, max_retries, state, role_oid, role_name,
                                             database_oid, key_hi, rows_estimate, search_path)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $13, $14,
                (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()), $11,
                greatest((SELECT reltuples FROM pg_catalog.pg_class WHERE oid = $1), 0)::bigint, $12
         RETURNING id",
        &[
            job.relid.into(),
            job.relname.to_string().into(),
            job.keys.to_vec().into(),
            job.set_clause.into(),
            job.where_clause.into(),
            job.batch_size.into(),
            (job.lock_ms as i32).into(),
            (job.pause_ms as i32).into(),
            job.max_retries.into(),
            state.into(),
            job.key_hi.into(),
            crate::infra::search_path::caller().into(),
            role_oid.into(),
            role_name.into(),
        ],
    ))
    .ok()
    .flatten()
    .ok_or_else(|| CapstoneError::PrerequisiteState("could not record the backfill job".into()).into())
}

/// Jobs running now, of every role: they share the worker slots.
pub fn running() -> i64 {
    crate::infra::owner::write(|| {
        Spi::get_one::<i64>("SELECT count(*) FROM capstone.backfill_jobs WHERE state = 'running'")
    })
    .ok()
    .flatten()
    .unwrap_or(0)
}

fn no_such_job(j: i64) -> crate::infra::error::Failure {
    CapstoneError::UndefinedObject(format!("backfill job {j} does not exist"))
        .with_hint("SELECT * FROM capstone.backfill_status() lists your jobs")
}

/// The caller's job `j` exists, or 42704.
pub fn check_exists(j: i64) -> Result<()> {
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM capstone.backfill_jobs WHERE id = $1 AND role_name = current_user)",
        &[j.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if exists {
        Ok(())
    } else {
        Err(no_such_job(j))
    }
}

/// One row of `backfill_status`.
pub type StatusRow = (
    i64,
    String,
    String,
    i64,
    i64,
    Option<f64>,
    Option<f64>,
    Option<String>,
    i32,
    i32,
    i32,
    Option<String>,
    String,
);

/// Time left at `rps` rows/s for a running job, as text.
fn eta(state: &str, rps: Option<f64>, est: i64, done: i64) -> Option<String> {
    match (state, rps) {
        ("running", Some(v)) if v > 0.0 && est > done => {
            Some(format!("{:.0} s", (est - done) as f64 / v))
        }
        _ => None,
    }
}

/// The caller's jobs (all, or `job`), oldest first.
pub fn status(job: Option<i64>) -> Vec<StatusRow> {
    Spi::connect(|c| {
        let mut out = Vec::new();
        for r in c.select(
            "SELECT id, relname, state, rows_done, coalesce(rows_estimate, 0),
                    CASE WHEN state = 'done' THEN 100.0
                         WHEN rows_estimate > 0 THEN least(100.0, round(100.0 * rows_done / rows_estimate, 1)) END::float8,
                    CASE WHEN started_at IS NOT NULL AND coalesce(finished_at, clock_timestamp()) > started_at
                         THEN rows_done / extract(epoch FROM coalesce(finished_at, clock_timestamp()) - started_at) END::float8,
                    batches_done, retries, lock_timeouts, last_error, role_name::text
               FROM capstone.backfill_jobs
              WHERE role_name = current_user AND ($1::bigint IS NULL OR id = $1) ORDER BY id",
            None,
            &[job.into()],
        )? {
            let state = r.get::<String>(3)?.unwrap_or_default();
            let done = r.get::<i64>(4)?.unwrap_or(0);
            let est = r.get::<i64>(5)?.unwrap_or(0);
            let rps = r.get::<f64>(7)?;
            let eta = eta(&state, rps, est, done);
            out.push((
                r.get::<i64>(1)?.unwrap_or(0),
                r.get::<String>(2)?.unwrap_or_default(),
                state,
                done,
                est,
                r.get::<f64>(6)?,
                rps.map(|v| v.round()),
                eta,
                r.get::<i32>(8)?.unwrap_or(0),
                r.get::<i32>(9)?.unwrap_or(0),
                r.get::<i32>(10)?.unwrap_or(0),
                r.get::<String>(11)?,
                r.get::<String>(12)?.unwrap_or_default(),
            ));
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_default()
}

/// Move the caller's job `j` to state `to` if it is in one of `allowed_from`; the new state.
pub fn set_state(j: i64, allowed_from: &[&str], to: &str) -> Result<String> {
    let cur = Spi::get_one_with_args::<String>(
        "SELECT state FROM capstone.backfill_jobs WHERE id = $1 AND role_name = current_user",
        &[j.into()],
    )
    .ok()
    .flatten()
    .ok_or_else(|| no_such_job(j))?;
    if !allowed_from.contains(&cur.as_str()) {
        return Err(CapstoneError::PrerequisiteState(format!(
            "backfill job {j} is {cur}; it cannot become {to}"
        ))
        .with_hint(format!(
            "only a job that is {} can become {to}",
            allowed_from.join(" or ")
        )));
    }
    let by = crate::infra::owner::caller();
    crate::infra::owner::write(|| {
        Spi::run_with_args(
            "UPDATE capstone.backfill_jobs SET state = $2, updated_at = clock_timestamp(),
                    finished_at = CASE WHEN $2 = 'cancelled' THEN clock_timestamp() ELSE finished_at END
              WHERE id = $1 AND role_name = $3",
            &[j.into(), to.into(), by.into()],
        )
    })
    .map_err(|e| CapstoneError::PrerequisiteState(format!("could not update job {j}: {e}")))?;
    Ok(to.to_string())
}

#[cfg(test)]
mod unit {
    use super::eta;

    #[test]
    fn eta_only_for_running_jobs_with_rows_left() {
        assert_eq!(
            eta("running", Some(100.0), 1000, 500).as_deref(),
            Some("5 s")
        );
        assert_eq!(eta("paused", Some(100.0), 1000, 500), None);
        assert_eq!(eta("running", Some(0.0), 1000, 500), None);
        assert_eq!(eta("running", Some(10.0), 500, 500), None);
    }
}
