//! The migration linter's SQL surface: `lint_migration` splits a migration with
//! PostgreSQL's own parser and scanner, walks each statement's parse tree, grades it with
//! the live catalog and returns one row per finding. Nothing in the migration is executed.
//! `findings` is the same linter for `safe_ddl`.

pub mod catalog;
pub mod model;
pub mod rules;
pub mod split;
pub mod tree;
pub mod types;

use crate::infra::error::{check_range, CapstoneError, OrRaise, Result};
use crate::infra::format::round;
use model::{Effect, Finding, Lock, Settings};
use pgrx::prelude::*;

/// Default for `small_table_bytes`: below it a rewrite or scan holds its lock for well under
/// a second at the default throughput, so the severity is lowered.
pub const SMALL_TABLE_BYTES: i64 = 10 << 20;
/// Default throughput of a rewrite or scan (MB/s): docs/migration.md says how it was measured.
pub const THROUGHPUT_MB_S: f64 = 100.0;

/// One finding located in the migration.
pub struct Located {
    pub statement_no: i32,
    pub line: i32,
    pub statement: String,
    pub finding: Finding,
}

fn trimmed(text: &str) -> (usize, &str) {
    // skip leading blanks and comments so the line and text start at the statement itself
    let mut s = text;
    let mut skipped = 0;
    loop {
        let t = s.trim_start();
        skipped += s.len() - t.len();
        s = t;
        if s.starts_with("--") {
            let n = s.find('\n').map(|i| i + 1).unwrap_or(s.len());
            skipped += n;
            s = &s[n..];
        } else if s.starts_with("/*") {
            let n = s.find("*/").map(|i| i + 2).unwrap_or(s.len());
            skipped += n;
            s = &s[n..];
        } else {
            break;
        }
    }
    (skipped, s.trim_end())
}

/// Lint `migration`; an empty migration (nothing but blanks, comments and semicolons) is 22023.
pub fn findings(migration: &str, settings: Settings) -> Result<Vec<Located>> {
    // types and names resolve as the migration will resolve them: on the caller's path
    let pieces = crate::infra::search_path::as_caller(|| split::pieces(migration));
    let pieces: Vec<_> = pieces
        .into_iter()
        .filter(|p| {
            let t = migration.get(p.start..p.end).unwrap_or("");
            !trimmed(t).1.trim_matches(';').trim().is_empty() || p.action.is_err()
        })
        .collect();
    if pieces.is_empty() {
        return Err(
            CapstoneError::InvalidParameter("the migration holds no statements".into())
                .with_hint("pass the migration file's text: one or more SQL statements"),
        );
    }
    let mut cat = catalog::Catalog::default();
    let mut linter = rules::Linter::new(&mut cat, settings);
    let mut out = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        let raw = migration.get(p.start..p.end).unwrap_or("");
        let (skip, text) = trimmed(raw);
        let line = 1 + migration
            .get(..(p.start + skip).min(migration.len()))
            .unwrap_or("")
            .matches('\n')
            .count() as i32;
        let found = match &p.action {
            Ok(a) => linter.statement(a),
            Err((code, msg, pos)) => {
                let (rule, what) = if code == "42601" {
                    ("syntax-error", "does not parse")
                } else {
                    ("analysis-error", "could not be analyzed")
                };
                let at = pos.map(|p| format!(" at position {p}")).unwrap_or_default();
                vec![Finding {
                    rule,
                    severity: "error",
                    lock: Lock::None,
                    effect: Effect::None,
                    table: String::new(),
                    table_bytes: None,
                    estimated_ms: None,
                    finding: format!(
                        "{code}{at}: {msg} (the statement {what}; the rest is still linted)"
                    ),
                    safe_alternative: String::new(),
                }]
            }
        };
        for f in found {
            out.push(Located {
                statement_no: i as i32 + 1,
                line,
                statement: text.to_string(),
                finding: f,
            });
        }
    }
    let n = pieces.len() as i32;
    let last_line = 1 + migration.matches('\n').count() as i32;
    for f in linter.finish() {
        out.push(Located {
            statement_no: n,
            line: last_line,
            statement: String::new(),
            finding: f,
        });
    }
    Ok(out)
}

