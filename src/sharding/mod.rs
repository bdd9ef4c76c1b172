//! The sharding gate: shard or not, measured. `capstone.shard_advice(schema)` ranks
//! candidate shard keys from the catalogs, `pg_stats` and `pg_stat_statements`;
//! `capstone.shard_plan(schema)` turns the winner into steps and the Citus DDL they
//! map to, with hot-key mitigation. The scoring is pure Rust in `score` and
//! `workload`; this module reads the server into a `SchemaModel` and back out
//! as rows and evidence. The single-node ceiling and the 2-node measurements are
//! `bench/ceiling.sh` and `bench/two_node.sh` (docs/shard-decision.md).

// pgrx needs each result row spelled out as a name!() tuple in the signature
#![allow(clippy::type_complexity)]

pub mod score;
pub mod verdict;
pub mod workload;

use crate::infra::chart::{Chart, Kind, Series};
use crate::infra::error::{check_range, required, CapstoneError};
use crate::infra::format::pct_1dp as pct;
use crate::infra::subxact::{self, Outcome};
use pgrx::callconv::{Arg, ArgAbi};
use pgrx::nullable::Nullable;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use score::{Advice, ColumnStats, ForeignKey, SchemaModel, Statement, Table};
use serde_json::{json, Value};
use std::collections::HashMap;

/// A SQL `name` argument (schema and column names are `name` in the catalogs).
/// pgrx has no `name` mapping; this reads the fixed-size, NUL-terminated NameData.
pub struct SqlName(pub String);

impl FromDatum for SqlName {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null || datum.is_null() {
            return None;
        }
        // SAFETY: a non-null `name` datum points at a NameData, always NUL-terminated
        let s = unsafe { std::ffi::CStr::from_ptr(datum.cast_mut_ptr::<std::ffi::c_char>()) };
        Some(SqlName(s.to_string_lossy().into_owned()))
    }
}

unsafe impl<'fcx> ArgAbi<'fcx> for SqlName {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        // only reached through Option<SqlName>, which handles NULL first
        unsafe { arg.unbox_arg_using_from_datum() }
            .unwrap_or_else(|| CapstoneError::NullValue("a name argument".into()).raise())
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        unsafe { arg.unbox_arg_using_from_datum() }.into()
    }
}

pgrx::impl_sql_translatable!(SqlName, arg_only = "name");

/// A table without statistics bigger than this (main fork) makes the advice a guess.
const UNANALYZED_MAX_BYTES: i64 = 8 * 8192;

