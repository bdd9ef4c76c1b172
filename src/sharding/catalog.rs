//! What the shard advisor reads from the server: the schema's tables, columns, keys
//! and `pg_stats` into a `SchemaModel`, and the top-level statements of
//! pg_stat_statements. SPI reads only; errors are returned, the surface raises them.

use super::model::{absolute_n_distinct, ColumnStats, ForeignKey, SchemaModel, Statement, Table};
use crate::infra::error::{CapstoneError, Result};
use crate::infra::spi::read_failed;
use crate::infra::subxact::{self, Outcome};
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use std::collections::HashMap;

/// A table without statistics bigger than this (main fork) makes the advice a guess.
const UNANALYZED_MAX_BYTES: i64 = 8 * 8192;

/// The schema must exist (3F000 otherwise).
pub fn check_schema(schema: &str) -> Result<()> {
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
        &[schema.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !exists {
        return Err(
            CapstoneError::UndefinedSchema(format!("schema \"{schema}\" does not exist"))
                .with_hint("list schemas with \\dn or SELECT nspname FROM pg_namespace"),
        );
    }
    Ok(())
}

/// Read tables, columns, keys, statistics and (if available) the workload of a
/// schema. Raises 55000 when the tables that matter have no statistics.
pub fn load_model(schema: &str) -> Result<(SchemaModel, Vec<String>)> {
    let mut tables: Vec<Table> = Vec::new();
    let mut unanalyzed_big: Vec<String> = Vec::new();
    let mut unanalyzed_small: Vec<String> = Vec::new();
    let res = Spi::connect(|c| {
        for r in c.select(
            "SELECT c.relname::text,
                    CASE WHEN c.relkind = 'p' THEN
                      (SELECT coalesce(sum(greatest(p.reltuples, 0)), 0) FROM pg_catalog.pg_partition_tree(c.oid) t
                         JOIN pg_catalog.pg_class p ON p.oid = t.relid WHERE t.isleaf)
                    ELSE greatest(c.reltuples, 0) END::float8,
                    CASE WHEN c.relkind = 'p' THEN
                      (SELECT coalesce(sum(pg_catalog.pg_total_relation_size(t.relid)), 0) FROM pg_catalog.pg_partition_tree(c.oid) t WHERE t.isleaf)
                    ELSE pg_catalog.pg_total_relation_size(c.oid) END::int8,
                    CASE WHEN c.relkind = 'p' THEN
                      (SELECT coalesce(sum(pg_catalog.pg_relation_size(t.relid)), 0) FROM pg_catalog.pg_partition_tree(c.oid) t WHERE t.isleaf)
                    ELSE pg_catalog.pg_relation_size(c.oid) END::int8,
                    EXISTS (SELECT 1 FROM pg_catalog.pg_stats s WHERE s.schemaname = n.nspname AND s.tablename = c.relname)
                      OR coalesce(st.last_analyze, st.last_autoanalyze) IS NOT NULL,
                    coalesce(st.seq_tup_read, 0)::float8 + coalesce(st.idx_tup_fetch, 0)::float8,
                    coalesce(st.n_tup_ins + st.n_tup_upd + st.n_tup_del, 0)::float8
               FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN pg_catalog.pg_stat_all_tables st ON st.relid = c.oid
              WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
              ORDER BY c.relname",
            None,
            &[schema.into()],
        )? {
            let name = r.get::<String>(1)?.unwrap_or_default();
            let heap = r.get::<i64>(4)?.unwrap_or(0);
            let analyzed = r.get::<bool>(5)?.unwrap_or(false);
            if !analyzed {
                if heap > UNANALYZED_MAX_BYTES {
                    unanalyzed_big.push(name.clone());
                } else {
                    unanalyzed_small.push(name.clone());
                }
            }
            tables.push(Table {
                name,
                rows: r.get::<f64>(2)?.unwrap_or(0.0),
                bytes: r.get::<i64>(3)?.unwrap_or(0),
                tuples_read: r.get::<f64>(6)?.unwrap_or(0.0),
                tuples_written: r.get::<f64>(7)?.unwrap_or(0.0),
                ..Default::default()
            });
        }
        Ok::<_, pgrx::spi::Error>(())
    });
    res.map_err(read_failed("the tables"))?;
    if tables.is_empty() {
        return Err(
            CapstoneError::PrerequisiteState(format!("schema \"{schema}\" has no tables"))
                .with_hint("shard_advice ranks shard keys for the tables of one schema; pass the schema that holds them"),
        );
    }
    if unanalyzed_big.len() + unanalyzed_small.len() == tables.len() || !unanalyzed_big.is_empty() {
        let missing: Vec<String> = if unanalyzed_big.is_empty() {
            unanalyzed_small.clone()
        } else {
            unanalyzed_big.clone()
        };
        let list = missing
            .iter()
            .map(|t| format!("{}.{}", quote_identifier(schema), quote_identifier(t)))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(CapstoneError::PrerequisiteState(format!(
            "no statistics for {} table(s) of schema \"{schema}\"",
            missing.len()
        ))
        .with(
            format!("without pg_stats the cardinality and skew of a key would be guessed; not analyzed: {list}"),
            format!("run ANALYZE {list}; then call shard_advice again"),
        ));
    }
    let idx: HashMap<String, usize> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    let mut fks: Vec<ForeignKey> = Vec::new();
    let res = Spi::connect(|c| {
        for r in c.select(
            "SELECT c.relname::text, a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod)
               FROM pg_catalog.pg_attribute a
               JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY c.relname, a.attnum",
            None,
            &[schema.into()],
        )? {
            let t = r.get::<String>(1)?.unwrap_or_default();
            if let Some(i) = idx.get(&t) {
                tables[*i].columns.push((
                    r.get::<String>(2)?.unwrap_or_default(),
                    r.get::<String>(3)?.unwrap_or_default(),
                ));
            }
        }
        for r in c.select(
            "SELECT con.contype::text, con.conname::text, c.relname::text, fc.relname::text,
                    coalesce(fn.nspname = n.nspname, false),
                    ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.ord),
                    ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.ord)
               FROM pg_catalog.pg_constraint con
               JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid
               LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
              WHERE n.nspname = $1 AND con.contype IN ('p', 'u', 'f') AND NOT c.relispartition
                AND con.conparentid = 0
              ORDER BY con.conname",
            None,
            &[schema.into()],
        )? {
            let kind = r.get::<String>(1)?.unwrap_or_default();
            let name = r.get::<String>(2)?.unwrap_or_default();
            let child = r.get::<String>(3)?.unwrap_or_default();
            let parent = r.get::<String>(4)?;
            let same_schema = r.get::<bool>(5)?.unwrap_or(false);
            let cols: Vec<String> = r
                .get::<Vec<Option<String>>>(6)?
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .collect();
            let fcols: Vec<String> = r
                .get::<Vec<Option<String>>>(7)?
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .collect();
            let Some(i) = idx.get(&child).copied() else {
                continue;
            };
            match kind.as_str() {
                "p" => tables[i].pk = cols,
                "u" => tables[i].uniques.push(cols),
                "f" if same_schema => {
                    if let Some(parent) = parent {
                        fks.push(ForeignKey {
                            name,
                            child,
                            parent,
                            pairs: cols.into_iter().zip(fcols).collect(),
                        });
                    }
                }
                _ => {}
            }
        }
        for r in c.select(
            "SELECT s.tablename::text, s.attname::text, coalesce(s.null_frac, 0)::float8,
                    coalesce(s.n_distinct, 0)::float8,
                    s.most_common_vals::text::text[], s.most_common_freqs::float8[]
               FROM pg_catalog.pg_stats s
               JOIN pg_catalog.pg_namespace n ON n.nspname = s.schemaname
               JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
              WHERE s.schemaname = $1 AND s.inherited = (c.relkind = 'p')
                AND c.relkind IN ('r', 'p') AND NOT c.relispartition",
            None,
            &[schema.into()],
        )? {
            let t = r.get::<String>(1)?.unwrap_or_default();
            let Some(i) = idx.get(&t).copied() else {
                continue;
            };
            let col = r.get::<String>(2)?.unwrap_or_default();
            let vals: Vec<Option<String>> = r.get::<Vec<Option<String>>>(5)?.unwrap_or_default();
            let freqs: Vec<Option<f64>> = r.get::<Vec<Option<f64>>>(6)?.unwrap_or_default();
            let rows = tables[i].rows;
            tables[i].stats.insert(
                col,
                ColumnStats {
                    null_frac: r.get::<f64>(3)?.unwrap_or(0.0),
                    n_distinct: absolute_n_distinct(r.get::<f64>(4)?.unwrap_or(0.0), rows),
                    mcv: vals
                        .into_iter()
                        .zip(freqs)
                        .filter_map(|(v, f)| Some((v?, f?)))
                        .collect(),
                },
            );
        }
        Ok::<_, pgrx::spi::Error>(())
    });
    res.map_err(read_failed("the catalogs"))?;
    let model = SchemaModel {
        schema: schema.to_string(),
        tables,
        fks,
        workload: load_workload(),
    };
    Ok((model, unanalyzed_small))
}