/// The settings for a lint from the caller's parameters and the server.
pub fn settings(small_table_bytes: i64, throughput_mb_s: f64) -> Settings {
    let (pg_major, utc) = catalog::server();
    Settings {
        small_table_bytes,
        throughput_mb_s,
        pg_major,
        utc,
    }
}

type Row = (
    i32,
    i32,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<i64>,
    Option<f64>,
    String,
    String,
    String,
);

// pgrx needs each result row spelled out as a name!() tuple in the signature
#[allow(clippy::type_complexity)]
// parallel unsafe: each statement is analyzed in a subtransaction, which parallel mode forbids
#[pg_extern(stable, parallel_unsafe)]
fn lint_migration(
    migration: &str,
    small_table_bytes: default!(i64, 10485760),
    throughput_mb_s: default!(f64, 100.0),
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
        name!(table_bytes, Option<i64>),
        name!(estimated_ms, Option<f64>),
        name!(finding, String),
        name!(safe_alternative, String),
        name!(statement, String),
    ),
> {
    let small = check_range("small_table_bytes", small_table_bytes, 0, i64::MAX);
    let mb_s = check_range("throughput_mb_s", throughput_mb_s, 0.001, 1.0e9);
    let found = crate::infra::search_path::guarded(|| findings(migration, settings(small, mb_s)));
    let rows: Vec<Row> = found
        .or_raise()
        .into_iter()
        .map(|l| {
            let f = l.finding;
            (
                l.statement_no,
                l.line,
                f.rule.to_string(),
                f.severity.to_string(),
                f.lock.name().to_string(),
                f.lock.blocks().to_string(),
                f.effect.name().to_string(),
                f.table,
                f.table_bytes,
                f.estimated_ms.map(|m| round(m, 3)),
                f.finding,
                f.safe_alternative,
                l.statement,
            )
        })
        .collect();
    TableIterator::new(rows)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn validated_check_and_volatility_from_the_catalog() -> spi::Result<()> {
        Spi::run("CREATE TABLE lint_t (id bigint PRIMARY KEY, c int, d int)")?;
        Spi::run("INSERT INTO lint_t SELECT g, g, g FROM generate_series(1, 200000) g")?;
        Spi::run("ALTER TABLE lint_t ADD CONSTRAINT lint_t_c_nn CHECK (c IS NOT NULL)")?;
        let n = |m: &str| {
            Spi::get_one_with_args::<i64>(
                "SELECT count(*) FROM capstone.lint_migration($1) WHERE rule <> 'require-lock-timeout' AND severity <> 'info'",
                &[m.into()],
            )
        };
        assert_eq!(
            n("ALTER TABLE lint_t ALTER COLUMN c SET NOT NULL")?,
            Some(0)
        );
        assert_eq!(
            n("ALTER TABLE lint_t ALTER COLUMN d SET NOT NULL")?,
            Some(1)
        );
        assert_eq!(
            n("ALTER TABLE lint_t ADD COLUMN t timestamptz DEFAULT now()")?,
            Some(0)
        );
        assert_eq!(
            n("ALTER TABLE lint_t ADD COLUMN t timestamptz DEFAULT clock_timestamp()")?,
            Some(1)
        );
        assert_eq!(n("ALTER TABLE lint_t ALTER COLUMN c TYPE bigint")?, Some(1));
        Ok(())
    }

    #[pg_test]
    fn a_bad_statement_gets_its_own_row() -> spi::Result<()> {
        let rules = Spi::get_one::<Vec<String>>(
            "SELECT array_agg(rule ORDER BY statement_no) FROM capstone.lint_migration('CREATE INDEX i ON pg_class (relname); ALTER TABEL x; DROP TABLE pg_am;')",
        )?;
        assert_eq!(
            rules,
            Some(vec![
                "require-concurrent-index-creation".to_string(),
                "syntax-error".to_string(),
                "ban-drop-table".to_string(),
                "require-lock-timeout".to_string(),
            ])
        );
        Ok(())
    }
}
