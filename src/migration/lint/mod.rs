//! The migration linter's SQL surface: `lint_migration` parses a migration with
//! PostgreSQL's own parser and returns one row per finding. Nothing in it is executed.

pub mod rules;
pub mod tree;

use crate::infra::error::{CapstoneError, OrRaise, Result};
use pgrx::prelude::*;

type Row = (
    i32,
    i32,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

fn lint(migration: &str) -> Result<Vec<Row>> {
    if migration.trim().is_empty() {
        return Err(CapstoneError::InvalidParameter("migration must not be empty".into()).into());
    }
    let parsed = tree::parse(migration)?;
    if parsed.is_empty() {
        return Err(CapstoneError::InvalidParameter("migration holds no statements".into()).into());
    }
    let mut rows = Vec::new();
    let mut lock_timeout = false;
    for (i, p) in parsed.iter().enumerate() {
        if let rules::Shape::SetLockTimeout { on } = p.shape {
            lock_timeout = on;
            continue;
        }
        let end = if p.len == 0 {
            migration.len()
        } else {
            (p.location + p.len).min(migration.len())
        };
        let text = migration
            .get(p.location..end)
            .unwrap_or("")
            .trim()
            .to_string();
        let before = migration.get(..p.location).unwrap_or("");
        let line = 1
            + before.matches('\n').count() as i32
            + leading_newlines(migration.get(p.location..end).unwrap_or(""));
        for f in rules::judge(&p.shape, lock_timeout) {
            rows.push((
                i as i32 + 1,
                line,
                f.rule.to_string(),
                f.severity.to_string(),
                f.lock_mode.to_string(),
                f.blocks.to_string(),
                f.effect.to_string(),
                f.table,
                f.finding,
                f.safe_alternative,
                text.clone(),
            ));
        }
    }
    Ok(rows)
}

fn leading_newlines(s: &str) -> i32 {
    s.chars()
        .take_while(|c| c.is_whitespace())
        .filter(|c| *c == '\n')
        .count() as i32
}

// pgrx needs each result row spelled out as a name!() tuple in the signature
#[allow(clippy::type_complexity)]
#[pg_extern(stable, parallel_safe)]
fn lint_migration(
    migration: &str,
) -> TableIterator<
    'static,
    (
        name!(statement_no, i32),
        name!(line, i32),
        name!(rule, String),
        name!(severity, String),
        name!(lock_mode, String),
        name!(blocks, String),
        name!(effect, String),
        name!(table_name, String),
        name!(finding, String),
        name!(safe_alternative, String),
        name!(statement, String),
    ),
> {
    TableIterator::new(lint(migration).or_raise())
}