/// Shard counts: not NULL, not empty, each in [2, 4096]; sorted, without repeats.
pub fn check_shards(shards: Option<Vec<Option<i32>>>) -> Vec<u32> {
    let v = required(shards, "shards");
    if v.is_empty() {
        CapstoneError::InvalidParameter("shards must not be empty".into())
            .raise_hint("pass shard counts to evaluate, for example '{2,4,8,16,32}'");
    }
    if v.len() > 64 {
        CapstoneError::InvalidParameter(format!(
            "shards may list at most 64 shard counts (got {})",
            v.len()
        ))
        .raise();
    }
    let mut out: Vec<u32> = v
        .into_iter()
        .map(|n| {
            let n = required(n, "an element of shards");
            check_range("shards", n, 2, 4096) as u32
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn spi_fail(what: &str, e: impl std::fmt::Display) -> ! {
    CapstoneError::PrerequisiteState(format!("could not read {what}: {e}")).raise()
}

/// The schema must exist (3F000 otherwise).
fn check_schema(schema: &str) {
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
        &[schema.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !exists {
        CapstoneError::UndefinedSchema(format!("schema \"{schema}\" does not exist"))
            .raise_hint("list schemas with \\dn or SELECT nspname FROM pg_namespace");
    }
}

/// Read tables, columns, keys, statistics and (if available) the workload of a
/// schema. Raises 55000 when the tables that matter have no statistics.
pub fn load_model(schema: &str) -> (SchemaModel, Vec<String>) {
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
    if let Err(e) = res {
        spi_fail("the tables", e);
    }
    if tables.is_empty() {
        CapstoneError::PrerequisiteState(format!("schema \"{schema}\" has no tables"))
            .raise_hint("shard_advice ranks shard keys for the tables of one schema; pass the schema that holds them");
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
        CapstoneError::PrerequisiteState(format!(
            "no statistics for {} table(s) of schema \"{schema}\"",
            missing.len()
        ))
        .raise_with(
            format!("without pg_stats the cardinality and skew of a key would be guessed; not analyzed: {list}"),
            format!("run ANALYZE {list}; then call shard_advice again"),
        );
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
                    n_distinct: score::absolute_n_distinct(r.get::<f64>(4)?.unwrap_or(0.0), rows),
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
    if let Err(e) = res {
        spi_fail("the catalogs", e);
    }
    let model = SchemaModel {
        schema: schema.to_string(),
        tables,
        fks,
        workload: load_workload(),
    };
    (model, unanalyzed_small)
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

fn hot_text(a: &Advice) -> Vec<String> {
    a.hot
        .iter()
        .map(|(v, s)| format!("{v} ({})", pct(*s)))
        .collect()
}

/// Evidence for a ranking: summary, table, chart, verdict.
fn store_advice(schema: &str, shards: &[u32], top_n: usize, adv: &[Advice], workload: bool) -> i64 {
    let top: Vec<&Advice> = adv.iter().take(top_n).collect();
    let table: Vec<Value> = top
        .iter()
        .map(|a| {
            let mut o = serde_json::Map::new();
            o.insert("rank".into(), json!(a.rank));
            o.insert("key".into(), json!(a.key));
            o.insert("score".into(), json!((a.score * 10.0).round() / 10.0));
            o.insert("tables".into(), json!(a.columns.len()));
            o.insert("distinct".into(), json!(a.dist.distinct.round()));
            o.insert(
                "top value".into(),
                json!(a
                    .dist
                    .mcv
                    .first()
                    .map(|(v, s)| format!("{v} ({})", pct(*s)))
                    .unwrap_or_default()),
            );
            o.insert("hot keys".into(), json!(hot_text(a).join(", ")));
            o.insert(
                "routable calls".into(),
                json!(a.routable_share.map(pct).unwrap_or_else(|| "n/a".into())),
            );
            for (n, h) in a.shards.iter().zip(&a.hottest) {
                o.insert(format!("hottest @{n}"), json!(pct(*h)));
            }
            o.insert("cross-shard joins".into(), json!(a.cross.len()));
            o.insert("reference tables".into(), json!(a.reference.join(", ")));
            Value::Object(o)
        })
        .collect();
    let mut series: Vec<Series> = top
        .iter()
        .take(4)
        .map(|a| Series {
            name: a.key.clone(),
            points: a
                .shards
                .iter()
                .zip(&a.hottest)
                .map(|(n, h)| (*n as f64, 100.0 * h))
                .collect(),
        })
        .collect();
    series.push(Series {
        name: "fair share 1/N".into(),
        points: shards
            .iter()
            .map(|n| (*n as f64, 100.0 / *n as f64))
            .collect(),
    });
    let chart = Chart {
        title: format!("Hottest shard's share of rows under hash distribution ({schema})"),
        kind: Kind::Line,
        x_label: "shards (N)".into(),
        y_label: "expected hottest shard, % of rows".into(),
        categories: vec![],
        series,
        log_y: true,
    };
    let verdict = match top.first() {
        Some(a) => format!(
            "shard key {} (score {:.0} of 100); hot keys: {}; reference tables: {}",
            a.key,
            a.score,
            if a.hot.is_empty() {
                "none".into()
            } else {
                hot_text(a).join(", ")
            },
            if a.reference.is_empty() {
                "none".into()
            } else {
                a.reference.join(", ")
            }
        ),
        None => "no candidate shard key".into(),
    };
    let summary =
        match top.first() {
            Some(a) => format!(
            "`capstone.shard_advice('{schema}')` ranked {} candidate key(s){}. The first:\n\n{}",
            adv.len(),
            if workload { " with pg_stat_statements" } else { " without workload statistics" },
            a.reasoning
        ),
            None => format!("`capstone.shard_advice('{schema}')` found no candidate key."),
        };
    crate::infra::evidence::store(
        crate::infra::evidence::Gate::Sharding,
        Some(&format!("shard_advice: {schema}")),
        None,
        json!({"schema": schema, "shards": shards, "top_n": top_n}),
        json!({"summary": summary, "table": table, "chart": chart, "verdict": verdict}),
    )
}

/// Rank the candidate shard keys of a schema and explain each one.
#[pg_extern(volatile, parallel_unsafe)]
fn shard_advice(
    schema_name: Option<SqlName>,
    shards: default!(Option<Vec<Option<i32>>>, "'{2,4,8,16,32}'"),
    top_n: default!(Option<i32>, 5),
) -> TableIterator<
    'static,
    (
        name!(rank, i32),
        name!(key_column, String),
        name!(key_type, String),
        name!(tables, Vec<String>),
        name!(reference_tables, Vec<String>),
        name!(local_tables, Vec<String>),
        name!(cardinality, i64),
        name!(top_value, Option<String>),
        name!(top_value_share, Option<f64>),
        name!(hot_values, Vec<String>),
        name!(null_share, f64),
        name!(workload_routable_share, Option<f64>),
        name!(shards, Vec<i32>),
        name!(hottest_shard_share, Vec<f64>),
        name!(colocated_joins, Vec<String>),
        name!(cross_shard_joins, Vec<String>),
        name!(fan_out_queries, Vec<String>),
        name!(score, f64),
        name!(reasoning, String),
        name!(evidence_id, i64),
    ),
> {
    let schema = required(schema_name, "schema_name").0;
    let shards = check_shards(shards);
    let top_n = check_range("top_n", required(top_n, "top_n"), 1, 1000) as usize;
    check_schema(&schema);
    let (model, unanalyzed) = load_model(&schema);
    let adv = score::advise(&model, &shards, &unanalyzed);
    let id = store_advice(&schema, &shards, top_n, &adv, model.workload.is_some());
    let rows: Vec<_> = adv
        .into_iter()
        .take(top_n)
        .map(|a| {
            let mut via: Vec<String> = a.colocated.clone();
            via.extend(a.via_reference.iter().map(|j| format!("{j} via reference")));
            (
                a.rank as i32,
                a.key.clone(),
                a.key_type.clone(),
                a.columns.keys().cloned().collect::<Vec<_>>(),
                a.reference.clone(),
                a.local.clone(),
                a.dist.distinct.round() as i64,
                a.dist.mcv.first().map(|(v, _)| v.clone()),
                a.dist.mcv.first().map(|(_, s)| *s),
                hot_text(&a),
                a.dist.null_share,
                a.routable_share,
                a.shards.iter().map(|n| *n as i32).collect::<Vec<_>>(),
                a.hottest.clone(),
                via,
                a.cross.clone(),
                a.fan_out
                    .iter()
                    .map(|(calls, ms, q)| {
                        let plural = if *calls == 1.0 { "" } else { "s" };
                        format!("{calls:.0} call{plural}, {ms:.0} ms: {q}")
                    })
                    .collect::<Vec<_>>(),
                (a.score * 10.0).round() / 10.0,
                a.reasoning.clone(),
                id,
            )
        })
        .collect();
    TableIterator::new(rows)
}

/// The steps and Citus DDL for distributing a schema by its best (or a named) key,
/// with hot-key mitigation.
#[pg_extern(volatile, parallel_unsafe)]
fn shard_plan(
    schema_name: Option<SqlName>,
    key_column: default!(Option<SqlName>, "NULL"),
    shards: default!(Option<i32>, 32),
) -> TableIterator<
    'static,
    (
        name!(step, i32),
        name!(action, String),
        name!(object, String),
        name!(ddl, String),
        name!(why, String),
    ),
> {
    let schema = required(schema_name, "schema_name").0;
    let n = check_range("shards", required(shards, "shards"), 2, 4096) as u32;
    check_schema(&schema);
    let (model, unanalyzed) = load_model(&schema);
    let adv = score::advise(&model, &[n], &unanalyzed);
    let chosen = match key_column.map(|k| k.0) {
        None => adv.first(),
        Some(k) => adv
            .iter()
            .find(|a| a.key == k || a.columns.values().any(|c| *c == k)),
    };
    let Some(a) = chosen else {
        CapstoneError::InvalidParameter(format!(
            "no candidate shard key of schema \"{schema}\" matches"
        ))
        .raise_hint(format!(
            "candidates are primary-key, unique and foreign-key columns: {}",
            adv.iter()
                .map(|a| a.key.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    };
    let q = |t: &str| format!("{}.{}", quote_identifier(&schema), quote_identifier(t));
    let steps = score::plan(&model, a, n, &q);
    let table: Vec<Value> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"step": i + 1, "action": s.action, "object": s.object, "ddl": s.ddl}))
        .collect();
    crate::infra::evidence::store(
        crate::infra::evidence::Gate::Sharding,
        Some(&format!("shard_plan: {schema} by {}", a.key)),
        None,
        json!({"schema": schema, "key": a.key, "shards": n}),
        json!({
            "summary": format!("Distribution plan for schema `{schema}` by `{}` over {n} shards (score {:.0}).", a.key, a.score),
            "table": table,
            "verdict": format!("plan by {}: {} step(s), {} hot key(s) isolated", a.key, steps.len(), a.hot.len().min(3)),
        }),
    );
    TableIterator::new(
        steps
            .into_iter()
            .enumerate()
            .map(|(i, s)| (i as i32 + 1, s.action, s.object, s.ddl, s.why)),
    )
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn lab() {
        Spi::run("SELECT * FROM capstone.lab_install(scale => 0.02, seed => 42, anchor => '2026-06-01 00:00+00')")
            .unwrap();
    }

    #[pg_test]
    fn the_lab_shards_by_tenant() {
        lab();
        let (key, hot) = Spi::get_two::<String, Vec<String>>(
            "SELECT key_column, hot_values FROM capstone.shard_advice('shop') WHERE rank = 1",
        )
        .unwrap();
        assert_eq!(key.as_deref(), Some("tenant_id"));
        assert!(hot.unwrap().iter().any(|h| h.starts_with("1 (")));
        let refs = Spi::get_one::<Vec<String>>(
            "SELECT reference_tables FROM capstone.shard_advice('shop') WHERE rank = 1",
        )
        .unwrap()
        .unwrap();
        assert!(refs.contains(&"tenants".to_string()), "{refs:?}");
        // the ranking is stored as evidence
        let n = Spi::get_one::<i64>(
            "SELECT count(*) FROM capstone.evidence WHERE gate = 'sharding' AND label = 'shard_advice: shop'",
        )
        .unwrap();
        assert_eq!(n, Some(2));
    }

    #[pg_test]
    fn the_plan_maps_to_citus_ddl() {
        lab();
        let ddl = Spi::get_one::<Vec<String>>(
            "SELECT array_agg(ddl ORDER BY step) FROM capstone.shard_plan('shop')",
        )
        .unwrap()
        .unwrap();
        assert!(ddl
            .iter()
            .any(|d| d == "SELECT create_reference_table('shop.tenants');"));
        assert!(ddl.iter().any(|d| d.starts_with(
            "SELECT create_distributed_table('shop.orders', 'tenant_id', colocate_with => "
        )));
        assert!(ddl
            .iter()
            .any(|d| d.starts_with("SELECT isolate_tenant_to_new_shard(") && d.contains(", 1, ")));
    }

    #[pg_test]
    fn shard_counts_sort_and_dedupe() {
        lab();
        let s = Spi::get_one::<Vec<i32>>(
            "SELECT shards FROM capstone.shard_advice('shop', '{8,2,8}') WHERE rank = 1",
        )
        .unwrap()
        .unwrap();
        assert_eq!(s, vec![2, 8]);
    }

    #[pg_test(error = "schema \"no_such_schema\" does not exist")]
    fn unknown_schema() {
        Spi::run("SELECT * FROM capstone.shard_advice('no_such_schema')").unwrap();
    }

    #[pg_test(error = "schema_name must not be NULL")]
    fn null_schema() {
        Spi::run("SELECT * FROM capstone.shard_advice(NULL)").unwrap();
    }

    #[pg_test(error = "shards must be between 2 and 4096 (got 1)")]
    fn one_shard() {
        Spi::run("SELECT * FROM capstone.shard_advice('pg_catalog', '{1,4}')").unwrap();
    }

    #[pg_test(error = "shards must be between 2 and 4096 (got 5000)")]
    fn too_many_shards() {
        Spi::run("SELECT * FROM capstone.shard_advice('pg_catalog', '{5000}')").unwrap();
    }

    #[pg_test(error = "an element of shards must not be NULL")]
    fn null_shard_count() {
        Spi::run("SELECT * FROM capstone.shard_advice('pg_catalog', '{2,NULL}')").unwrap();
    }

    #[pg_test(error = "shards must not be empty")]
    fn empty_shards() {
        Spi::run("SELECT * FROM capstone.shard_advice('pg_catalog', '{}')").unwrap();
    }

    #[pg_test(error = "top_n must be between 1 and 1000 (got 0)")]
    fn zero_top_n() {
        Spi::run("SELECT * FROM capstone.shard_advice('pg_catalog', top_n => 0)").unwrap();
    }

    #[pg_test(error = "no statistics for 1 table(s) of schema \"bare\"")]
    fn no_statistics_no_guess() {
        Spi::run(
            "CREATE SCHEMA bare;
             CREATE TABLE bare.t (tenant_id int PRIMARY KEY, v int) WITH (autovacuum_enabled = off);
             INSERT INTO bare.t SELECT g, g FROM generate_series(1, 10000) g",
        )
        .unwrap();
        Spi::run("SELECT * FROM capstone.shard_advice('bare')").unwrap();
    }

    #[pg_test(error = "schema \"empty\" has no tables")]
    fn schema_without_tables() {
        Spi::run("CREATE SCHEMA empty").unwrap();
        Spi::run("SELECT * FROM capstone.shard_advice('empty')").unwrap();
    }

    #[pg_test(error = "no candidate shard key of schema \"shop\" matches")]
    fn unknown_key_column() {
        lab();
        Spi::run("SELECT * FROM capstone.shard_plan('shop', 'nope')").unwrap();
    }
}
