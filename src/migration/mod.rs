//! The migration gate: an in-database backfill worker for expand-contract
//! changes, DDL that never queues behind a table lock, and lock evidence.
//!
//! - `backfill_start` validates the change under the caller's privileges and
//!   queues a job; a dynamic background worker runs it as the caller, one
//!   transaction per keyset batch (see `worker.rs`).
//! - `safe_ddl` runs one DDL statement under `lock_timeout` with retries and
//!   backoff, logging every attempt, and warns about known-dangerous forms.
//! - `lock_snapshot` / `lock_watch` show who waits on whom.

// pgrx needs each result row spelled out as a name!() tuple in the signature
#![allow(clippy::type_complexity)]

pub mod lint;
pub mod worker;

use crate::infra::error::{check_range, required, CapstoneError};
use crate::infra::format::bytes as pretty;
use crate::infra::regclass::{self, RegClass};
use crate::infra::subxact::{self, Outcome};
use pgrx::datetime::Interval;
use pgrx::prelude::*;
use serde_json::json;
use std::time::{Duration, Instant};

pub fn interval_ms(i: &Interval) -> i64 {
    (i.as_micros() / 1000).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Columns of the best keyset key: the primary key or a unique, non-partial,
/// NOT NULL btree index of integer columns (at most 4), fewest columns first.
fn find_key(oid: pg_sys::Oid) -> Option<Vec<String>> {
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

/// The two statements of a batch. `bound` finds the batch's last key with an
/// index range scan (keyset from the last committed key, `LIMIT n`); `update`
/// then updates exactly that key range, with both ends passed as parameters so
/// the planner sees real values and uses the key's index. `first` batches have
/// no lower bound.
pub fn batch_sql(
    rel: &str,
    keys: &[String],
    set_clause: &str,
    where_clause: Option<&str>,
    first: bool,
) -> (String, String) {
    // always quoted: pure Rust (unit-testable without a server) and valid for any name
    let q: Vec<String> = keys
        .iter()
        .map(|k| format!("\"{}\"", k.replace('"', "\"\"")))
        .collect();
    let tuple = |prefix: &str| {
        format!(
            "({})",
            q.iter()
                .map(|c| format!("{prefix}{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let param = |p: usize| {
        format!(
            "({})",
            (1..=keys.len())
                .map(|i| format!("${p}[{i}]"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let lower = |prefix: &str| {
        if first {
            String::new()
        } else {
            format!("{} OPERATOR(pg_catalog.>) {} AND ", tuple(prefix), param(1))
        }
    };
    let order = q.join(", ");
    let desc = q
        .iter()
        .map(|c| format!("{c} DESC"))
        .collect::<Vec<_>>()
        .join(", ");
    let bound = format!(
        "SELECT ARRAY[{order}]::bigint[] FROM (SELECT {order} FROM {rel} WHERE {}{} OPERATOR(pg_catalog.<=) {} ORDER BY {order} LIMIT $3) b
          ORDER BY {desc} LIMIT 1",
        lower(""),
        tuple(""),
        param(2),
    );
    let update = format!(
        "WITH u AS (UPDATE {rel} t SET {set_clause}\n WHERE {}{} OPERATOR(pg_catalog.<=) {} AND ({}\n) RETURNING 1) SELECT pg_catalog.count(*) FROM u",
        lower("t."),
        tuple("t."),
        param(2),
        where_clause.unwrap_or("true"),
    );
    (bound, update)
}

/// Parse the one UPDATE `sql` must be, or None.
///
/// # Safety
/// Calls the raw parser; the returned pointer lives in the current memory context.
unsafe fn parse_one_update(sql: &str) -> Option<*mut pg_sys::UpdateStmt> {
    let stmts = crate::infra::parse::raw_statements(sql, "set_clause and where_clause");
    if stmts.len() != 1 || (*stmts[0]).type_ != pg_sys::NodeTag::T_UpdateStmt {
        return None;
    }
    let u = stmts[0] as *mut pg_sys::UpdateStmt;
    #[cfg(feature = "pg18")]
    let returning = !(*u).returningClause.is_null();
    #[cfg(not(feature = "pg18"))]
    let returning = !(*u).returningList.is_null();
    // FROM, RETURNING and WITH have no place in a backfill's batch
    if !(*u).fromClause.is_null() || returning || !(*u).withClause.is_null() {
        return None;
    }
    Some(u)
}

/// Is `n` a top-level AND whose last argument is the constant `false`?
///
/// # Safety
/// `n` is null or a node of a raw parse tree.
unsafe fn ends_with_and_false(n: *mut pg_sys::Node) -> bool {
    if n.is_null() || (*n).type_ != pg_sys::NodeTag::T_BoolExpr {
        return false;
    }
    let b = n as *mut pg_sys::BoolExpr;
    if (*b).boolop != pg_sys::BoolExprType::AND_EXPR || (*b).args.is_null() {
        return false;
    }
    let args = (*b).args;
    let last = (*(*args).elements.add((*args).length as usize - 1)).ptr_value as *mut pg_sys::Node;
    if last.is_null() || (*last).type_ != pg_sys::NodeTag::T_A_Const {
        return false;
    }
    let k = last as *mut pg_sys::A_Const;
    !(*k).isnull
        && (*k).val.boolval.type_ == pg_sys::NodeTag::T_Boolean
        && !(*k).val.boolval.boolval
}

/// Parse-check user SQL fragments by composing the statements they will be part of.
/// The set clause alone must be the whole of an UPDATE's SET list (no WHERE, FROM,
/// RETURNING or comment that swallows what follows); with the condition, the WHERE
/// must still end in capstone's own `AND false`, so a condition like `true) OR (true`
/// cannot escape the key range of a batch.
fn validate_update(rel: &str, set_clause: &str, where_clause: Option<&str>) -> String {
    if set_clause.contains('\0') || where_clause.is_some_and(|w| w.contains('\0')) {
        CapstoneError::InvalidParameter(
            "set_clause and where_clause must not contain NUL bytes".into(),
        )
        .raise();
    }
    let set_only = format!("UPDATE {rel} SET {set_clause}\n");
    let sql = format!(
        "UPDATE {rel} SET {set_clause}\n WHERE ({}\n) AND false",
        where_clause.unwrap_or("true")
    );
    // SAFETY: raw parse trees of statements built here, read and dropped at once
    let ok = unsafe {
        parse_one_update(&set_only).is_some_and(|u| (*u).whereClause.is_null())
            && parse_one_update(&sql).is_some_and(|u| ends_with_and_false((*u).whereClause))
    };
    if !ok {
        CapstoneError::Syntax("set_clause and where_clause must form exactly one UPDATE of the table".into())
            .raise_with(
                format!("they are checked as: {sql}"),
                "pass only the assignments (e.g. 'total = price * qty') and a boolean condition; no semicolons, no WHERE in set_clause, no FROM or RETURNING",
            );
    }
    sql
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
            CapstoneError::InvalidParameter("set_clause must not be empty".into())
                .raise_hint("e.g. 'name_first = split_part(full_name, '' '', 1)'");
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
        match rel.relkind.as_str() {
            "r" => {}
            "p" => CapstoneError::WrongObjectType(format!("{} is a partitioned table", rel.qualified))
                .raise_hint("backfill each partition: SELECT capstone.backfill_start(p, ...) FROM pg_partition_tree(...) WHERE isleaf"),
            k => CapstoneError::WrongObjectType(format!("{} is not a table (relkind {k})", rel.qualified))
                .raise_hint("backfill the table a view or index belongs to"),
        }
        let can = Spi::get_one_with_args::<bool>(
            "SELECT has_table_privilege($1, 'UPDATE')",
            &[rel.oid.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false);
        if !can {
            CapstoneError::InsufficientPrivilege(format!(
                "permission denied: UPDATE on {}",
                rel.qualified
            ))
            .raise_hint("the backfill runs as you; you need to own the table or hold UPDATE on it");
        }
        let keys = find_key(rel.oid).unwrap_or_else(|| {
            CapstoneError::PrerequisiteState(format!("{} has no usable key for keyset batches", rel.qualified)).raise_with(
                "a backfill needs a primary key or unique index of NOT NULL integer columns (at most 4), so each batch is an index range, never OFFSET",
                "add one first, e.g. ALTER TABLE ... ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            )
        });
        let check = validate_update(&rel.qualified, &set_clause, where_clause.as_deref());
        // plan and run it with zero rows: column, type and permission errors surface now, as the caller
        if let Err(e) = subxact::run(Outcome::Rollback, || {
            Spi::run("SET LOCAL lock_timeout = '200ms'")?;
            crate::infra::search_path::as_caller(|| Spi::run(&check))
        }) {
            let (code, _) = subxact::describe(&e);
            if code == "55P03" {
                // someone holds a conflicting lock right now: that is what the job's retries are for
                ereport!(
                    NOTICE,
                    PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
                    format!("{} is locked by another session; the clauses will be checked by the first batch", rel.qualified)
                );
            } else {
                (*e).rethrow();
            }
        }
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
        let hi_sql = format!(
            "SELECT ARRAY[{cols}]::bigint[] FROM {} ORDER BY {desc} LIMIT 1",
            rel.qualified
        );
        let key_hi = match subxact::run(Outcome::Rollback, || {
            Spi::run("SET LOCAL lock_timeout = '2s'")?;
            // an empty table has no last key: the job is recorded as done
            Spi::connect(|c| {
                let t = c.select(&hi_sql, Some(1), &[])?;
                if t.is_empty() {
                    Ok(None)
                } else {
                    t.first().get_one::<Vec<i64>>()
                }
            })
        }) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                CapstoneError::PrerequisiteState(format!("could not read the key range: {e}"))
                    .raise()
            }
            Err(e) => (*e).rethrow(),
        };
        // the job row is capstone's record: written as the tables' owner, naming the caller
        let role_oid = unsafe { pg_sys::GetUserId() };
        let role_name = crate::infra::owner::caller();
        let id = crate::infra::owner::write(|| Spi::get_one_with_args::<i64>(
            "INSERT INTO capstone.backfill_jobs (relid, relname, key_columns, set_clause, where_clause, batch_size,
                                                 lock_timeout_ms, pause_ms, max_retries, state, role_oid, role_name,
                                                 database_oid, key_hi, rows_estimate, search_path)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $13, $14,
                    (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()), $11,
                    greatest((SELECT reltuples FROM pg_catalog.pg_class WHERE oid = $1), 0)::bigint, $12
             RETURNING id",
            &[
                rel.oid.into(),
                rel.qualified.clone().into(),
                keys.clone().into(),
                set_clause.into(),
                where_clause.into(),
                batch_size.into(),
                (lock_ms as i32).into(),
                (pause_ms as i32).into(),
                max_retries.into(),
                (if key_hi.is_some() { "queued" } else { "done" }).into(),
                key_hi.into(),
                crate::infra::search_path::caller().into(),
                role_oid.into(),
                role_name.clone().into(),
            ],
        ))
        .ok()
        .flatten()
        .unwrap_or_else(|| CapstoneError::PrerequisiteState("could not record the backfill job".into()).raise());
        // start now if a worker slot is free; otherwise the launcher starts it later
        // every role's running jobs share the worker slots
        let running = crate::infra::owner::write(|| {
            Spi::get_one::<i64>(
                "SELECT count(*) FROM capstone.backfill_jobs WHERE state = 'running'",
            )
        })
        .ok()
        .flatten()
        .unwrap_or(0);
        if running < crate::infra::gucs::backfill_max_workers() as i64 {
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
        let exists = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM capstone.backfill_jobs WHERE id = $1 AND role_name = current_user)",
            &[j.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false);
        if !exists {
            CapstoneError::UndefinedObject(format!("backfill job {j} does not exist"))
                .raise_hint("SELECT * FROM capstone.backfill_status() lists your jobs");
        }
    }
    let rows = Spi::connect(|c| {
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
            let eta = match (state.as_str(), rps) {
                ("running", Some(v)) if v > 0.0 && est > done => Some(format!("{:.0} s", (est - done) as f64 / v)),
                _ => None,
            };
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
    .unwrap_or_default();
    TableIterator::new(rows)
}

fn set_state(job: Option<i64>, allowed_from: &[&str], to: &str) -> String {
    let j = required(job, "job");
    let cur = Spi::get_one_with_args::<String>(
        "SELECT state FROM capstone.backfill_jobs WHERE id = $1 AND role_name = current_user",
        &[j.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| {
        CapstoneError::UndefinedObject(format!("backfill job {j} does not exist"))
            .raise_hint("SELECT * FROM capstone.backfill_status() lists your jobs")
    });
    if !allowed_from.contains(&cur.as_str()) {
        CapstoneError::PrerequisiteState(format!(
            "backfill job {j} is {cur}; it cannot become {to}"
        ))
        .raise_hint(format!(
            "only a job that is {} can become {to}",
            allowed_from.join(" or ")
        ));
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
    .unwrap_or_else(|e| {
        CapstoneError::PrerequisiteState(format!("could not update job {j}: {e}")).raise()
    });
    to.to_string()
}

/// Pause a job: its worker stops after the current batch; progress is kept.
#[pg_extern(volatile, parallel_unsafe)]
fn backfill_pause(job: Option<i64>) -> String {
    set_state(job, &["queued", "running"], "paused")
}

/// Resume a paused (or failed) job from its last committed batch.
#[pg_extern(volatile, parallel_unsafe)]
fn backfill_resume(job: Option<i64>) -> String {
    let s = set_state(job, &["paused", "failed"], "queued");
    worker::start_job(job.unwrap_or(0));
    s
}

/// Cancel a job: its worker stops after the current batch; committed batches stay.
#[pg_extern(volatile, parallel_unsafe)]
fn backfill_cancel(job: Option<i64>) -> String {
    set_state(job, &["queued", "running", "paused", "failed"], "cancelled")
}

/// A warning about a DDL form that takes a long or strong lock, with the safe form.
pub fn ddl_warnings(ddl: &str) -> Vec<String> {
    let u = ddl.to_uppercase();
    let mut w = Vec::new();
    if u.contains("ADD COLUMN") && u.contains("DEFAULT") {
        let volatile = [
            "RANDOM(",
            "CLOCK_TIMESTAMP(",
            "GEN_RANDOM_UUID(",
            "NEXTVAL(",
            "UUIDV7(",
            "TIMEOFDAY(",
        ];
        if volatile.iter().any(|f| u.contains(f)) {
            w.push("ADD COLUMN with a volatile DEFAULT rewrites the whole table under ACCESS EXCLUSIVE; add the column without a default (or with a constant one), then backfill with capstone.backfill_start".into());
        }
    }
    if u.contains("SET NOT NULL") {
        w.push("SET NOT NULL scans the whole table under ACCESS EXCLUSIVE unless a validated CHECK (col IS NOT NULL) exists; add CHECK ... NOT VALID, VALIDATE CONSTRAINT, then SET NOT NULL".into());
    }
    if (u.starts_with("CREATE INDEX") || u.starts_with("CREATE UNIQUE INDEX"))
        && !u.contains("CONCURRENTLY")
    {
        w.push("CREATE INDEX without CONCURRENTLY blocks writes for the whole build; use CREATE INDEX CONCURRENTLY (outside a transaction block)".into());
    }
    if u.contains("ADD CONSTRAINT")
        && (u.contains("CHECK") || u.contains("FOREIGN KEY"))
        && !u.contains("NOT VALID")
    {
        w.push("ADD CONSTRAINT without NOT VALID validates every row while holding its lock; add it NOT VALID, then VALIDATE CONSTRAINT (a weaker lock)".into());
    }
    if u.contains("ALTER COLUMN") && u.contains(" TYPE ") {
        w.push("ALTER COLUMN ... TYPE usually rewrites the table under ACCESS EXCLUSIVE; expand-contract with a new column instead".into());
    }
    w
}

/// Run one DDL statement under lock_timeout, retrying with backoff, so it never
/// waits in the lock queue blocking everyone behind it. Returns one row per attempt.
#[pg_extern(volatile, parallel_unsafe)]
fn safe_ddl(
    ddl: Option<String>,
    lock_timeout: default!(Option<Interval>, "'500ms'"),
    max_retries: default!(Option<i32>, 10),
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
            CapstoneError::InvalidParameter("ddl must not be empty".into()).raise();
        }
        let lock_ms = check_range(
            "lock_timeout (ms)",
            lock_timeout.as_ref().map(interval_ms).unwrap_or(500),
            1,
            600_000,
        );
        let max_retries = check_range("max_retries", max_retries.unwrap_or(10), 0, 100);
        let stmts = crate::infra::parse::raw_statements(&ddl, "ddl");
        let (target, secret) = unsafe {
            let n = stmts.len();
            if n != 1 {
                CapstoneError::Syntax(format!("ddl must be exactly one statement (got {n})"))
                    .raise_hint(
                        "run each DDL statement in its own call, so each gets its own lock timeout",
                    );
            }
            let stmt = stmts[0];
            let tag = (*stmt).type_;
            if matches!(
                tag,
                pg_sys::NodeTag::T_SelectStmt
                    | pg_sys::NodeTag::T_InsertStmt
                    | pg_sys::NodeTag::T_UpdateStmt
                    | pg_sys::NodeTag::T_DeleteStmt
                    | pg_sys::NodeTag::T_MergeStmt
                    | pg_sys::NodeTag::T_DoStmt
                    | pg_sys::NodeTag::T_CallStmt
                    | pg_sys::NodeTag::T_CopyStmt
                    | pg_sys::NodeTag::T_ExplainStmt
                    | pg_sys::NodeTag::T_TransactionStmt
            ) {
                CapstoneError::InvalidParameter(
                    "safe_ddl runs DDL, not queries, DML, code blocks, COPY, EXPLAIN or transaction control".into(),
                )
                .raise_hint("use capstone.backfill_start for data changes; run the rest yourself");
            }
            // what the attempt log must never keep: a statement that can carry a password
            // or a connection string
            let secret = match tag {
                pg_sys::NodeTag::T_CreateRoleStmt => Some("CREATE ROLE"),
                pg_sys::NodeTag::T_AlterRoleStmt => Some("ALTER ROLE"),
                pg_sys::NodeTag::T_CreateUserMappingStmt => Some("CREATE USER MAPPING"),
                pg_sys::NodeTag::T_AlterUserMappingStmt => Some("ALTER USER MAPPING"),
                pg_sys::NodeTag::T_CreateForeignServerStmt => Some("CREATE SERVER"),
                pg_sys::NodeTag::T_AlterForeignServerStmt => Some("ALTER SERVER"),
                pg_sys::NodeTag::T_CreateSubscriptionStmt => Some("CREATE SUBSCRIPTION"),
                pg_sys::NodeTag::T_AlterSubscriptionStmt => Some("ALTER SUBSCRIPTION"),
                _ => None,
            };
            // the table the statement names, for the risk grade
            let target = match tag {
                pg_sys::NodeTag::T_AlterTableStmt => {
                    rv_name((*(stmt as *mut pg_sys::AlterTableStmt)).relation)
                }
                pg_sys::NodeTag::T_IndexStmt => {
                    rv_name((*(stmt as *mut pg_sys::IndexStmt)).relation)
                }
                _ => None,
            };
            (target, secret)
        };
        // the text and errors kept in capstone.ddl_attempts
        let (logged_ddl, redacted) = match secret {
            Some(kind) => (
                format!(
                    "{kind} … (redacted: the statement may carry a password or connection string)"
                ),
                true,
            ),
            None => (ddl.clone(), false),
        };
        let warnings = ddl_warnings(&ddl);
        let (bytes, rows) = target
            .as_ref()
            .and_then(|t| {
                // the name in the statement resolves as the caller's DDL will resolve it;
                // everything else in the query is qualified, so the caller's path is safe here
                crate::infra::search_path::as_caller(|| {
                    Spi::get_two_with_args::<i64, f64>(
                        "SELECT pg_catalog.pg_total_relation_size(c.oid), c.reltuples::pg_catalog.float8
                           FROM pg_catalog.pg_class c
                          WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)::pg_catalog.oid",
                        &[t.clone().into()],
                    )
                })
                .ok()
            })
            .map(|(b, r)| (b.unwrap_or(0), r.unwrap_or(0.0)))
            .unwrap_or((0, 0.0));
        let risk = if warnings.is_empty() {
            "low: metadata-only change, bounded by lock_timeout".to_string()
        } else if bytes > 1 << 30 || rows > 1e7 {
            format!(
                "high: {} on a {} table ({rows:.0} rows)",
                warnings.len(),
                pretty(bytes)
            )
        } else if bytes > 100 << 20 || rows > 1e6 {
            format!(
                "medium: {} warning(s) on a {} table",
                warnings.len(),
                pretty(bytes)
            )
        } else {
            format!(
                "low: {} warning(s), but the table is small ({})",
                warnings.len(),
                pretty(bytes)
            )
        };
        for w in &warnings {
            ereport!(
                WARNING,
                PgSqlErrorCode::ERRCODE_WARNING,
                format!("safe_ddl: {w}")
            );
        }
        let prev = Spi::get_one::<String>("SELECT current_setting('lock_timeout')")
            .ok()
            .flatten()
            .unwrap_or_else(|| "0".into());
        let mut out = Vec::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let t0 = Instant::now();
            let r = subxact::run(Outcome::Commit, || {
                Spi::run(&format!("SET LOCAL lock_timeout = '{lock_ms}ms'"))?;
                crate::infra::search_path::as_caller(|| Spi::run(&ddl))
            });
            let waited = t0.elapsed().as_secs_f64() * 1000.0;
            let _ = Spi::run_with_args(
                "SELECT set_config('lock_timeout', $1, true)",
                &[prev.clone().into()],
            );
            let (outcome, code, msg) = match &r {
                Ok(Ok(())) => ("applied".to_string(), None, None),
                Ok(Err(e)) => (
                    format!("failed: {e}"),
                    Some("XX000".to_string()),
                    Some(e.to_string()),
                ),
                Err(e) => {
                    let (c, m) = subxact::describe(e);
                    (format!("{c}: {m}"), Some(c), Some(m))
                }
            };
            let logged_error = if redacted {
                msg.as_ref().map(|_| "(redacted)".to_string())
            } else {
                msg.clone()
            };
            let by = crate::infra::owner::caller();
            crate::infra::owner::write(|| {
                Spi::run_with_args(
                    "INSERT INTO capstone.ddl_attempts (ddl, attempt, waited_ms, sqlstate, error, role_name)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        logged_ddl.clone().into(),
                        attempt.into(),
                        waited.into(),
                        code.clone().into(),
                        logged_error.into(),
                        by.into(),
                    ],
                )
            })
            .unwrap_or_else(|e| {
                CapstoneError::PrerequisiteState(format!("could not log the attempt: {e}")).raise()
            });
            out.push((
                attempt,
                (waited * 100.0).round() / 100.0,
                outcome,
                risk.clone(),
                warnings.clone(),
            ));
            match (r, code.as_deref()) {
                (Ok(Ok(())), _) => break,
                (Err(_), Some("55P03")) if attempt <= max_retries => {
                    // exponential backoff with jitter, capped at 5 s
                    let base = (50u64 << attempt.min(7)).min(5000);
                    let jitter = (std::process::id() as u64 ^ (attempt as u64).wrapping_mul(7919))
                        % (base / 2 + 1);
                    worker::sleep_interruptible(Duration::from_millis(base / 2 + jitter));
                }
                (Err(e), Some("55P03")) => {
                    let detail = out
                        .iter()
                        .map(|r| format!("attempt {}: waited {:.0} ms", r.0, r.1))
                        .collect::<Vec<_>>()
                        .join("; ");
                    let _ = e;
                    CapstoneError::LockNotAvailable(format!("safe_ddl gave up after {attempt} attempts: the lock was never free within {lock_ms} ms"))
                        .raise_with(detail, "find the blocker with SELECT * FROM capstone.lock_snapshot(); retry later or raise max_retries");
                }
                (Err(e), _) => (*e).rethrow(),
                (Ok(Err(e)), _) => {
                    CapstoneError::PrerequisiteState(format!("safe_ddl failed: {e}")).raise()
                }
            }
        }
        TableIterator::new(out)
    })
}

unsafe fn rv_name(rv: *mut pg_sys::RangeVar) -> Option<String> {
    if rv.is_null() || (*rv).relname.is_null() {
        return None;
    }
    let rel = std::ffi::CStr::from_ptr((*rv).relname)
        .to_string_lossy()
        .into_owned();
    let schema = if (*rv).schemaname.is_null() {
        None
    } else {
        Some(
            std::ffi::CStr::from_ptr((*rv).schemaname)
                .to_string_lossy()
                .into_owned(),
        )
    };
    Some(match schema {
        Some(s) => format!(
            "{}.{}",
            pgrx::spi::quote_identifier(&s),
            pgrx::spi::quote_identifier(&rel)
        ),
        None => pgrx::spi::quote_identifier(&rel),
    })
}

const LOCK_SNAPSHOT_SQL: &str = "
SELECT a.pid, a.usename::text, l.mode, coalesce(l.relation::regclass::text, l.locktype), l.granted,
       CASE WHEN l.granted THEN NULL ELSE round(extract(epoch FROM clock_timestamp() - a.state_change)::numeric * 1000, 1)::float8 END,
       pg_catalog.pg_blocking_pids(a.pid),
       (SELECT count(*) FROM pg_catalog.pg_stat_activity w WHERE a.pid = ANY (pg_catalog.pg_blocking_pids(w.pid)))::int,
       left(a.query, 200),
       EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity d
                WHERE d.pid = ANY (pg_catalog.pg_blocking_pids(a.pid)) AND d.query ILIKE '%capstone.safe_ddl%')
  FROM pg_catalog.pg_locks l
  JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype IN ('relation', 'transactionid', 'tuple', 'advisory', 'object')
   AND a.pid <> pg_backend_pid()
   AND (NOT l.granted OR l.mode IN ('AccessExclusiveLock', 'ExclusiveLock', 'ShareRowExclusiveLock', 'ShareLock')
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity w WHERE a.pid = ANY (pg_catalog.pg_blocking_pids(w.pid))))
 ORDER BY l.granted, 6 DESC NULLS LAST, a.pid";

type LockRow = (
    i32,
    Option<String>,
    String,
    String,
    bool,
    Option<f64>,
    Vec<i32>,
    i32,
    Option<String>,
    bool,
);

fn snapshot() -> Vec<LockRow> {
    Spi::connect(|c| {
        let mut out = Vec::new();
        for r in c.select(LOCK_SNAPSHOT_SQL, None, &[])? {
            out.push((
                r.get::<i32>(1)?.unwrap_or(0),
                r.get::<String>(2)?,
                r.get::<String>(3)?.unwrap_or_default(),
                r.get::<String>(4)?.unwrap_or_default(),
                r.get::<bool>(5)?.unwrap_or(true),
                r.get::<f64>(6)?,
                r.get::<Vec<i32>>(7)?.unwrap_or_default(),
                r.get::<i32>(8)?.unwrap_or(0),
                r.get::<String>(9)?,
                r.get::<bool>(10)?.unwrap_or(false),
            ));
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_default()
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
        snapshot()
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
    let start = Instant::now();
    let mut out = Vec::new();
    let mut n = 0;
    while start.elapsed().as_millis() as i64 <= dur {
        n += 1;
        unsafe { pg_sys::pgstat_clear_snapshot() };
        let rows = snapshot();
        let waiting: Vec<&LockRow> = rows.iter().filter(|r| !r.4).collect();
        let max_wait = waiting.iter().filter_map(|r| r.5).reduce(f64::max);
        let max_queue = rows.iter().map(|r| r.7).max().unwrap_or(0);
        let behind_ddl = waiting
            .iter()
            .filter(|r| r.9)
            .filter_map(|r| r.5)
            .reduce(f64::max);
        let blocked = waiting
            .iter()
            .map(|r| format!("pid {} waits {} on {} behind {:?}", r.0, r.2, r.3, r.6))
            .collect::<Vec<String>>();
        out.push((
            n,
            (start.elapsed().as_secs_f64() * 100_000.0).round() / 100.0,
            waiting.len() as i32,
            max_wait,
            max_queue,
            behind_ddl,
            blocked,
        ));
        worker::sleep_interruptible(Duration::from_millis(step as u64));
    }
    let worst = out.iter().filter_map(|r| r.3).reduce(f64::max);
    let worst_ddl = out.iter().filter_map(|r| r.5).reduce(f64::max);
    crate::infra::evidence::store(
        crate::infra::evidence::Gate::Migration,
        Some(label.as_deref().unwrap_or("lock_watch")),
        None,
        json!({}),
        json!({
            "summary": format!("{} samples over {} ms: at most {} session(s) waiting, longest wait {} ms, longest queue {}; longest wait behind a capstone DDL: {} ms",
                out.len(), dur, out.iter().map(|r| r.2).max().unwrap_or(0),
                worst.map(|w| format!("{w:.0}")).unwrap_or_else(|| "0".into()),
                out.iter().map(|r| r.4).max().unwrap_or(0),
                worst_ddl.map(|w| format!("{w:.0}")).unwrap_or_else(|| "0".into())),
            "max_wait_ms": worst,
            "max_wait_behind_ddl_ms": worst_ddl,
            "chart": {
                "title": "Sessions waiting on locks during the watch",
                "kind": "line", "x_label": "ms since start", "y_label": "sessions waiting",
                "series": [{"name": "waiting", "points": out.iter().map(|r| [r.1, r.2 as f64]).collect::<Vec<_>>()}],
            },
        }),
    );
    TableIterator::new(out)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn batch_sql_is_keyset_not_offset() {
        let (b, u) = batch_sql(
            "shop.orders",
            &["tenant_id".into(), "order_id".into()],
            "x = 1",
            None,
            false,
        );
        assert!(b.contains(r#"("tenant_id", "order_id") OPERATOR(pg_catalog.>) ($1[1], $1[2])"#));
        assert!(b.contains(r#"("tenant_id", "order_id") OPERATOR(pg_catalog.<=) ($2[1], $2[2])"#));
        assert!(b.contains(r#"ORDER BY "tenant_id", "order_id" LIMIT $3"#));
        assert!(u.contains(r#"(t."tenant_id", t."order_id") OPERATOR(pg_catalog.>) ($1[1], $1[2]) AND (t."tenant_id", t."order_id") OPERATOR(pg_catalog.<=) ($2[1], $2[2])"#));
        assert!(!b.to_uppercase().contains("OFFSET") && !u.to_uppercase().contains("OFFSET"));
        let (fb, fu) = batch_sql("t", &["id".into()], "x = 1", Some("y IS NULL"), true);
        assert!(!fb.contains("$1") && !fu.contains("$1"));
        assert!(fu.contains("AND (y IS NULL\n)"));
    }

    #[test]
    fn dangerous_ddl_is_named() {
        assert_eq!(ddl_warnings("ALTER TABLE t ADD COLUMN c text").len(), 0);
        assert_eq!(
            ddl_warnings("alter table t add column c uuid default gen_random_uuid()").len(),
            1
        );
        assert_eq!(
            ddl_warnings("ALTER TABLE t ALTER COLUMN c SET NOT NULL").len(),
            1
        );
        assert_eq!(ddl_warnings("CREATE INDEX i ON t (c)").len(), 1);
        assert_eq!(
            ddl_warnings("CREATE INDEX CONCURRENTLY i ON t (c)").len(),
            0
        );
        assert_eq!(
            ddl_warnings("ALTER TABLE t ADD CONSTRAINT k CHECK (c > 0)").len(),
            1
        );
        assert_eq!(
            ddl_warnings("ALTER TABLE t ADD CONSTRAINT k CHECK (c > 0) NOT VALID").len(),
            0
        );
    }
}
