//! `safe_ddl`'s work: what the one statement is (refusing queries and DML, redacting
//! secrets), the risk grade from the target's size, and the attempt loop under
//! `lock_timeout` with backoff, each attempt logged in `capstone.ddl_attempts`.
//! Errors are returned (capstone's own, or the DDL's server error unchanged), never raised.

use super::lint::{model::Effect, Located};
use super::{worker, Stop};
use crate::infra::error::{CapstoneError, Failure, Result};
use crate::infra::format::bytes as pretty;
use crate::infra::subxact::{self, Outcome};
use pgrx::prelude::*;
use std::time::{Duration, Instant};

/// One result row of `safe_ddl`: attempt, waited ms, outcome, risk, warnings.
pub type AttemptRow = (i32, f64, String, String, Vec<String>);

/// The one DDL statement, as far as capstone needs to know it.
pub struct Statement {
    /// the table it names (ALTER TABLE, CREATE INDEX), quoted, for the risk grade
    pub target: Option<String>,
    /// the statement's kind when it may carry a password or connection string
    pub secret: Option<&'static str>,
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

/// Parse `ddl`: exactly one statement, and DDL (not a query, DML, code, COPY, EXPLAIN
/// or transaction control).
pub fn classify(ddl: &str) -> Result<Statement> {
    let stmts = crate::infra::parse::raw_statements(ddl, "ddl");
    // SAFETY: nodes of the raw parse tree just built, read only here
    unsafe {
        let n = stmts.len();
        if n != 1 {
            return Err(CapstoneError::Syntax(format!(
                "ddl must be exactly one statement (got {n})"
            ))
            .with_hint(
                "run each DDL statement in its own call, so each gets its own lock timeout",
            ));
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
            return Err(CapstoneError::InvalidParameter(
                "safe_ddl runs DDL, not queries, DML, code blocks, COPY, EXPLAIN or transaction control".into(),
            )
            .with_hint("use capstone.backfill_start for data changes; run the rest yourself"));
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
        let target = match tag {
            pg_sys::NodeTag::T_AlterTableStmt => {
                rv_name((*(stmt as *mut pg_sys::AlterTableStmt)).relation)
            }
            pg_sys::NodeTag::T_IndexStmt => rv_name((*(stmt as *mut pg_sys::IndexStmt)).relation),
            _ => None,
        };
        Ok(Statement { target, secret })
    }
}

/// Total size in bytes and estimated rows of the statement's table (0 when unknown).
pub fn target_size(target: Option<&str>) -> (i64, f64) {
    target
        .and_then(|t| {
            // the name in the statement resolves as the caller's DDL will resolve it;
            // everything else in the query is qualified, so the caller's path is safe here
            crate::infra::search_path::as_caller(|| {
                Spi::get_two_with_args::<i64, f64>(
                    "SELECT pg_catalog.pg_total_relation_size(c.oid), c.reltuples::pg_catalog.float8
                       FROM pg_catalog.pg_class c
                      WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)::pg_catalog.oid",
                    &[t.to_string().into()],
                )
            })
            .ok()
        })
        .map(|(b, r)| (b.unwrap_or(0), r.unwrap_or(0.0)))
        .unwrap_or((0, 0.0))
}

/// The linter's findings as safe_ddl's warnings. The lock-queue rule is left out: safe_ddl
/// sets lock_timeout and retries itself. Type hygiene (info) is left out too.
pub fn warnings(found: &[Located]) -> Vec<String> {
    found
        .iter()
        .map(|l| &l.finding)
        .filter(|f| f.rule != "require-lock-timeout" && f.severity != "info")
        .map(|f| {
            let est = f
                .estimated_ms
                .map(|m| format!(", about {m:.0} ms"))
                .unwrap_or_default();
            format!(
                "{} ({}, {} on {}{est}): {}; safe: {}",
                f.rule,
                f.severity,
                f.lock.name(),
                f.table,
                f.finding,
                f.safe_alternative
            )
        })
        .collect()
}

/// The finding safe_ddl refuses to run without `allow`: a rewrite or full scan under a lock
/// that blocks writes, on a table at or above the small-table threshold.
pub fn refusal<'a>(found: &'a [Located], allow: &[String], small: i64) -> Option<&'a Located> {
    found.iter().find(|l| {
        let f = &l.finding;
        matches!(f.effect, Effect::Rewrite | Effect::Scan)
            && f.lock.blocks_writes()
            && f.table_bytes.unwrap_or(0) >= small
            && !allow.iter().any(|a| a == f.effect.name())
    })
}

