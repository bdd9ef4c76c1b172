//! index_drop_advice's readers: the indexes on tables the caller may read, with their
//! scan counts and what protects them, and the watched-plan test (plan each of the
//! caller's watched queries with the index hidden: is every plan's cost unchanged?).
//! Reads only; plans, never executes.

use super::analyze;
use super::drop::Index;
use super::store;
use crate::infra::error::Result;
use crate::infra::spi::read_failed;
use pgrx::prelude::*;

/// One existing index, and what the report shows of it.
pub struct Listed {
    pub index: Index,
    pub table_name: String,
    pub size_bytes: i64,
}

/// Indexes on the user tables (and materialized views) the caller may SELECT from.
pub fn indexes() -> Result<Vec<Listed>> {
    Spi::connect(|c| {
        let t = c.select(
            "SELECT i.indexrelid, format('%I.%I', n.nspname, ci.relname), i.indrelid,
                    format('%I.%I', n.nspname, ct.relname), ci.relam,
                    (i.indkey::int2[])[0:i.indnkeyatts - 1], i.indkey::int2[],
                    i.indclass::oid[], i.indcollation::oid[],
                    pg_get_expr(i.indexprs, i.indrelid), pg_get_expr(i.indpred, i.indrelid),
                    i.indisunique,
                    CASE WHEN i.indisprimary THEN 'primary key'
                         WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid)
                           THEN 'constraint'
                         WHEN i.indisreplident THEN 'replica identity' END,
                    s.idx_scan, pg_catalog.pg_relation_size(i.indexrelid), i.indisvalid AND i.indisready
               FROM pg_catalog.pg_index i
               JOIN pg_catalog.pg_class ci ON ci.oid = i.indexrelid
               JOIN pg_catalog.pg_class ct ON ct.oid = i.indrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = ct.relnamespace
               LEFT JOIN pg_catalog.pg_stat_all_indexes s ON s.indexrelid = i.indexrelid
              WHERE ct.relkind IN ('r', 'm')
                AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'capstone')
                AND n.nspname NOT LIKE 'pg\\_toast%'
                AND pg_catalog.has_table_privilege(ct.oid, 'SELECT')
              ORDER BY i.indrelid, i.indexrelid",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for r in t {
            let oid = |o: Option<pg_sys::Oid>| o.map(|o| o.to_u32()).unwrap_or_default();
            let oids = |v: Option<Vec<pg_sys::Oid>>| {
                v.unwrap_or_default()
                    .into_iter()
                    .map(|o| o.to_u32())
                    .collect::<Vec<_>>()
            };
            out.push(Listed {
                index: Index {
                    oid: oid(r.get(1)?),
                    name: r.get::<String>(2)?.unwrap_or_default(),
                    table: oid(r.get(3)?),
                    am: oid(r.get(5)?),
                    keys: r.get::<Vec<i16>>(6)?.unwrap_or_default(),
                    columns: r.get::<Vec<i16>>(7)?.unwrap_or_default(),
                    opclasses: oids(r.get(8)?),
                    collations: oids(r.get(9)?),
                    exprs: r.get::<String>(10)?,
                    pred: r.get::<String>(11)?,
                    unique: r.get::<bool>(12)?.unwrap_or(false),
                    protected: r.get::<String>(13)?,
                    idx_scan: r.get::<i64>(14)?,
                    valid: r.get::<bool>(16)?.unwrap_or(false),
                },
                table_name: r.get::<String>(4)?.unwrap_or_default(),
                size_bytes: r.get::<i64>(15)?.unwrap_or_default(),
            });
        }
        Ok(out)
    })
    .map_err(|e: pgrx::spi::Error| read_failed("pg_index")(e).into())
}

/// When this database's statistics were last reset (NULL: never).
pub fn stats_reset() -> Option<pgrx::datum::TimestampWithTimeZone> {
    Spi::get_one::<pgrx::datum::TimestampWithTimeZone>(
        "SELECT stats_reset FROM pg_catalog.pg_stat_database WHERE datname = pg_catalog.current_database()",
    )
    .ok()
    .flatten()
}

/// The caller's enabled watched queries (row-level security keeps others' out), analyzed;
/// those that no longer analyze are left out.
pub fn watched() -> Vec<(String, analyze::Analyzed)> {
    let rows: Vec<(String, String)> = Spi::connect(|c| {
        let t = c.select(
            "SELECT name, sql FROM capstone.watched_queries WHERE enabled AND owner = current_user ORDER BY name",
            None,
            &[],
        )?;
        let mut v = Vec::new();
        for r in t {
            v.push((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
            ));
        }
        Ok::<_, pgrx::spi::Error>(v)
    })
    .unwrap_or_default();
    rows.into_iter()
        .filter_map(|(name, sql)| {
            crate::infra::subxact::run(crate::infra::subxact::Outcome::Commit, || {
                crate::infra::search_path::as_caller(|| analyze::analyze(&sql))
            })
            .ok()
            .flatten()
            .map(|a| (name, a))
        })
        .collect()
}

/// How many watched queries use the index's table, when hiding the index changes none
/// of their plans' costs; None when some plan changes or none uses the table.
pub fn hide_leaves_plans(index: &Index, watched: &[(String, analyze::Analyzed)]) -> Option<usize> {
    let users: Vec<&analyze::Analyzed> = watched
        .iter()
        .map(|(_, a)| a)
        .filter(|a| a.relids.contains(&index.table))
        .collect();
    if users.is_empty() {
        return None;
    }
    let oid = pg_sys::Oid::from(index.oid);
    if store::hidden().contains(&oid) {
        return None;
    }
    let r = crate::infra::subxact::run(crate::infra::subxact::Outcome::Commit, || {
        let before: Vec<f64> = users
            .iter()
            .map(|a| analyze::generic_cost(a, true))
            .collect();
        store::hide(oid);
        let after: Vec<f64> = users
            .iter()
            .map(|a| analyze::generic_cost(a, true))
            .collect();
        store::unhide(oid);
        before
            .iter()
            .zip(&after)
            .all(|(b, a)| (b - a).abs() <= 1e-9 * b.abs().max(1.0))
    });
    if r.is_err() {
        // an error while planning left it hidden
        store::unhide(oid);
    }
    matches!(r, Ok(true)).then_some(users.len())
}
