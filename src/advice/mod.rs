//! Gate 11, index advice: hypothetical indexes that only a plain EXPLAIN in this
//! session sees, and hiding real ones, to ask "would this index help / can I drop
//! that one" without building or dropping anything. The SQL surface only.

mod advise;
mod analyze;
mod build;
mod candidates;
mod choose;
mod define;
mod drop;
mod dropread;
mod fill;
pub mod hooks;
mod hot;
mod inject;
mod prove;
mod size;
mod store;
mod workload;

#[cfg(any(test, feature = "pg_test"))]
mod advise_tests;
#[cfg(any(test, feature = "pg_test"))]
mod tests;

use crate::infra::error::{required, CapstoneError, OrRaise};
use crate::infra::regclass::RegClass;
use pgrx::prelude::*;

/// Define a hypothetical index from one CREATE INDEX statement.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_index(
    create_index_sql: Option<&str>,
) -> TableIterator<'static, (name!(id, pg_sys::Oid), name!(index_name, String))> {
    let sql = required(create_index_sql, "create_index_sql");
    // the statement names the caller's table, so it resolves on the caller's search_path
    let index = crate::infra::search_path::guarded(|| {
        crate::infra::search_path::as_caller(|| define::define(sql))
    })
    .or_raise();
    let row = (index.oid, index.name.clone());
    store::add(index);
    TableIterator::once(row)
}

/// This session's hypothetical indexes, oldest first.
#[pg_extern(volatile, parallel_unsafe)]
#[allow(clippy::type_complexity)]
fn hypo_indexes() -> TableIterator<
    'static,
    (
        name!(id, pg_sys::Oid),
        name!(index_name, String),
        name!(table_name, RegClass),
        name!(access_method, String),
        name!(definition, String),
    ),
> {
    let rows: Vec<_> = store::all()
        .into_iter()
        .map(|i| (i.oid, i.name, RegClass(i.relid), i.am_name, i.definition))
        .collect();
    TableIterator::new(rows)
}

/// Forget one hypothetical index; false when the id is not one of this session's.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_drop(id: Option<pg_sys::Oid>) -> bool {
    let id = required(id, "id");
    store::unhide(id);
    store::drop(id)
}

/// Forget every hypothetical index and unhide every hidden index; returns how many
/// hypothetical indexes went.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_reset() -> i32 {
    store::reset() as i32
}

/// A hypothetical index's estimated size from the table's current statistics.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_size(
    id: Option<pg_sys::Oid>,
) -> TableIterator<
    'static,
    (
        name!(size_bytes, i64),
        name!(size_pretty, String),
        name!(estimated_rows, i64),
    ),
> {
    let id = required(id, "id");
    let Some(index) = store::get(id) else {
        CapstoneError::UndefinedObject(format!(
            "{} is not a hypothetical index of this session",
            id.to_u32()
        ))
        .raise_hint("list them with SELECT * FROM capstone.hypo_indexes()")
    };
    // SAFETY: the table was resolved when the index was defined; a dropped table
    // raises 42P01 from relation_open's lookup below
    if unsafe { pg_sys::get_rel_relkind(index.relid) } == 0 {
        CapstoneError::UndefinedTable(format!(
            "the table of hypothetical index {} no longer exists",
            index.name
        ))
        .raise_hint("drop it with capstone.hypo_drop(id)")
    }
    let (pages, rows) = unsafe { inject::estimate_standalone(&index) };
    let bytes = i64::from(pages) * size::BLOCK_SIZE as i64;
    TableIterator::once((
        bytes,
        crate::infra::format::size_pretty(bytes),
        rows.round() as i64,
    ))
}

fn index_oid(index: Option<RegClass>) -> pg_sys::Oid {
    let RegClass(oid) = required(index, "index");
    if store::is_used(oid) {
        return oid;
    }
    // SAFETY: a catalog lookup by OID
    match unsafe { pg_sys::get_rel_relkind(oid) } as u8 {
        0 => CapstoneError::UndefinedTable(format!("relation {} does not exist", oid.to_u32()))
            .raise(),
        b'i' => oid,
        _ => CapstoneError::WrongObjectType(format!("{} is not an index", relname(oid)))
            .raise_hint("hypo_hide takes an index, such as 'orders_pkey'::regclass"),
    }
}

fn relname(oid: pg_sys::Oid) -> String {
    Spi::get_one_with_args::<String>("SELECT $1::regclass::text", &[oid.into()])
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Plan as if this index did not exist (plain EXPLAIN in this session only); false
/// when it was already hidden.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_hide(index: Option<RegClass>) -> bool {
    store::hide(index_oid(index))
}

