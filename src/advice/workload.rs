//! SPI readers for the index advisor: the caller's statements in pg_stat_statements,
//! the existing indexes' key columns, and the tables' write counts. Reads only what the
//! caller may see; writes nothing.

use super::hot::Writes;
use crate::infra::error::{CapstoneError, Failure, Result};
use crate::infra::spi::read_failed;
use pgrx::prelude::*;
use std::collections::BTreeMap;

/// One statement of the workload.
#[derive(Debug, Clone)]
pub struct Entry {
    pub queryid: i64,
    pub query: String,
    pub calls: i64,
    /// Rows it returned or changed, over all calls.
    pub rows: i64,
}

/// Most statements one call reads (the most expensive first).
pub const MAX_STATEMENTS: i64 = 5000;

fn missing() -> Failure {
    CapstoneError::UndefinedObject("pg_stat_statements is not installed in this database".into())
        .with(
            "index_advice reads the workload from pg_stat_statements",
            "add pg_stat_statements to shared_preload_libraries, restart, then CREATE EXTENSION pg_stat_statements",
        )
}

/// The schema pg_stat_statements is installed in, or 42704 with a hint.
fn schema() -> Result<String> {
    crate::infra::spi::optional_row(
        "SELECT n.nspname::text FROM pg_catalog.pg_extension e
           JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
          WHERE e.extname = 'pg_stat_statements'",
        &[],
        |r| r.get::<String>(1),
    )
    .map_err(read_failed("pg_extension"))?
    .flatten()
    .ok_or_else(missing)
}

/// The caller's statements in this database (every role's for a superuser) called at
/// least `min_calls` times, most total time first.
pub fn statements(min_calls: i64) -> Result<Vec<Entry>> {
    let ns = schema()?;
    let sql = format!(
        "SELECT queryid, query, calls, rows FROM {}.pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
            AND calls >= $1 AND queryid IS NOT NULL AND query IS NOT NULL
            AND (userid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
                 OR (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user))
          ORDER BY total_exec_time DESC, queryid
          LIMIT {MAX_STATEMENTS}",
        pgrx::spi::quote_identifier(&ns)
    );
    let read = crate::infra::subxact::run(crate::infra::subxact::Outcome::Commit, || {
        Spi::connect(|c| {
            let t = c.select(&sql, None, &[min_calls.into()])?;
            let mut out = Vec::new();
            for r in t {
                out.push(Entry {
                    queryid: r.get::<i64>(1)?.unwrap_or_default(),
                    query: r.get::<String>(2)?.unwrap_or_default(),
                    calls: r.get::<i64>(3)?.unwrap_or_default(),
                    rows: r.get::<i64>(4)?.unwrap_or_default(),
                });
            }
            Ok::<_, pgrx::spi::Error>(out)
        })
    });
    match read {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(e)) => Err(read_failed("pg_stat_statements")(e)
            .with_hint("check that pg_stat_statements is loaded")),
        // e.g. "pg_stat_statements must be loaded via shared_preload_libraries"
        Err(e) => {
            let (code, msg) = crate::infra::subxact::describe(&e);
            Err(
                CapstoneError::PrerequisiteState(format!("cannot read pg_stat_statements: {msg}"))
                    .with(
                        format!("SQLSTATE {code}"),
                        "add pg_stat_statements to shared_preload_libraries and restart the server",
                    ),
            )
        }
    }
}

/// Key column numbers of each valid, non-partial btree index on these tables.
pub fn existing_keys(relids: &[u32]) -> Result<BTreeMap<u32, Vec<Vec<i16>>>> {
    let ids: Vec<pg_sys::Oid> = relids.iter().map(|r| pg_sys::Oid::from(*r)).collect();
    Spi::connect(|c| {
        let t = c.select(
            "SELECT i.indrelid, (i.indkey::int2[])[0:i.indnkeyatts - 1]
               FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
              WHERE i.indrelid = ANY($1) AND i.indisvalid AND i.indpred IS NULL
                AND c.relam = 403",
            None,
            &[ids.into()],
        )?;
        let mut out: BTreeMap<u32, Vec<Vec<i16>>> = BTreeMap::new();
        for r in t {
            let rel = r
                .get::<pg_sys::Oid>(1)?
                .map(|o| o.to_u32())
                .unwrap_or_default();
            let keys: Vec<i16> = r.get::<Vec<i16>>(2)?.unwrap_or_default();
            out.entry(rel).or_default().push(keys);
        }
        Ok(out)
    })
    .map_err(|e: pgrx::spi::Error| read_failed("pg_index")(e).into())
}

/// Per table: its inserts, updates and HOT updates since the statistics were reset, and
/// the bytes of one entry in each of its existing indexes, summed (from their sizes).
pub fn writes(relids: &[u32]) -> Result<BTreeMap<u32, (Writes, i64)>> {
    let ids: Vec<pg_sys::Oid> = relids.iter().map(|r| pg_sys::Oid::from(*r)).collect();
    Spi::connect(|c| {
        let t = c.select(
            "SELECT s.relid, s.n_tup_ins, s.n_tup_upd, s.n_tup_hot_upd,
                    (SELECT coalesce(sum(ic.relpages::float8 * pg_catalog.current_setting('block_size')::float8
                                         / ic.reltuples), 0)::bigint
                       FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
                      WHERE i.indrelid = s.relid AND ic.reltuples > 0)
               FROM pg_catalog.pg_stat_user_tables s WHERE s.relid = ANY($1)",
            None,
            &[ids.into()],
        )?;
        let mut out = BTreeMap::new();
        for r in t {
            let rel = r.get::<pg_sys::Oid>(1)?.map(|o| o.to_u32()).unwrap_or_default();
            let w = Writes {
                inserts: r.get::<i64>(2)?.unwrap_or_default(),
                updates: r.get::<i64>(3)?.unwrap_or_default(),
                hot_updates: r.get::<i64>(4)?.unwrap_or_default(),
            };
            out.insert(rel, (w, r.get::<i64>(5)?.unwrap_or_default()));
        }
        Ok(out)
    })
    .map_err(|e: pgrx::spi::Error| read_failed("pg_stat_user_tables")(e).into())
}
