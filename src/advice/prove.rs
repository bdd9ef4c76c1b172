//! index_prove: build an advised index for real and judge it by execution. Each
//! statement is estimated first (generic-plan cost without and with the index as a
//! hypothetical one), then run with EXPLAIN ANALYZE through capstone.explain (the plans
//! gate's capture, called as SQL) before and after the build; the verdict comes from
//! the measured times. The build is a plain CREATE INDEX in the caller's transaction,
//! run as the caller (who must own the table); CONCURRENTLY cannot run inside a function.

use super::{analyze, define, store};
use crate::infra::error::{CapstoneError, Result};
use crate::infra::evidence::{self, Gate};
use pgrx::prelude::*;
use serde_json::{json, Value};

/// A statement is proven faster when its measured time drops by at least this factor.
pub const MIN_SPEEDUP: f64 = 1.10;

/// One statement's proof.
#[derive(Debug, Clone)]
pub struct Proof {
    pub query: String,
    pub est_cost_before: f64,
    pub est_cost_after: f64,
    pub before_node: String,
    pub after_node: String,
    pub before_ms: f64,
    pub after_ms: f64,
    pub verdict: &'static str,
}

/// The measured verdict for one statement.
pub fn verdict(before_ms: f64, after_ms: f64) -> &'static str {
    if after_ms > 0.0 && before_ms / after_ms >= MIN_SPEEDUP {
        "faster"
    } else if after_ms > before_ms * MIN_SPEEDUP {
        "slower"
    } else {
        "no measurable change"
    }
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value> {
    v.get(name).ok_or_else(|| {
        CapstoneError::InvalidParameter(format!("advice evidence has no {name}"))
            .with_hint("pass an advice_id from capstone.index_advice()")
    })
}

fn measure(query: &str, label: &str, runs: i32) -> Result<(i64, String, f64)> {
    crate::infra::search_path::as_caller(|| {
        Spi::connect(|c| {
            let t = c.select(
                "SELECT evidence_id, root_node, execution_ms FROM capstone.explain($1, $2, $3)",
                Some(1),
                &[query.into(), label.into(), runs.into()],
            )?;
            let r = t.first();
            Ok::<_, pgrx::spi::Error>((
                r.get::<i64>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
                r.get::<f64>(3)?.unwrap_or_default(),
            ))
        })
    })
    .map_err(|e| CapstoneError::PrerequisiteState(format!("could not capture {label}: {e}")).into())
}

/// Estimated generic-plan cost of `query` without and with the index (hypothetically).
fn estimate(query: &str, create_sql: &str, relid: pg_sys::Oid, table: &str) -> Result<(f64, f64)> {
    let a = crate::infra::search_path::as_caller(|| analyze::analyze(query)).ok_or_else(|| {
        CapstoneError::InvalidParameter(format!(
            "not a single SELECT, INSERT, UPDATE, DELETE or MERGE: {query}"
        ))
        .with_hint("pass statements the index serves, one per array element")
    })?;
    if !a.relids.contains(&relid.to_u32()) {
        return Err(CapstoneError::InvalidParameter(format!(
            "the statement does not use {table}: {}",
            super::advise::short(query)
        ))
        .with_hint("pass statements that read or write the advised index's table"));
    }
    if a.nparams > 0 {
        return Err(CapstoneError::InvalidParameter(format!(
            "the statement has {} parameter(s) and cannot be executed as it is: {}",
            a.nparams,
            super::advise::short(query)
        ))
        .with_hint("pass concrete statements with queries => ARRAY['SELECT ... WHERE col = 42']"));
    }
    let _aside = super::advise::SetAside::take();
    let before = analyze::generic_cost(&a, false);
    let index = define::define(create_sql)?;
    let oid = index.oid;
    store::add(index);
    let after = crate::infra::subxact::run(crate::infra::subxact::Outcome::Commit, || {
        analyze::generic_cost(&a, true)
    });
    store::drop(oid);
    let after = after.map_err(|e| {
        let (code, msg) = crate::infra::subxact::describe(&e);
        CapstoneError::PrerequisiteState(format!("could not plan with the index: {msg} ({code})"))
    })?;
    Ok((before, after))
}

