//! The sharding gate: shard or not, measured. `capstone.shard_advice(schema)` ranks
//! candidate shard keys from the catalogs, `pg_stats` and `pg_stat_statements`;
//! `capstone.shard_plan(schema)` turns the winner into steps and the Citus DDL they
//! map to, with hot-key mitigation. The single-node ceiling and the 2-node
//! measurements are `bench/ceiling.sh` and `bench/two_node.sh` (docs/shard-decision.md).
//!
//! This module is the SQL surface only (argument checks, calls, result rows):
//! `catalog` reads the server into a `SchemaModel` (`model`); `score` ranks the
//! `candidates` with `distribution` and `fanout` (over `workload`'s reading of each
//! statement) and `reasoning`; `plan` writes the steps; `evidence` stores the ranking.

// pgrx needs each result row spelled out as a name!() tuple in the signature
#![allow(clippy::type_complexity)]

pub mod candidates;
pub mod catalog;
pub mod distribution;
pub mod evidence;
pub mod fanout;
pub mod model;
pub mod plan;
pub mod reasoning;
pub mod score;
pub mod verdict;
pub mod workload;

use crate::infra::error::{check_range, required, CapstoneError, OrRaise};
use crate::infra::format::round;
use pgrx::callconv::{Arg, ArgAbi};
use pgrx::nullable::Nullable;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use serde_json::{json, Value};

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

/// A share of rows or calls (a fraction in [0, 1]) as shown: 3 decimals, a tenth of a
/// percent, so a skewed key's 0.034 does not read as 0.03.
fn share(x: f64) -> f64 {
    round(x, 3)
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
    catalog::check_schema(&schema).or_raise();
    let (model, unanalyzed) = catalog::load_model(&schema).or_raise();
    let adv = score::advise(&model, &shards, &unanalyzed);
    let id = evidence::store_advice(&schema, &shards, top_n, &adv, model.workload.is_some());
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
                a.dist.mcv.first().map(|(_, s)| share(*s)),
                evidence::hot_text(&a),
                share(a.dist.null_share),
                a.routable_share.map(share),
                a.shards.iter().map(|n| *n as i32).collect::<Vec<_>>(),
                a.hottest.iter().map(|h| share(*h)).collect::<Vec<_>>(),
                via,
                a.cross.clone(),
                a.fan_out
                    .iter()
                    .map(|(calls, ms, q)| {
                        let plural = if *calls == 1.0 { "" } else { "s" };
                        format!("{calls:.0} call{plural}, {ms:.0} ms: {q}")
                    })
                    .collect::<Vec<_>>(),
                round(a.score, 1),
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
    catalog::check_schema(&schema).or_raise();
    let (model, unanalyzed) = catalog::load_model(&schema).or_raise();
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
    let steps = plan::plan(&model, a, n, &q);
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