/// Top-level statements of this database from pg_stat_statements, or None when the
/// extension is not installed here or not preloaded.
fn load_workload() -> Option<Vec<Statement>> {
    let ext_schema = Spi::get_one::<String>(
        "SELECT n.nspname::text FROM pg_catalog.pg_extension e
           JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
          WHERE e.extname = 'pg_stat_statements'",
    )
    .ok()
    .flatten()?;
    let sql = format!(
        "SELECT query, calls::float8, total_exec_time::float8
           FROM {}.pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
            AND toplevel AND query IS NOT NULL
          ORDER BY calls DESC LIMIT 5000",
        quote_identifier(&ext_schema)
    );
    // not preloaded, or an old extension version without `toplevel`: no workload
    let r = subxact::run(Outcome::Rollback, || {
        Spi::connect(|c| {
            let mut out = Vec::new();
            for r in c.select(&sql, None, &[])? {
                out.push(Statement {
                    query: r.get::<String>(1)?.unwrap_or_default(),
                    calls: r.get::<f64>(2)?.unwrap_or(0.0),
                    total_ms: r.get::<f64>(3)?.unwrap_or(0.0),
                });
            }
            Ok::<_, pgrx::spi::Error>(out)
        })
    });
    match r {
        Ok(Ok(v)) => Some(v),
        _ => None,
    }
}