/// The coded error for a refused statement: the finding, the estimate, the safe SQL.
pub fn refuse(l: &Located) -> Failure {
    let f = &l.finding;
    let est = f
        .estimated_ms
        .map(|m| format!("about {m:.0} ms"))
        .unwrap_or_else(|| "unknown".into());
    CapstoneError::PrerequisiteState(format!(
        "safe_ddl refuses: {} ({}): the statement would {} {} under {}",
        f.rule,
        f.severity,
        f.effect.name(),
        f.table,
        f.lock.name()
    ))
    .with(
        format!(
            "{}. Lock held for {est} ({} bytes); it blocks {}.",
            f.finding,
            f.table_bytes.unwrap_or(0),
            f.lock.blocks()
        ),
        format!(
            "safe alternative: {} -- or run it anyway with allow => array['{}']",
            f.safe_alternative,
            f.effect.name()
        ),
    )
}

/// The risk grade: the warnings weighed by the size of the table they apply to.
pub fn risk(warnings: usize, bytes: i64, rows: f64) -> String {
    if warnings == 0 {
        "low: metadata-only change, bounded by lock_timeout".to_string()
    } else if bytes > 1 << 30 || rows > 1e7 {
        format!(
            "high: {warnings} on a {} table ({rows:.0} rows)",
            pretty(bytes)
        )
    } else if bytes > 100 << 20 || rows > 1e6 {
        format!("medium: {warnings} warning(s) on a {} table", pretty(bytes))
    } else {
        format!(
            "low: {warnings} warning(s), but the table is small ({})",
            pretty(bytes)
        )
    }
}

/// What the attempt loop runs and records.
pub struct Attempts<'a> {
    pub ddl: &'a str,
    /// the text kept in capstone.ddl_attempts
    pub logged_ddl: &'a str,
    pub redacted: bool,
    pub lock_ms: i64,
    pub max_retries: i32,
    pub risk: &'a str,
    pub warnings: &'a [String],
}

/// Run the DDL under `lock_timeout`, retrying a lock timeout with backoff up to
/// `max_retries` times; one row per attempt, each logged.
pub fn run(a: &Attempts<'_>) -> std::result::Result<Vec<AttemptRow>, Stop> {
    let lock_ms = a.lock_ms;
    let prev = Spi::get_one::<String>("SELECT current_setting('lock_timeout')")
        .ok()
        .flatten()
        .unwrap_or_else(|| "0".into());
    let mut out: Vec<AttemptRow> = Vec::new();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let t0 = Instant::now();
        let r = subxact::run(Outcome::Commit, || {
            Spi::run(&format!("SET LOCAL lock_timeout = '{lock_ms}ms'"))?;
            crate::infra::search_path::as_caller(|| Spi::run(a.ddl))
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
        let logged_error = if a.redacted {
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
                    a.logged_ddl.to_string().into(),
                    attempt.into(),
                    waited.into(),
                    code.clone().into(),
                    logged_error.into(),
                    by.into(),
                ],
            )
        })
        .map_err(|e| {
            Stop::from(CapstoneError::PrerequisiteState(format!(
                "could not log the attempt: {e}"
            )))
        })?;
        out.push((
            attempt,
            (waited * 100.0).round() / 100.0,
            outcome,
            a.risk.to_string(),
            a.warnings.to_vec(),
        ));
        match (r, code.as_deref()) {
            (Ok(Ok(())), _) => break,
            (Err(_), Some("55P03")) if attempt <= a.max_retries => {
                // exponential backoff with jitter, capped at 5 s
                let base = (50u64 << attempt.min(7)).min(5000);
                let jitter = (std::process::id() as u64 ^ (attempt as u64).wrapping_mul(7919))
                    % (base / 2 + 1);
                worker::sleep_interruptible(Duration::from_millis(base / 2 + jitter));
            }
            (Err(_), Some("55P03")) => {
                let detail = out
                    .iter()
                    .map(|r| format!("attempt {}: waited {:.0} ms", r.0, r.1))
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(Stop::Failure(
                    CapstoneError::LockNotAvailable(format!("safe_ddl gave up after {attempt} attempts: the lock was never free within {lock_ms} ms"))
                        .with(detail, "find the blocker with SELECT * FROM capstone.lock_snapshot(); retry later or raise max_retries"),
                ));
            }
            (Err(e), _) => return Err(Stop::Server(e)),
            (Ok(Err(e)), _) => {
                return Err(Stop::from(CapstoneError::PrerequisiteState(format!(
                    "safe_ddl failed: {e}"
                ))))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod unit {
    use super::risk;

    #[test]
    fn risk_weighs_warnings_by_table_size() {
        assert!(risk(0, 5 << 30, 1e9).starts_with("low: metadata-only"));
        assert!(risk(1, 2 << 30, 0.0).starts_with("high: 1 on a 2 GB table"));
        assert!(risk(2, 200 << 20, 0.0).starts_with("medium: 2 warning(s)"));
        assert!(risk(1, 8192, 10.0).starts_with("low: 1 warning(s), but the table is small"));
    }
}