/// Undo hypo_hide; false when the index was not hidden.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_unhide(index: Option<RegClass>) -> bool {
    store::unhide(index_oid(index))
}

/// Indexes worth adding for the caller's workload in pg_stat_statements: candidates
/// from each statement's conditions, ORDER BY and GROUP BY, costed as hypothetical
/// indexes on the generic plans, kept when the weighted cost (cost × calls) of the
/// statements an index serves drops by at least min_savings_pct. Each row is stored as
/// evidence; its advice_id is what capstone.index_prove takes.
#[pg_extern(volatile, parallel_unsafe)]
#[allow(clippy::type_complexity)]
fn index_advice(
    min_calls: default!(Option<i64>, 1),
    min_savings_pct: default!(Option<f64>, 50.0),
    top_n: default!(Option<i32>, 10),
) -> TableIterator<
    'static,
    (
        name!(advice_id, i64),
        name!(table_name, String),
        name!(create_index, String),
        name!(statements, i32),
        name!(queryids, Vec<i64>),
        name!(served, Vec<String>),
        name!(weighted_cost_before, f64),
        name!(weighted_cost_after, f64),
        name!(savings_pct, f64),
        name!(est_size_bytes, i64),
        name!(est_size, String),
        name!(write_overhead_bytes, i64),
        name!(why, String),
    ),
> {
    use crate::infra::error::check_range;
    use crate::infra::format::round;
    let min_calls = check_range("min_calls", required(min_calls, "min_calls"), 1, i64::MAX);
    let pct = required(min_savings_pct, "min_savings_pct");
    if !pct.is_finite() {
        CapstoneError::InvalidParameter(format!("min_savings_pct must be a number (got {pct})"))
            .raise_hint("pass a percentage between 0 and 100, e.g. 50")
    }
    let pct = check_range("min_savings_pct", pct, 0.0, 100.0);
    let top_n = check_range("top_n", required(top_n, "top_n"), 1, 1000);
    let (rows, seen) =
        crate::infra::search_path::guarded(|| advise::advise(min_calls, pct, top_n as usize))
            .or_raise();
    let note = format!(
        "index_advice: {} statement(s) read, {} analyzed, {} skipped, {} candidate(s) costed",
        seen.statements, seen.analyzed, seen.skipped, seen.candidates
    );
    match seen.first_error {
        Some(e) => crate::infra::error::notice_hint(
            note,
            format!("a skipped statement could not be analyzed here: {e}"),
        ),
        None => crate::infra::error::notice(note),
    }
    TableIterator::new(rows.into_iter().map(|a| {
        (
            a.id,
            a.table,
            a.create_index,
            a.queryids.len() as i32,
            a.queryids,
            a.served,
            round(a.cost_before, 2),
            round(a.cost_after, 2),
            round(a.savings_pct, 2),
            a.size_bytes,
            crate::infra::format::size_pretty(a.size_bytes),
            a.write_overhead_bytes,
            a.why,
        )
    }))
}

/// Indexes that could go: never scanned since the statistics were reset, exact
/// duplicates, btree prefixes of another index, and indexes whose hiding leaves every
/// watched plan of the caller unchanged. Never one that backs a constraint or the
/// replica identity. Reads and plans only; tables the caller may read.
#[pg_extern(volatile, parallel_unsafe)]
#[allow(clippy::type_complexity)]
fn index_drop_advice() -> TableIterator<
    'static,
    (
        name!(index_name, String),
        name!(table_name, String),
        name!(reason, String),
        name!(detail, String),
        name!(size_bytes, i64),
        name!(size, String),
        name!(idx_scan, Option<i64>),
        name!(stats_reset, Option<pgrx::datum::TimestampWithTimeZone>),
        name!(drop_index, String),
    ),
