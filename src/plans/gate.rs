//! The plan-regression gate: each watched query is captured and judged against its
//! budgets (seq scans on large tables, worst q-error, execution time), and a failed
//! verdict becomes the P0001 error of `capstone.assert_plans`. Reading the watched
//! queries is [`super::watched`]'s job; the SQL rows are built in `mod.rs`.

use super::capture::capture;
use super::flatten::flatten;
use super::gaps::{estimate_gaps, Direction, GapRow};
use super::statement::validate_statement;
use super::watched::{reltuples, watched, Watched};
use crate::infra::error::{CapstoneError, Result};
use crate::infra::evidence::Gate;
use crate::infra::format::round;
use crate::infra::subxact::{self, Outcome};

/// The verdict on one watched query.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GateResult {
    pub name: String,
    pub passed: bool,
    pub reasons: Vec<String>,
    pub worst_q_error: Option<f64>,
    pub execution_ms: Option<f64>,
    pub seq_scans: Vec<String>,
    pub evidence_id: Option<i64>,
}

/// Capture one watched query and judge it. Its own failure (dropped table, bad SQL)
/// fails the query with the error as the reason; only a cancel stops the gate.
fn judge(w: &Watched) -> Result<GateResult> {
    let mut res = GateResult {
        name: w.name.clone(),
        passed: true,
        reasons: vec![],
        worst_q_error: None,
        execution_ms: None,
        seq_scans: vec![],
        evidence_id: None,
    };
    let outcome = subxact::run(Outcome::Commit, || {
        let q = validate_statement(Some(&w.sql))?;
        capture(
            Gate::Plans,
            &q,
            Some(&format!("plan_gate: {}", w.name)),
            1,
            true,
        )
    });
    let c = match outcome {
        Ok(Ok(c)) => c,
        Ok(Err(f)) => {
            let code = subxact::sqlstate_text(f.error.sqlstate());
            // a cancel (Ctrl-C, statement_timeout) stops the gate; it is not one query's failure
            if code == "57014" {
                return Err(f);
            }
            res.passed = false;
            res.reasons.push(format!("error {code}: {}", f.error));
            return Ok(res);
        }
        Err(e) => {
            let (code, msg) = subxact::describe(&e);
            if code == "57014" {
                (*e).rethrow();
            }
            res.passed = false;
            res.reasons.push(format!("error {code}: {msg}"));
            return Ok(res);
        }
    };
    res.evidence_id = Some(c.evidence_id);
    res.execution_ms = c.parsed.execution_time;
    for n in flatten(&c.parsed) {
        if n.node.node_type == "Seq Scan" {
            if let Some(rel) = &n.node.relation {
                let short = rel.rsplit('.').next().unwrap_or(rel).to_string();
                let allowed = w.allowed.iter().any(|a| a == rel || *a == short);
                let rows = reltuples(rel);
                if !allowed && rows > w.min_rows as f64 {
                    res.seq_scans.push(rel.clone());
                    res.reasons.push(format!(
                        "seq scan on {rel} ({rows:.0} rows > {})",
                        w.min_rows
                    ));
                }
            }
        }
    }
    let gaps = estimate_gaps(&c.parsed, w.max_q);
    // nodes a LIMIT stopped early legitimately return fewer rows than estimated
    let counted = |g: &&GapRow| !(g.cut_short && g.direction == Some(Direction::Over));
    res.worst_q_error = gaps
        .iter()
        .filter(counted)
        .filter_map(|g| g.q_error)
        .reduce(f64::max);
    if let Some(g) = gaps
        .iter()
        .filter(counted)
        .filter(|g| g.q_error.is_some_and(|q| q > w.max_q))
        .max_by(|a, b| {
            a.q_error
                .unwrap_or(0.0)
                .total_cmp(&b.q_error.unwrap_or(0.0))
        })
    {
        res.reasons.push(format!(
            "q-error {:.1} > {} at {}",
            g.q_error.unwrap_or(0.0),
            w.max_q,
            g.node
        ));
    }
    if let (Some(max), Some(ms)) = (w.max_ms, res.execution_ms) {
        if ms > max {
            res.reasons
                .push(format!("execution {ms:.1} ms > budget {max} ms"));
        }
    }
    res.passed = res.reasons.is_empty();
    // judged on the exact values; reported as psql shows numbers
    res.worst_q_error = res.worst_q_error.map(|q| round(q, 2));
    res.execution_ms = res.execution_ms.map(|ms| round(ms, 3));
    Ok(res)
}

/// Judge every enabled watched query. Watched queries run under the caller's
/// search_path; capstone's own reads are pinned.
pub fn run_gate() -> Result<Vec<GateResult>> {
    crate::infra::search_path::guarded(|| watched()?.iter().map(judge).collect())
}

/// The verdict as `assert_plans` says it: a line when every query passed, else the
/// P0001 error listing each failed query's reasons.
pub fn assert_verdict(results: &[GateResult]) -> Result<String> {
    let failed: Vec<&GateResult> = results.iter().filter(|r| !r.passed).collect();
    if !failed.is_empty() {
        let detail = failed
            .iter()
            .map(|r| format!("{}: {}", r.name, r.reasons.join("; ")))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(CapstoneError::GateFailed(format!(
            "plan gate failed: {} of {} watched queries regressed",
            failed.len(),
            results.len()
        ))
        .with(
            detail,
            "SELECT * FROM capstone.plan_gate() shows each reason; capstone.estimate_gap(evidence_id) shows the plan",
        ));
    }
    Ok(format!(
        "plan gate passed: {} watched queries",
        results.len()
    ))
}

#[cfg(test)]
mod unit {
    use super::*;

    fn result(name: &str, reasons: &[&str]) -> GateResult {
        GateResult {
            name: name.into(),
            passed: reasons.is_empty(),
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
            worst_q_error: None,
            execution_ms: None,
            seq_scans: vec![],
            evidence_id: None,
        }
    }

    #[test]
    fn a_failed_query_fails_the_assertion_with_its_reasons() {
        let ok = [result("a", &[])];
        assert_eq!(
            assert_verdict(&ok),
            Ok("plan gate passed: 1 watched queries".to_string())
        );
        let bad = [result("a", &[]), result("b", &["x", "y"])];
        let r = assert_verdict(&bad);
        assert!(matches!(
            &r,
            Err(f) if f.error == CapstoneError::GateFailed("plan gate failed: 1 of 2 watched queries regressed".into())
                && f.detail == "b: x; y"
        ));
    }
}
