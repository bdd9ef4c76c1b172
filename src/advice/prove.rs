//! index_prove: build an advised index for real and judge it by execution. Each
//! statement is estimated first (generic-plan cost without and with the index as a
//! hypothetical one), then run with EXPLAIN ANALYZE through capstone.explain (the plans
//! gate's capture, called as SQL) before and after the build; the verdict comes from
//! the measured times. The build runs as the caller (who must own the table): a plain
//! CREATE INDEX in the caller's transaction, or CREATE INDEX CONCURRENTLY in a background
//! worker (`build.rs`), since no function may run it.

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
    pub after_node: Option<String>,
    pub before_ms: f64,
    pub after_ms: Option<f64>,
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

/// What a proof runs on: the advice's table and index, and the statements to measure.
pub struct Target {
    pub advice_id: i64,
    pub on: String,
    pub relid: pg_sys::Oid,
    pub table: String,
    pub name: String,
    pub statements: Vec<String>,
}

/// One statement measured before the build: the estimate and the capture.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Before {
    pub query: String,
    pub est_cost_before: f64,
    pub est_cost_after: f64,
    pub before_evidence: i64,
    pub before_node: String,
    pub before_ms: f64,
}

/// Read the advice and decide what to prove: refuses what is not an advice, a table
/// gone or over `max_table_bytes`; keeps only the statements that can run as they are.
pub fn target(
    advice_id: i64,
    max_table_bytes: Option<i64>,
    queries: Option<Vec<String>>,
    concurrently: bool,
) -> Result<Target> {
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
            let (what, hint) = if concurrently {
                ("building the index reads the whole table twice and waits for every transaction that could use it", "pass a larger max_table_bytes (NULL for no limit) when the build's I/O and time are acceptable")
            } else {
                ("building the index blocks writes to it for the whole build", "build it concurrently (the default, concurrently => true), or pass a larger max_table_bytes (NULL for no limit)")
            };
            return Err(CapstoneError::PrerequisiteState(format!(
                "{table} is {} (over max_table_bytes, {}): {what}",
                crate::infra::format::bytes(size),
                crate::infra::format::bytes(limit)
            ))
            .with_hint(hint));
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
    Ok(Target {
        advice_id,
        on,
        relid,
        table,
        name: format!("capstone_advice_{advice_id}"),
        statements,
    })
}

/// Refuse to start a proof with nothing to run, or of an advice whose index is already there.
pub fn refuse_built(t: &Target) -> Result<()> {
    if t.statements.is_empty() {
        return Err(CapstoneError::InvalidParameter(
            "none of the statements this advice serves can be executed as they are (pg_stat_statements keeps them with $n parameters)".into(),
        )
        .with_hint("pass concrete statements with queries => ARRAY['SELECT ... WHERE col = 42']"));
    }
    if index_state(t).is_some() {
        return Err(CapstoneError::DuplicateObject(format!(
            "advice {} was already built as index {}",
            t.advice_id, t.name
        ))
        .with_hint(format!(
            "drop it to prove the advice again: DROP INDEX {}",
            t.name
        )));
    }
    Ok(())
}

/// The advice's index beside its table, if it exists: is it valid (ready for queries)?
pub fn index_state(t: &Target) -> Option<bool> {
    Spi::get_one_with_args::<bool>(
        "SELECT i.indisvalid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
           JOIN pg_catalog.pg_class r ON r.relnamespace = c.relnamespace
          WHERE r.oid = $1 AND c.relname = $2",
        &[t.relid.into(), t.name.as_str().into()],
    )
    .ok()
    .flatten()
}

/// The CREATE INDEX of the proof's index (named, so the proof can find it).
pub fn build_sql(t: &Target, concurrently: bool) -> String {
    format!(
        "CREATE INDEX {}{} {}",
        if concurrently { "CONCURRENTLY " } else { "" },
        pgrx::spi::quote_identifier(&t.name),
        t.on
    )
}

/// Estimate each statement with the index as a hypothetical one, then measure it.
pub fn before(t: &Target, runs: i32) -> Result<Vec<Before>> {
    let create_hypo = build_sql(t, false);
    let mut out = Vec::new();
    for (i, q) in t.statements.iter().enumerate() {
        let est = estimate(q, &create_hypo, t.relid, &t.table)?;
        let m = measure(
            q,
            &format!("index_prove {} before #{}", t.advice_id, i + 1),
            runs,
        )?;
        out.push(Before {
            query: q.clone(),
            est_cost_before: est.0,
            est_cost_after: est.1,
            before_evidence: m.0,
            before_node: m.1,
            before_ms: m.2,
        });
    }
    Ok(out)
}

/// Measure each statement again with the index built, and store the proof; `build`
/// says how it was built.
pub fn after(t: &Target, before: &[Before], runs: i32, build: Value) -> Result<(i64, Vec<Proof>)> {
    let mut proofs = Vec::new();
    let mut rows = Vec::new();
    for (i, b) in before.iter().enumerate() {
        let a = measure(
            &b.query,
            &format!("index_prove {} after #{}", t.advice_id, i + 1),
            runs,
        )?;
        let v = verdict(b.before_ms, a.2);
        rows.push(json!({"query": b.query, "est_cost_before": b.est_cost_before, "est_cost_after": b.est_cost_after,
            "before_evidence": b.before_evidence, "after_evidence": a.0, "before_node": b.before_node, "after_node": a.1,
            "before_ms": b.before_ms, "after_ms": a.2, "verdict": v}));
        proofs.push(Proof {
            query: b.query.clone(),
            est_cost_before: b.est_cost_before,
            est_cost_after: b.est_cost_after,
            before_node: b.before_node.clone(),
            after_node: Some(a.1),
            before_ms: b.before_ms,
            after_ms: Some(a.2),
            verdict: v,
        });
    }
    let mut payload = json!({"advice_id": t.advice_id, "index": t.name, "statements": rows});
    if let (Some(p), Some(b)) = (payload.as_object_mut(), build.as_object()) {
        for (k, v) in b {
            p.insert(k.clone(), v.clone());
        }
    }
    let id = evidence::store(
        Gate::Index,
        Some("index_prove"),
        Some(&build_sql(
            t,
            build
                .get("concurrently")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        )),
        json!({"advice_id": t.advice_id, "runs": runs, "min_speedup": MIN_SPEEDUP}),
        payload,
    );
    Ok((id, proofs))
}

/// The whole proof with a plain CREATE INDEX in the caller's transaction, as the caller
/// (CREATE INDEX checks that the caller owns the table).
pub fn prove_plain(t: &Target, runs: i32) -> Result<(i64, Vec<Proof>)> {
    refuse_built(t)?;
    let b = before(t, runs)?;
    let build = build_sql(t, false);
    let analyze_sql = format!("ANALYZE {}", t.table);
    let started = std::time::Instant::now();
    crate::infra::search_path::as_caller(|| {
        Spi::run(&build)?;
        Spi::run(&analyze_sql)
    })
    .map_err(|e| CapstoneError::PrerequisiteState(format!("building the index failed: {e}")))?;
    let build_ms = started.elapsed().as_secs_f64() * 1000.0;
    after(
        t,
        &b,
        runs,
        json!({"concurrently": false, "build_ms": build_ms}),
    )
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
