//! The table the bloat scenario churns: a caller's table, checked (an ordinary table the
//! caller owns), or a lab-style scratch table in capstone_scratch, recreated each run.
//! It builds the UPDATE the scenario runs; it starts no worker and measures nothing.

use super::observe::{fail, run};
use crate::infra::error::{CapstoneError, Result};
use crate::infra::spi::optional_row;
use pgrx::pg_sys;
use pgrx::prelude::*;

const SCRATCH_SCHEMA: &str = "capstone_scratch";
const SCRATCH_TABLE: &str = "bloat_lab";

/// The relation the scenario works on.
pub struct Table {
    pub oid: pg_sys::Oid,
    pub name: String,
    pub update_sql: String,
    pub created: bool,
}

/// Check a caller-given table: an ordinary table the caller owns (VACUUM needs
/// ownership), with a column that can be assigned to itself.
pub fn check_table(oid: pg_sys::Oid) -> Result<Table> {
    let row = optional_row(
        "SELECT c.relkind::text, pg_catalog.format('%I.%I', n.nspname, c.relname),
                pg_catalog.pg_has_role(c.relowner, 'USAGE'),
                (SELECT a.attname::text FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                    AND a.attidentity <> 'a' AND a.attgenerated = ''
                  ORDER BY a.attnum LIMIT 1)
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.oid = $1",
        &[oid.into()],
        |r| {
            Ok((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
                r.get::<bool>(3)?.unwrap_or(false),
                r.get::<String>(4)?,
            ))
        },
    )
    .map_err(fail("reading the table"))?;
    let Some((relkind, name, owner, column)) = row else {
        return Err(CapstoneError::UndefinedTable(format!(
            "relation with OID {} does not exist",
            oid.to_u32()
        ))
        .with_hint("pass a table that exists, or leave rel NULL for a scratch table"));
    };
    if relkind != "r" {
        return Err(CapstoneError::WrongObjectType(format!("{name} is not an ordinary table")).with_hint(
            "the scenario rewrites rows and runs VACUUM on them: pass a table, or leave rel NULL for a scratch table",
        ));
    }
    if !owner {
        return Err(CapstoneError::InsufficientPrivilege(format!(
            "must be the owner of table {name}"
        ))
        .with_hint(
            "VACUUM processes only tables the caller owns; leave rel NULL for a scratch table",
        ));
    }
    let Some(column) = column else {
        return Err(CapstoneError::WrongObjectType(format!(
            "table {name} has no column an UPDATE can assign"
        ))
        .with_hint("every column is GENERATED ALWAYS; pass another table"));
    };
    let col = pgrx::spi::quote_identifier(column);
    Ok(Table {
        oid,
        update_sql: format!(
            "WITH u AS (UPDATE {name} SET {col} = {col}
                         WHERE ctid = ANY (ARRAY(SELECT ctid FROM {name} LIMIT $1)) RETURNING 1)
             SELECT count(*) FROM u"
        ),
        name,
        created: false,
    })
}

/// (Re)create the scratch table: a lab-style orders table with a low-cardinality
/// status index, autovacuum off so only the scenario's VACUUMs touch it.
pub fn scratch_table(rows: i32) -> Result<Table> {
    let name = format!("{SCRATCH_SCHEMA}.{SCRATCH_TABLE}");
    let has_schema = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
        &[SCRATCH_SCHEMA.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !has_schema {
        run(&format!("CREATE SCHEMA {SCRATCH_SCHEMA}"), "CREATE SCHEMA")?;
    }
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
        &[name.as_str().into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if exists {
        run(
            &format!("DROP TABLE {name}"),
            "dropping the old scratch table",
        )?;
    }
    run(
        &format!(
            "CREATE TABLE {name} (
                 id          bigint PRIMARY KEY,
                 tenant_id   integer NOT NULL,
                 status      text NOT NULL,
                 total_cents bigint NOT NULL,
                 note        text NOT NULL,
                 updated_at  timestamptz NOT NULL
             ) WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false)"
        ),
        "CREATE TABLE",
    )?;
    Spi::run_with_args(
        &format!(
            "INSERT INTO {name}
             SELECT g, 1 + g % 100, (ARRAY['pending', 'paid', 'shipped', 'refunded'])[1 + g % 4],
                    (g * 7919) % 100000, 'order ' || g,
                    timestamptz '2026-01-01 00:00+00' + g * interval '1 second'
               FROM pg_catalog.generate_series(1, $1) g"
        ),
        &[i64::from(rows).into()],
    )
    .map_err(fail("loading the scratch table"))?;
    run(
        &format!("CREATE INDEX {SCRATCH_TABLE}_status_idx ON {name} (status)"),
        "CREATE INDEX",
    )?;
    run(&format!("ANALYZE {name}"), "ANALYZE")?;
    let oid = Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT pg_catalog.to_regclass($1)::oid",
        &[name.as_str().into()],
    )
    .ok()
    .flatten()
    .unwrap_or(pg_sys::InvalidOid);
    Ok(Table {
        oid,
        // every row rewritten once, its indexed status changed: heap and index both bloat
        update_sql: format!(
            "WITH u AS (UPDATE {name} SET status = CASE status WHEN 'paid' THEN 'shipped' ELSE 'paid' END,
                                          updated_at = updated_at + interval '1 hour'
                         WHERE id <= $1 RETURNING 1)
             SELECT count(*) FROM u"
        ),
        name,
        created: true,
    })
}
