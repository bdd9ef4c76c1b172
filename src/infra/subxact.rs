//! Running a piece of work in an internal subtransaction, the way PL/pgSQL's
//! EXCEPTION blocks do, so an error inside it can be caught (and reported as a
//! result row) or the work can be rolled back on purpose.

use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use std::panic::AssertUnwindSafe;

/// What to do with the subtransaction when the work succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Keep the work's effects (errors are still rolled back).
    Commit,
    /// Always roll back: used for EXPLAIN ANALYZE of data-changing statements.
    Rollback,
}

/// Run `f` in a subtransaction. On error the subtransaction is rolled back and the
/// error is returned (not raised), with its original SQLSTATE; on success it is
/// released or rolled back as `outcome` says.
pub fn run<R>(outcome: Outcome, f: impl FnOnce() -> R) -> Result<R, Box<CaughtError>> {
    unsafe {
        let oldcxt = pg_sys::CurrentMemoryContext;
        let oldowner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        // keep allocating in the caller's context: results must outlive the subtransaction
        pg_sys::MemoryContextSwitchTo(oldcxt);
        let f = AssertUnwindSafe(f);
        let result = PgTryBuilder::new(move || {
            let f = f;
            Ok((f.0)())
        })
        .catch_others(|e| Err(Box::new(e)))
        .execute();
        match (&result, outcome) {
            (Ok(_), Outcome::Commit) => pg_sys::ReleaseCurrentSubTransaction(),
            _ => pg_sys::RollbackAndReleaseCurrentSubTransaction(),
        }
        pg_sys::MemoryContextSwitchTo(oldcxt);
        pg_sys::CurrentResourceOwner = oldowner;
        result
    }
}

/// SQLSTATE text (e.g. "42P01") and message of a caught error.
pub fn describe(e: &CaughtError) -> (String, String) {
    let report = match e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
        CaughtError::RustPanic { ereport, .. } => ereport,
    };
    (
        sqlstate_text(report.sql_error_code()),
        report.message().to_string(),
    )
}

/// Five-character SQLSTATE from PostgreSQL's packed representation.
pub fn sqlstate_text(code: pgrx::PgSqlErrorCode) -> String {
    let mut v = code as i32;
    let mut s = String::with_capacity(5);
    for _ in 0..5 {
        let c = ((v & 0x3F) as u8) + b'0';
        s.push(c as char);
        v >>= 6;
    }
    s
}

#[cfg(test)]
mod unit {
    use super::sqlstate_text;
    use pgrx::PgSqlErrorCode as C;

    #[test]
    fn sqlstates_unpack() {
        assert_eq!(sqlstate_text(C::ERRCODE_UNDEFINED_TABLE), "42P01");
        assert_eq!(sqlstate_text(C::ERRCODE_SYNTAX_ERROR), "42601");
        assert_eq!(sqlstate_text(C::ERRCODE_LOCK_NOT_AVAILABLE), "55P03");
    }
}