pub fn prove(
    advice_id: i64,
    max_table_bytes: Option<i64>,
    queries: Option<Vec<String>>,
    runs: i32,
) -> Result<(i64, Vec<Proof>)> {
    let ev = evidence::load(advice_id);
    if ev.gate != Gate::Index.as_str() || ev.label.as_deref() != Some("index_advice") {
        return Err(CapstoneError::InvalidParameter(format!(
            "evidence row {advice_id} is not an index advice"
        ))
        .with_hint("pass an advice_id from capstone.index_advice()"));
    }
    let p = &ev.payload;
    let on = field(p, "on_clause")?
        .as_str()
        .unwrap_or_default()
        .to_string();
    let relid = pg_sys::Oid::from(field(p, "relid")?.as_u64().unwrap_or_default() as u32);
    let table = field(p, "table")?.as_str().unwrap_or_default().to_string();
    let size = Spi::get_one_with_args::<i64>(
        "SELECT pg_catalog.pg_total_relation_size(c.oid) FROM pg_catalog.pg_class c WHERE c.oid = $1",
        &[relid.into()],
    )
    .ok()
    .flatten()
    .ok_or_else(|| CapstoneError::UndefinedTable(format!("the advised table {table} no longer exists")).with_hint("run capstone.index_advice() again"))?;
    if let Some(limit) = max_table_bytes {
        if size > limit {
            return Err(CapstoneError::PrerequisiteState(format!(
                "{table} is {} (over max_table_bytes, {}): building the index blocks writes to it for the whole build",
                crate::infra::format::bytes(size),
                crate::infra::format::bytes(limit)
            ))
            .with_hint("build it yourself with the advice's CREATE INDEX CONCURRENTLY, or pass a larger max_table_bytes (NULL for no limit)"));
        }
    }
    let statements: Vec<String> = match queries {
        Some(q) => q,
        None => {
            let served = field(p, "served")?.as_array().cloned().unwrap_or_default();
            served
                .iter()
                .filter_map(|s| s.get("query").and_then(Value::as_str).map(String::from))
                .filter(|q| {
                    crate::infra::subxact::run(crate::infra::subxact::Outcome::Commit, || {
                        crate::infra::search_path::as_caller(|| analyze::analyze(q))
                            .is_some_and(|a| a.nparams == 0)
                    })
                    .unwrap_or(false)
                })
                .collect()
        }
    };
    if statements.is_empty() {
        return Err(CapstoneError::InvalidParameter(
            "none of the statements this advice serves can be executed as they are (pg_stat_statements keeps them with $n parameters)".into(),
        )
        .with_hint("pass concrete statements with queries => ARRAY['SELECT ... WHERE col = 42']"));
    }
    let name = format!("capstone_advice_{advice_id}");
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_class t ON t.relnamespace = c.relnamespace
                         WHERE t.oid = $1 AND c.relname = $2)",
        &[relid.into(), name.as_str().into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if exists {
        return Err(CapstoneError::DuplicateObject(format!(
            "advice {advice_id} was already built as index {name}"
        ))
        .with_hint(format!(
            "drop it to prove the advice again: DROP INDEX {name}"
        )));
    }
    let create_hypo = format!("CREATE INDEX {} {on}", pgrx::spi::quote_identifier(&name));
    let mut est = Vec::new();
    let mut before = Vec::new();
    for (i, q) in statements.iter().enumerate() {
        est.push(estimate(q, &create_hypo, relid, &table)?);
        before.push(measure(
            q,
            &format!("index_prove {advice_id} before #{}", i + 1),
            runs,
        )?);
    }
    // the build, as the caller: CREATE INDEX checks that the caller owns the table
    let build = format!("CREATE INDEX {} {on}", pgrx::spi::quote_identifier(&name));
    let analyze_sql = format!("ANALYZE {table}");
    crate::infra::search_path::as_caller(|| {
        Spi::run(&build)?;
        Spi::run(&analyze_sql)
    })
    .map_err(|e| CapstoneError::PrerequisiteState(format!("building the index failed: {e}")))?;
    let mut proofs = Vec::new();
    let mut rows = Vec::new();
    for (i, q) in statements.iter().enumerate() {
        let after = measure(
            q,
            &format!("index_prove {advice_id} after #{}", i + 1),
            runs,
        )?;
        let b = &before[i];
        let v = verdict(b.2, after.2);
        rows.push(json!({"query": q, "est_cost_before": est[i].0, "est_cost_after": est[i].1,
            "before_evidence": b.0, "after_evidence": after.0, "before_node": b.1, "after_node": after.1,
            "before_ms": b.2, "after_ms": after.2, "verdict": v}));
        proofs.push(Proof {
            query: q.clone(),
            est_cost_before: est[i].0,
            est_cost_after: est[i].1,
            before_node: b.1.clone(),
            after_node: after.1,
            before_ms: b.2,
            after_ms: after.2,
            verdict: v,
        });
    }
    let id = evidence::store(
        Gate::Index,
        Some("index_prove"),
        Some(&build),
        json!({"advice_id": advice_id, "runs": runs, "min_speedup": MIN_SPEEDUP}),
        json!({"advice_id": advice_id, "index": name, "statements": rows}),
    );
    Ok((id, proofs))
}

#[cfg(test)]
mod unit {
    use super::verdict;

    #[test]
    fn verdict_comes_from_measured_times() {
        assert_eq!(verdict(100.0, 1.0), "faster");
        assert_eq!(verdict(100.0, 95.0), "no measurable change");
        assert_eq!(verdict(10.0, 20.0), "slower");
        assert_eq!(verdict(0.0, 0.0), "no measurable change");
    }
}