> {
    let rows = crate::infra::search_path::guarded(|| -> crate::infra::error::Result<Vec<_>> {
        let listed = dropread::indexes()?;
        let reset = dropread::stats_reset();
        let plain: Vec<drop::Index> = listed.iter().map(|l| l.index.clone()).collect();
        let raw = drop::findings(&plain);
        // an index another finding relies on stays, so the hide test skips it too
        let keepers: Vec<String> = raw.iter().filter_map(|(_, r)| r.kept().map(String::from)).collect();
        let mut found: Vec<(usize, String, String)> = raw
            .into_iter()
            .map(|(i, r)| (i, r.kind().to_string(), r.detail(plain[i].idx_scan)))
            .collect();
        // the rest: does hiding it leave every watched plan of its table as it is?
        let _aside = advise::SetAside::take();
        let watched = dropread::watched();
        if !watched.is_empty() {
            for (i, ix) in plain.iter().enumerate() {
                if ix.protected.is_some()
                    || ix.unique
                    || !ix.valid
                    || keepers.contains(&ix.name)
                    || found.iter().any(|f| f.0 == i)
                {
                    continue;
                }
                if let Some(n) = dropread::hide_leaves_plans(ix, &watched) {
                    found.push((
                        i,
                        "not in watched plans".into(),
                        format!("hiding it leaves the plans of the {n} watched quer{} on its table unchanged", if n == 1 { "y" } else { "ies" }),
                    ));
                }
            }
        }
        found.sort_by(|a, b| {
            listed[b.0]
                .size_bytes
                .cmp(&listed[a.0].size_bytes)
                .then(listed[a.0].index.name.cmp(&listed[b.0].index.name))
        });
        Ok(found
            .into_iter()
            .map(|(i, reason, detail)| {
                let l = &listed[i];
                (
                    l.index.name.clone(),
                    l.table_name.clone(),
                    reason,
                    detail,
                    l.size_bytes,
                    crate::infra::format::size_pretty(l.size_bytes),
                    l.index.idx_scan,
                    reset,
                    format!("DROP INDEX CONCURRENTLY {}", l.index.name),
                )
            })
            .collect())
    })
    .or_raise();
    TableIterator::new(rows)
}

/// Build an advised index for real and prove it: each statement it serves (or each of
/// `queries`, concrete statements) is estimated with the index as a hypothetical one,
/// then run with EXPLAIN ANALYZE (capstone.explain) before and after the build; the
/// verdict is from the measured times. By default the index is built with CREATE INDEX
/// CONCURRENTLY by a background worker running as the caller, so the proof takes two
/// calls: the first measures before and starts the build, the second (once it is built)
/// measures after. `concurrently => false` builds it in the caller's transaction with a
/// plain CREATE INDEX, which blocks writes. A table over `max_table_bytes` is refused.
#[pg_extern(volatile, parallel_unsafe)]
#[allow(clippy::type_complexity)]
fn index_prove(
    advice_id: Option<i64>,
    concurrently: default!(Option<bool>, true),
    max_table_bytes: default!(Option<i64>, 1073741824),
    queries: default!(Option<Vec<Option<String>>>, "NULL"),
    runs: default!(Option<i32>, 3),
) -> TableIterator<
    'static,
    (
        name!(proof_id, i64),
        name!(query, String),
        name!(est_cost_before, f64),
        name!(est_cost_after, f64),
        name!(est_speedup, f64),
        name!(before_node, String),
        name!(after_node, Option<String>),
        name!(before_ms, f64),
        name!(after_ms, Option<f64>),
        name!(speedup, Option<f64>),
        name!(verdict, String),
    ),
> {
    use crate::infra::format::round;
    let advice_id = required(advice_id, "advice_id");
    let concurrently = required(concurrently, "concurrently");
    let runs = crate::infra::error::check_range("runs", required(runs, "runs"), 1, 100);
    if let Some(m) = max_table_bytes {
        crate::infra::error::check_range("max_table_bytes", m, 0, i64::MAX);
    }
    let queries = match queries {
        None => None,
        Some(v) => {
            let v: Vec<String> = v
                .into_iter()
                .flatten()
                .filter(|q| !q.trim().is_empty())
                .collect();
            if v.is_empty() {
                CapstoneError::InvalidParameter("queries must hold at least one statement".into())
                    .raise_hint(
                        "pass NULL to use the advice's own statements, or concrete statements",
                    )
            }
            Some(v)
        }
    };
    let given = queries.is_some();
    let (id, proofs) = crate::infra::search_path::guarded(|| {
        let t = prove::target(advice_id, max_table_bytes, queries, concurrently)?;
        if !concurrently {
            return prove::prove_plain(&t, runs);
        }
        build::prove_concurrently(t, runs, given)
    })
    .or_raise();
    let ratio = |a: f64, b: f64| if b > 0.0 { round(a / b, 2) } else { 0.0 };
    TableIterator::new(proofs.into_iter().map(move |p| {
        (
            id,
            p.query,
            round(p.est_cost_before, 2),
            round(p.est_cost_after, 2),
            ratio(p.est_cost_before, p.est_cost_after),
            p.before_node,
            p.after_node,
            round(p.before_ms, 3),
            p.after_ms.map(|a| round(a, 3)),
            p.after_ms.map(|a| ratio(p.before_ms, a)),
            p.verdict.to_string(),
        )
    }))
}
