//! The catalogue's runs on scratch tables: `capstone_scratch.isolation_<token>`, created
//! and dropped by session A (as the caller, committed so the other sessions see it), two
//! rows each (1 = 10, 2 = 20). A table a cut-short run left behind is swept before the next
//! run. Independent of the lab.

use super::catalogue::{self, Case, Verdict};
use super::driver::{run_script, Driver, Ended};
use super::fixes::{self, Fix};
use super::rows::Row;
use super::runs::{record_swept, refuse_lacking};
use crate::infra::error::{CapstoneError, Result};
use pgrx::prelude::*;

pub const SCHEMA: &str = "capstone_scratch";

pub fn table(token: i64) -> String {
    format!("{SCHEMA}.isolation_{token}")
}

pub fn drop_sql(token: i64) -> String {
    format!("DROP TABLE IF EXISTS {}", table(token))
}

/// The caller's sessions create the scratch schema (if absent) and tables: say what the
/// caller lacks for that before anything runs.
pub fn check_privileges(function: &str) -> Result<()> {
    let missing = Spi::get_one::<String>(
        "SELECT CASE WHEN n.oid IS NULL THEN
                  CASE WHEN NOT pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE')
                       THEN pg_catalog.format('CREATE on database %I (to create schema capstone_scratch)', pg_catalog.current_database()) END
                WHEN NOT (pg_catalog.has_schema_privilege(n.oid, 'USAGE') AND pg_catalog.has_schema_privilege(n.oid, 'CREATE'))
                  THEN 'USAGE and CREATE on schema capstone_scratch' END
           FROM (SELECT 1) one LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = 'capstone_scratch'",
    )
    .ok()
    .flatten();
    refuse_lacking(
        function,
        missing,
        "the catalogue cases run on scratch tables the sessions create in schema capstone_scratch; nothing was created or run",
        "grant CREATE on the database (the first run creates capstone_scratch), or USAGE and CREATE on schema capstone_scratch",
    )
}

/// Drop the caller's scratch tables that a cut-short run left behind, and say so.
pub fn sweep(d: &Driver) -> Result<()> {
    let left = match d.exec(
        0,
        "SELECT coalesce(pg_catalog.string_agg(pg_catalog.format('%I.%I', schemaname, tablename), ', ' ORDER BY tablename), '')
           FROM pg_catalog.pg_tables
          WHERE schemaname = 'capstone_scratch' AND tablename ~ '^isolation_[0-9]+$' AND tableowner = current_user",
    )? {
        Ended::Row(v) => v,
        Ended::Failed(..) => String::new(),
    };
    if left.is_empty() {
        return Ok(());
    }
    // the names come from the catalog, quoted by format('%I')
    d.exec(0, &format!("DROP TABLE IF EXISTS {left}"))?;
    record_swept("the scratch tables of an aborted isolation run", &left);
    Ok(())
}

/// Create the schema if absent (the first run needs CREATE on the database).
pub fn ensure_schema(d: &Driver) -> Result<()> {
    let has = Spi::get_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'capstone_scratch')",
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !has {
        if let Ended::Failed(c, m) = d.exec(0, "CREATE SCHEMA IF NOT EXISTS capstone_scratch")? {
            // 42P06/23505: another role created it at the same moment
            if c != "42P06" && c != "23505" {
                return Err(CapstoneError::PrerequisiteState(format!(
                    "scratch setup failed ({c}): {m}"
                ))
                .into());
            }
        }
    }
    Ok(())
}

/// One run of `case` under `level` (with `fix` applied) on a fresh scratch table: the rows (setup, every
/// statement, the verdict) and the verdict. The table is dropped here; on an error the
/// caller's cleanup drops it.
pub fn run_case(
    d: &Driver,
    case: &Case,
    level: &str,
    fix: Option<Fix>,
    token: i64,
) -> Result<(Vec<Row>, Verdict)> {
    let t = table(token);
    let mut setup = vec![
        format!("CREATE TABLE {t} (id integer PRIMARY KEY, value integer NOT NULL)"),
        format!("INSERT INTO {t} VALUES (1, 10), (2, 20)"),
    ];
    let extra = fix.map(|f| fixes::setup(case, f, &t)).unwrap_or_default();
    setup.extend(extra.iter().cloned());
    for sql in setup {
        if let Ended::Failed(c, m) = d.exec(0, &sql)? {
            return Err(CapstoneError::PrerequisiteState(format!(
                "scratch setup failed ({c}): {m}"
            ))
            .into());
        }
    }
    let mut rows = vec![Row {
        step: 0,
        session: "setup".into(),
        statement: std::iter::once(format!("scratch table {t}: (1, 10), (2, 20)"))
            .chain(extra)
            .collect::<Vec<_>>()
            .join("; "),
        result: Some("committed".into()),
        sqlstate: None,
        wait_ms: 0.0,
    }];
    let steps = catalogue::script(case, level, fix, &t);
    let (mut ran, obs) = run_script(d, &steps, case.sessions)?;
    rows.append(&mut ran);
    let check = catalogue::read_all(&t);
    let final_state = match d.exec(0, &check)? {
        Ended::Row(v) => v,
        Ended::Failed(c, _) => format!("unreadable ({c})"),
    };
    let v = catalogue::verdict(case, &obs, &final_state);
    rows.push(Row {
        step: rows.len() as i32,
        session: "check".into(),
        statement: check,
        result: Some(v.text(case, &final_state)),
        sqlstate: None,
        wait_ms: 0.0,
    });
    d.exec(0, &drop_sql(token))?;
    Ok((rows, v))
}
