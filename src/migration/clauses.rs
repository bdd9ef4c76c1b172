//! The caller's backfill clauses, parse-checked with PostgreSQL's raw parser inside the
//! statements they will become, so a clause can never escape a batch's key range. Reads
//! parse trees only: it runs no SQL and raises nothing (errors are returned).

use crate::infra::error::{CapstoneError, Result};
use pgrx::prelude::*;

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
/// cannot escape the key range of a batch. Returns the zero-row UPDATE to dry-run.
pub fn validate_update(rel: &str, set_clause: &str, where_clause: Option<&str>) -> Result<String> {
    if set_clause.contains('\0') || where_clause.is_some_and(|w| w.contains('\0')) {
        return Err(CapstoneError::InvalidParameter(
            "set_clause and where_clause must not contain NUL bytes".into(),
        )
        .into());
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
        return Err(CapstoneError::Syntax(
            "set_clause and where_clause must form exactly one UPDATE of the table".into(),
        )
        .with(
            format!("they are checked as: {sql}"),
            "pass only the assignments (e.g. 'total = price * qty') and a boolean condition; no semicolons, no WHERE in set_clause, no FROM or RETURNING",
        ));
    }
    Ok(sql)
}
