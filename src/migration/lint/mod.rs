//! The migration linter's SQL surface: `lint_migration` splits a migration with
//! PostgreSQL's own parser and scanner, walks each statement's parse tree, grades it with
//! the live catalog and returns one row per finding. Nothing in the migration is executed.
//! `findings` is the same linter for `safe_ddl`.

pub mod catalog;
pub mod expr;
pub mod form;
pub mod model;
pub mod partition;
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
        let mut found = match &p.action {
            Ok(a) => {
                let in_tx = linter.in_transaction();
                let mut f = linter.statement(a);
                f.extend(linter.form(&p.form, in_tx));
                f
            }
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
        found.extend(linter.identifiers(text));
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
        statement_timeout: false,
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
                "SELECT count(*) FROM capstone.lint_migration($1) WHERE rule NOT IN ('require-lock-timeout', 'require-statement-timeout') AND severity <> 'info'",
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
            "SELECT array_agg(rule ORDER BY statement_no, rule) FROM capstone.lint_migration('CREATE INDEX i ON pg_class (relname); ALTER TABEL x; DROP TABLE pg_am;') WHERE severity <> 'info'",
        )?;
        assert_eq!(
            rules,
            Some(vec![
                "require-concurrent-index-creation".to_string(),
                // pg_class is small: the statement_timeout finding is low
                "require-statement-timeout".to_string(),
                "syntax-error".to_string(),
                "ban-drop-table".to_string(),
                "require-lock-timeout".to_string(),
            ])
        );
        // with a syntax error elsewhere the migration is cut at `;` tokens, but a function
        // body in BEGIN ATOMIC ... END stays one statement
        let rules = Spi::get_one::<Vec<String>>(
            "SELECT array_agg(rule || ':' || statement_no ORDER BY statement_no, rule) FROM capstone.lint_migration(
               'ALTER TABEL x; CREATE FUNCTION lint_fa() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; DROP TABLE pg_am;')
              WHERE severity <> 'info'",
        )?;
        assert_eq!(
            rules,
            Some(vec![
                "syntax-error:1".to_string(),
                "ban-drop-table:3".to_string(),
                "require-lock-timeout:3".to_string(),
            ])
        );
        Ok(())
    }

    /// What the linter says is a rewrite is one, measured: the table's file changes.
    #[pg_test]
    fn rewrite_verdicts_match_the_relfilenode() -> spi::Result<()> {
        Spi::run("CREATE DOMAIN lint_pos AS int CHECK (VALUE > 0)")?;
        Spi::run("CREATE DOMAIN lint_any AS int")?;
        Spi::run("CREATE TABLE lint_d (id bigint PRIMARY KEY)")?;
        Spi::run("INSERT INTO lint_d SELECT generate_series(1, 1000)")?;
        let filenode = || {
            Spi::get_one::<i64>("SELECT pg_relation_filenode('lint_d')::bigint")
                .map(|x| x.unwrap_or(0))
        };
        for ddl in [
            "ALTER TABLE lint_d ADD COLUMN a lint_any",
            "ALTER TABLE lint_d ADD COLUMN b lint_pos",
            "ALTER TABLE lint_d ADD COLUMN c lint_pos DEFAULT 1",
            "ALTER TABLE lint_d ADD COLUMN d int DEFAULT 1",
            "ALTER TABLE lint_d ADD COLUMN e timestamptz DEFAULT now()",
            "ALTER TABLE lint_d ADD COLUMN f timestamptz DEFAULT clock_timestamp()",
            "ALTER TABLE lint_d ALTER COLUMN d TYPE bigint",
        ] {
            let claims = Spi::get_one_with_args::<bool>(
                "SELECT coalesce(bool_or(effect = 'rewrite'), false) FROM capstone.lint_migration($1)",
                &[ddl.into()],
            )?;
            let before = filenode()?;
            Spi::run(ddl)?;
            let rewrote = filenode()? != before;
            assert_eq!(
                claims,
                Some(rewrote),
                "{ddl}: linter said rewrite = {claims:?}, the filenode says {rewrote}"
            );
        }
        Ok(())
    }

    /// ATTACH PARTITION: the tables the linter says are scanned are the ones the attach
    /// scans, measured by their sequential-scan count in this transaction.
    #[pg_test]
    fn attach_partition_scans_match_the_measured_scans() -> spi::Result<()> {
        Spi::run("CREATE TABLE lint_p (id bigint NOT NULL, v int) PARTITION BY RANGE (id)")?;
        for (t, lo) in [("lint_p1", 1), ("lint_p2", 1001)] {
            Spi::run(&format!("CREATE TABLE {t} (LIKE lint_p)"))?;
            Spi::run(&format!(
                "INSERT INTO {t} SELECT g, g FROM generate_series({lo}, {lo} + 999) g"
            ))?;
        }
        // lint_p1 carries a validated CHECK matching its bound; lint_p2 does not
        Spi::run("ALTER TABLE lint_p1 ADD CONSTRAINT lint_p1_b CHECK (id >= 1 AND id < 1001)")?;
        let claimed = |m: &str| -> spi::Result<Vec<String>> {
            Ok(Spi::get_one_with_args::<Vec<String>>(
                "SELECT coalesce(array_agg(DISTINCT regexp_replace(table_name, '^.*[.]', '')), '{}')
                   FROM capstone.lint_migration($1) WHERE rule = 'attach-partition-scans'",
                &[m.into()],
            )?
            .unwrap_or_default())
        };
        let scans = |t: &str| -> spi::Result<i64> {
            Ok(Spi::get_one_with_args::<i64>(
                "SELECT pg_stat_get_xact_numscans($1::regclass)",
                &[t.into()],
            )?
            .unwrap_or(0))
        };
        // run the attach and return the tables it scanned, of those given
        let measured = |ddl: &str, tables: &[&str]| -> spi::Result<Vec<String>> {
            let before: Vec<i64> = tables
                .iter()
                .map(|t| scans(t))
                .collect::<spi::Result<_>>()?;
            Spi::run(ddl)?;
            let mut out = Vec::new();
            for (t, b) in tables.iter().zip(before) {
                if scans(t)? > b {
                    out.push(t.to_string());
                }
            }
            Ok(out)
        };
        let p1 = "ALTER TABLE lint_p ATTACH PARTITION lint_p1 FOR VALUES FROM (1) TO (1001)";
        let p2 = "ALTER TABLE lint_p ATTACH PARTITION lint_p2 FOR VALUES FROM (1001) TO (2001)";
        assert_eq!(claimed(p1)?, Vec::<String>::new());
        assert_eq!(claimed(p1)?, measured(p1, &["lint_p1"])?);
        assert_eq!(claimed(p2)?, vec!["lint_p2".to_string()]);
        assert_eq!(claimed(p2)?, measured(p2, &["lint_p2"])?);
        // with a default partition, attaching also scans it unless its own check
        // proves it holds none of the new bound's rows
        Spi::run("ALTER TABLE lint_p DETACH PARTITION lint_p1")?;
        Spi::run("CREATE TABLE lint_pd PARTITION OF lint_p DEFAULT")?;
        Spi::run("INSERT INTO lint_pd VALUES (5000, 1)")?;
        let with_default = claimed(p1)?;
        assert_eq!(with_default, vec!["lint_pd".to_string()]);
        assert_eq!(with_default, measured(p1, &["lint_p1", "lint_pd"])?);
        Spi::run("ALTER TABLE lint_p DETACH PARTITION lint_p1")?;
        Spi::run("ALTER TABLE lint_pd ADD CONSTRAINT lint_pd_b CHECK (id >= 5000)")?;
        let proven = claimed(p1)?;
        assert_eq!(proven, Vec::<String>::new());
        assert_eq!(proven, measured(p1, &["lint_p1", "lint_pd"])?);
        Ok(())
    }

    /// What a DROP breaks, from the catalog: the constraint's kind and the keys that
    /// reference it, whether a column losing its default is NOT NULL.
    #[pg_test]
    fn what_a_drop_breaks_from_the_catalog() -> spi::Result<()> {
        Spi::run("CREATE TABLE lint_k (id bigint PRIMARY KEY, u int UNIQUE, c int CONSTRAINT lint_k_c CHECK (c > 0), d int NOT NULL DEFAULT 0, e int DEFAULT 0)")?;
        Spi::run("CREATE TABLE lint_kr (k bigint REFERENCES lint_k (id))")?;
        let found = |m: &str| -> spi::Result<String> {
            Ok(Spi::get_one_with_args::<String>(
                "SELECT coalesce(string_agg(rule || ':' || severity, ',' ORDER BY rule), '') FROM capstone.lint_migration($1) WHERE rule LIKE 'ban-%'",
                &[m.into()],
            )?
            .unwrap_or_default())
        };
        assert_eq!(
            found("ALTER TABLE lint_k DROP CONSTRAINT lint_k_pkey")?,
            "ban-drop-constraint:high"
        );
        let pk = Spi::get_one::<String>(
            "SELECT finding FROM capstone.lint_migration('ALTER TABLE lint_k DROP CONSTRAINT lint_k_pkey') WHERE rule = 'ban-drop-constraint'",
        )?
        .unwrap_or_default();
        assert!(pk.contains("1 foreign key(s)"), "{pk}");
        assert_eq!(
            found("ALTER TABLE lint_k DROP CONSTRAINT lint_k_u_key")?,
            "ban-drop-constraint:high"
        );
        assert_eq!(
            found("ALTER TABLE lint_k DROP CONSTRAINT lint_k_c")?,
            "ban-drop-constraint:low"
        );
        assert_eq!(
            found("ALTER TABLE lint_k ALTER COLUMN d DROP DEFAULT")?,
            "ban-drop-default:high"
        );
        assert_eq!(
            found("ALTER TABLE lint_k ALTER COLUMN e DROP DEFAULT")?,
            "ban-drop-default:medium"
        );
        assert_eq!(
            found("ALTER TABLE lint_k ALTER COLUMN e SET DEFAULT 1")?,
            ""
        );
        assert_eq!(
            found("DROP VIEW IF EXISTS lint_v CASCADE")?,
            "ban-drop-view:high"
        );
        assert_eq!(
            found("DROP FUNCTION lint_f(int)")?,
            "ban-drop-function:medium"
        );
        assert_eq!(found("DROP SCHEMA lint_s")?, "ban-drop-schema:high");
        assert_eq!(
            found("ALTER TABLE lint_k SET SCHEMA public")?,
            "ban-set-schema:high"
        );
        assert_eq!(
            found("ALTER TABLE lint_k ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY")?,
            "ban-alter-identity:medium"
        );
        Ok(())
    }

    /// The form rules on PostgreSQL's own parse trees and the live search_path.
    #[pg_test]
    fn reruns_schemas_identifiers_and_timeouts() -> spi::Result<()> {
        Spi::run("CREATE SCHEMA lint_s")?;
        Spi::run("CREATE TABLE lint_s.r (id bigint PRIMARY KEY, v int)")?;
        Spi::run("INSERT INTO lint_s.r SELECT g, g FROM generate_series(1, 1000) g")?;
        Spi::run("SET LOCAL search_path = lint_s, public")?;
        let rules = |m: &str| -> spi::Result<Vec<String>> {
            Ok(Spi::get_one_with_args::<Vec<String>>(
                "SELECT coalesce(array_agg(rule || ':' || statement_no ORDER BY statement_no, rule, finding), '{}')
                   FROM capstone.lint_migration($1)
                  WHERE rule IN ('prefer-robust-stmts', 'require-table-schema', 'identifier-too-long', 'require-statement-timeout')",
                &[m.into()],
            )?
            .unwrap_or_default())
        };
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            rules("ALTER TABLE r ADD COLUMN c int; ALTER TABLE lint_s.r DROP COLUMN IF EXISTS v; CREATE INDEX CONCURRENTLY r_v ON lint_s.r (v)")?,
            v(&["prefer-robust-stmts:1", "require-table-schema:1", "prefer-robust-stmts:3"])
        );
        let schema = Spi::get_one::<String>(
            "SELECT finding FROM capstone.lint_migration('ALTER TABLE r ADD COLUMN c int') WHERE rule = 'require-table-schema'",
        )?;
        assert!(schema.unwrap_or_default().contains("lint_s.r"));
        assert_eq!(
            rules("BEGIN; ALTER TABLE lint_s.r ADD COLUMN c int; DROP TABLE lint_s.r; COMMIT;")?,
            v(&[])
        );
        assert_eq!(
            rules("ALTER TABLE lint_s.r DROP CONSTRAINT IF EXISTS r_chk; ALTER TABLE lint_s.r ADD CONSTRAINT r_chk CHECK (v > 0) NOT VALID; ALTER TABLE lint_s.r ADD CONSTRAINT r_other CHECK (v > 0) NOT VALID")?,
            v(&["prefer-robust-stmts:3"])
        );
        let long = "x".repeat(70);
        assert_eq!(
            rules(&format!(
                "CREATE TABLE IF NOT EXISTS lint_s.{long} (id bigint); SELECT '{long}'"
            ))?,
            v(&["identifier-too-long:1"])
        );
        // a rewrite under ACCESS EXCLUSIVE without a statement_timeout, and with one
        let rewrite =
            "ALTER TABLE lint_s.r ADD COLUMN IF NOT EXISTS t timestamptz DEFAULT clock_timestamp()";
        assert_eq!(rules(rewrite)?, v(&["require-statement-timeout:1"]));
        assert_eq!(
            rules(&format!("SET statement_timeout = '1min'; {rewrite}"))?,
            v(&[])
        );
        assert_eq!(
            rules(&format!(
                "BEGIN; SET LOCAL statement_timeout = '1min'; COMMIT; {rewrite}"
            ))?,
            v(&["require-statement-timeout:4"])
        );
        // a DROP names what it drops, whatever node kind the parser keeps the name in
        let drop_type = Spi::get_one::<String>(
            "SELECT finding FROM capstone.lint_migration('DROP TYPE lint_s.nothing') WHERE rule = 'prefer-robust-stmts'",
        )?
        .unwrap_or_default();
        assert!(
            drop_type.contains("DROP TYPE lint_s.nothing"),
            "{drop_type}"
        );
        // a temporary table is nobody else's: no schema, no rerun finding
        assert_eq!(rules("CREATE TEMP TABLE lint_tmp (id bigint)")?, v(&[]));
        Ok(())
    }
}
