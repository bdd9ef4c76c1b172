//! Which statements capstone will EXPLAIN ANALYZE: exactly one SELECT, INSERT, UPDATE,
//! DELETE or MERGE, checked with PostgreSQL's own parser before anything runs. It only
//! checks the text; running it is [`super::capture`]'s job.

use crate::infra::error::{CapstoneError, Result};
use pgrx::prelude::*;

/// The statement kinds `capstone.explain` accepts.
const ACCEPTED: &str = "SELECT, INSERT, UPDATE, DELETE and MERGE";

/// Check that `query` is exactly one explainable statement and return it without
/// its trailing semicolons. Syntax errors come from PostgreSQL's own parser with its
/// message and SQLSTATE 42601.
pub fn validate_statement(query: Option<&str>) -> Result<String> {
    let q = match query {
        None => {
            return Err(CapstoneError::NullValue("query".into())
                .with_hint(format!("pass one {ACCEPTED} statement as text")))
        }
        Some(q) => q.trim(),
    };
    let q = q.trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    if q.is_empty() {
        return Err(
            CapstoneError::InvalidParameter("query must not be empty".into())
                .with_hint(format!("pass one {ACCEPTED} statement as text")),
        );
    }
    let stmts = crate::infra::parse::raw_statements(q, "query");
    let n = stmts.len();
    if n == 0 {
        return Err(
            CapstoneError::InvalidParameter("query contains no statement".into())
                .with_hint(format!("pass one {ACCEPTED} statement as text")),
        );
    }
    if n > 1 {
        return Err(CapstoneError::Syntax(format!(
            "query must be exactly one statement (got {n})"
        ))
        .with_hint("run each statement in its own call; capstone never runs a second statement hidden in the text"));
    }
    let Some(&node) = stmts.first() else {
        return Err(
            CapstoneError::InvalidParameter("query contains no statement".into())
                .with_hint(format!("pass one {ACCEPTED} statement as text")),
        );
    };
    // SAFETY: `node` is a raw parse tree node the parser just returned in this memory context
    let (ok, tag) = unsafe {
        let tag = (*node).type_;
        let ok = match tag {
            pg_sys::NodeTag::T_SelectStmt => {
                (*(node as *mut pg_sys::SelectStmt)).intoClause.is_null()
            }
            pg_sys::NodeTag::T_InsertStmt
            | pg_sys::NodeTag::T_UpdateStmt
            | pg_sys::NodeTag::T_DeleteStmt
            | pg_sys::NodeTag::T_MergeStmt => true,
            _ => false,
        };
        (ok, tag)
    };
    if !ok {
        let name = if tag == pg_sys::NodeTag::T_SelectStmt {
            "SELECT INTO".to_string()
        } else {
            // SAFETY: CreateCommandName returns a static C string for any parse node
            unsafe {
                std::ffi::CStr::from_ptr(pg_sys::CreateCommandName(node))
                    .to_string_lossy()
                    .into_owned()
            }
        };
        return Err(CapstoneError::NotSupported(format!(
            "capstone cannot EXPLAIN ANALYZE a {name} statement"
        ))
        .with(
            format!("only {ACCEPTED} statements are explained; utility statements (VACUUM, CREATE, ...) have no plan to prove"),
            "run utility statements yourself, or pass them as the change argument of capstone.explain_diff",
        ));
    }
    Ok(q.to_string())
}
