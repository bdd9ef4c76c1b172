//! The capture: running the caller's statement under `EXPLAIN (ANALYZE, BUFFERS,
//! SETTINGS, FORMAT JSON)` in a subtransaction that is always rolled back, keeping the
//! median run, and storing it in `capstone.evidence`; and loading a stored capture.
//! SPI lives here; reading the plan JSON is [`super::parse`]'s job.

use super::parse::{parse_explain_json, parse_explain_value, parse_json_deep};
use super::tree::ExplainResult;
use crate::infra::error::{CapstoneError, Result};
use crate::infra::evidence::Gate;
use crate::infra::subxact::{self, Outcome};
use pgrx::prelude::*;
use serde_json::{json, Value};

/// One EXPLAIN ANALYZE run, always rolled back. PostgreSQL's errors keep their SQLSTATE.
fn explain_once(query: &str, timing: bool) -> Result<Value> {
    let sql = format!(
        "EXPLAIN (ANALYZE, BUFFERS, VERBOSE, SETTINGS, TIMING {}, FORMAT JSON) {query}",
        if timing { "ON" } else { "OFF" }
    );
    let r = subxact::run(Outcome::Rollback, || {
        // the caller's statement resolves names the way the caller would
        crate::infra::search_path::as_caller(|| {
            Spi::connect_mut(|c| {
                // read as text: pgrx's json decoding stops at 128 levels (about 62 plan levels)
                let d = c.update(&sql, None, &[])?.first().get_datum_by_ordinal(1)?;
                // SAFETY: EXPLAIN's one column is json, a text varlena; copied out at once
                Ok::<_, pgrx::spi::Error>(d.and_then(|d| unsafe {
                    String::from_polymorphic_datum(d, false, pg_sys::JSONOID)
                }))
            })
        })
    });
    match r {
        Ok(Ok(Some(text))) => parse_json_deep(&text).map_err(|e| {
            CapstoneError::PrerequisiteState(format!("cannot read this plan: {e}")).with_hint(
                "capstone reads plans up to 200 levels deep; look at this one with plain EXPLAIN",
            )
        }),
        Ok(Ok(None)) => {
            Err(CapstoneError::PrerequisiteState("EXPLAIN returned no plan".into()).into())
        }
        Ok(Err(e)) => Err(CapstoneError::PrerequisiteState(format!("EXPLAIN failed: {e}")).into()),
        Err(e) => (*e).rethrow(),
    }
}

/// A capture: the plan of the median run, every run's time, and the evidence id.
pub struct Capture {
    pub evidence_id: i64,
    pub plan_json: Value,
    pub parsed: ExplainResult,
    pub runs_ms: Vec<f64>,
}

/// The typed tree of a plan the server printed (or capstone stored).
fn read_plan(v: &Value) -> Result<ExplainResult> {
    parse_explain_value(v).map_err(|e| {
        CapstoneError::PrerequisiteState(format!("could not read the plan: {e}"))
            .with_hint("this is a capstone bug if the server printed the plan; please report it with the plan JSON")
    })
}

/// Run `query` `runs` times (after one warm-up when runs > 1), keep the median
/// run's plan, and store it as evidence of `gate`. The caller checks `runs` (1..=1000).
pub fn capture(
    gate: Gate,
    query: &str,
    label: Option<&str>,
    runs: i32,
    timing: bool,
) -> Result<Capture> {
    if runs > 1 {
        explain_once(query, timing)?;
    }
    let mut samples = (0..runs)
        .map(|_| {
            let v = explain_once(query, timing)?;
            let parsed = read_plan(&v)?;
            Ok((parsed.execution_time.unwrap_or(0.0), v, parsed))
        })
        .collect::<Result<Vec<(f64, Value, ExplainResult)>>>()?;
    let runs_ms: Vec<f64> = samples.iter().map(|s| s.0).collect();
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    if samples.is_empty() {
        return Err(CapstoneError::InvalidParameter(format!(
            "runs must be between 1 and 1000 (got {runs})"
        ))
        .into());
    }
    let (median_ms, plan_json, parsed) = samples.swap_remove(samples.len() / 2);
    let settings = serde_json::to_value(&parsed.settings).unwrap_or(Value::Null);
    let payload = json!({
        "plan": plan_json,
        "runs": runs,
        "runs_ms": runs_ms,
        "median_ms": median_ms,
        "timing": timing,
    });
    let evidence_id = crate::infra::evidence::store(gate, label, Some(query), settings, payload);
    Ok(Capture {
        evidence_id,
        plan_json,
        parsed,
        runs_ms,
    })
}

/// Load a stored plan capture: its plan and its label (or query). The plan's text is
/// read out of the payload and parsed once, straight into the tree.
pub fn load_plan(id: i64) -> Result<(ExplainResult, Option<String>)> {
    let (c, parts) = crate::infra::evidence::load_parts(
        id,
        &["{imported_source}", "{imported,stored_as}", "{plan}"],
    );
    let mut parts = parts.into_iter();
    let (src, stored_as, plan) = (
        parts.next().flatten(),
        parts.next().flatten(),
        parts.next().flatten(),
    );
    // imported plans keep theirs under their own key, so nothing reads them as measured
    if let Some(src) = src {
        let r =
            super::import::stored(&src, stored_as.as_deref().unwrap_or("text")).map_err(|e| {
                CapstoneError::PrerequisiteState(format!(
                    "evidence row {id} holds an imported plan that cannot be read: {e}"
                ))
                .with_hint("import the plan again with capstone.plan_import")
            })?;
        return Ok((r, c.label.or(c.query)));
    }
    let Some(plan) = plan else {
        return Err(CapstoneError::WrongObjectType(format!(
            "evidence row {id} ({} gate) holds no plan",
            c.gate
        ))
        .with_hint(
            "pass the id of a row written by capstone.explain, estimate_gap, explain_diff or plan_import",
        ));
    };
    let r = parse_explain_json(&plan).map_err(|e| {
        CapstoneError::PrerequisiteState(format!("could not read the plan: {e}"))
            .with_hint("this is a capstone bug if the server printed the plan; please report it with the plan JSON")
    })?;
    Ok((r, c.label.or(c.query)))
}
