//! Plan evidence from psql: capture (`capstone.explain`), before/after proof
//! (`capstone.explain_diff`), estimate gaps (`capstone.estimate_gap`) and the
//! plan-regression gate (`capstone.plan_gate`, `capstone.assert_plans`).
//!
//! The plan JSON is parsed and compared in pure Rust (`plan.rs`); this module is
//! the SQL layer: it validates the statement, runs `EXPLAIN ANALYZE` as the
//! caller inside a subtransaction that is always rolled back, and stores what it
//! captured in `capstone.evidence`.

// pgrx needs each result row spelled out as a name!() tuple in the signature
#![allow(clippy::type_complexity)]

pub mod plan;

use crate::infra::error::{check_range, CapstoneError};
use crate::infra::evidence::Gate;
use crate::infra::subxact::{self, Outcome};
use pgrx::prelude::*;
use pgrx::JsonB;
use plan::{ExplainResult, PlanNode};
use serde_json::{json, Value};

/// The statement kinds `capstone.explain` accepts.
const ACCEPTED: &str = "SELECT, INSERT, UPDATE, DELETE and MERGE";

/// Check that `query` is exactly one explainable statement. Syntax errors come
/// from PostgreSQL's own parser with its message and SQLSTATE 42601.
pub fn validate_statement(query: Option<&str>) -> String {
    let q = match query {
        None => CapstoneError::NullValue("query".into())
            .raise_hint(format!("pass one {ACCEPTED} statement as text")),
        Some(q) => q.trim(),
    };
    let q = q.trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    if q.is_empty() {
        CapstoneError::InvalidParameter("query must not be empty".into())
            .raise_hint(format!("pass one {ACCEPTED} statement as text"));
    }
    let stmts = crate::infra::parse::raw_statements(q, "query");
    let n = stmts.len();
    unsafe {
        if n == 0 {
            CapstoneError::InvalidParameter("query contains no statement".into())
                .raise_hint(format!("pass one {ACCEPTED} statement as text"));
        }
        if n > 1 {
            CapstoneError::Syntax(format!("query must be exactly one statement (got {n})"))
                .raise_hint("run each statement in its own call; capstone never runs a second statement hidden in the text");
        }
        let node = stmts[0];
        let tag = (*node).type_;
        let ok = match tag {
            pg_sys::NodeTag::T_SelectStmt => {
                (*(node as *mut pg_sys::SelectStmt)).intoClause.is_null()
            }
            pg_sys::NodeTag::T_InsertStmt
            | pg_sys::NodeTag::T_UpdateStmt
            | pg_sys::NodeTag::T_DeleteStmt
            | pg_sys::NodeTag::T_MergeStmt => true,
            _ => false,
        };
        if !ok {
            let name = if tag == pg_sys::NodeTag::T_SelectStmt {
                "SELECT INTO".to_string()
            } else {
                std::ffi::CStr::from_ptr(pg_sys::CreateCommandName(node))
                    .to_string_lossy()
                    .into_owned()
            };
            CapstoneError::NotSupported(format!("capstone cannot EXPLAIN ANALYZE a {name} statement"))
                .raise_with(
                    format!("only {ACCEPTED} statements are explained; utility statements (VACUUM, CREATE, ...) have no plan to prove"),
                    "run utility statements yourself, or pass them as the change argument of capstone.explain_diff",
                );
        }
    }
    q.to_string()
}

/// One EXPLAIN ANALYZE run, always rolled back. Errors keep their SQLSTATE.
fn explain_once(query: &str, timing: bool) -> Value {
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
        Ok(Ok(Some(text))) => plan::parse_json_deep(&text).unwrap_or_else(|e| {
            CapstoneError::PrerequisiteState(format!("cannot read this plan: {e}")).raise_hint(
                "capstone reads plans up to 200 levels deep; look at this one with plain EXPLAIN",
            )
        }),
        Ok(Ok(None)) => CapstoneError::PrerequisiteState("EXPLAIN returned no plan".into()).raise(),
        Ok(Err(e)) => CapstoneError::PrerequisiteState(format!("EXPLAIN failed: {e}")).raise(),
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

fn parse(v: &Value) -> ExplainResult {
    plan::parse_explain_value(v).unwrap_or_else(|e| {
        CapstoneError::PrerequisiteState(format!("could not read the plan: {e}"))
            .raise_hint("this is a capstone bug if the server printed the plan; please report it with the plan JSON")
    })
}

/// Run `query` `runs` times (after one warm-up when runs > 1), keep the median
/// run's plan, and store it as evidence of `gate`.
pub fn capture(gate: Gate, query: &str, label: Option<&str>, runs: i32, timing: bool) -> Capture {
    let runs = check_range("runs", runs, 1, 1000);
    if runs > 1 {
        explain_once(query, timing);
    }
    let mut samples: Vec<(f64, Value, ExplainResult)> = (0..runs)
        .map(|_| {
            let v = explain_once(query, timing);
            let parsed = parse(&v);
            (parsed.execution_time.unwrap_or(0.0), v, parsed)
        })
        .collect();
    let runs_ms: Vec<f64> = samples.iter().map(|s| s.0).collect();
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
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
    Capture {
        evidence_id,
        plan_json,
        parsed,
        runs_ms,
    }
}

/// Load a stored plan capture.
fn load_plan(id: i64) -> (ExplainResult, Option<String>) {
    let c = crate::infra::evidence::load(id);
    let plan = match c.payload.get("plan") {
        Some(p) => p.clone(),
        None => CapstoneError::WrongObjectType(format!(
            "evidence row {id} ({} gate) holds no plan",
            c.gate
        ))
        .raise_hint(
            "pass the id of a row written by capstone.explain, estimate_gap or explain_diff",
        ),
    };
    (parse(&plan), c.label.or(c.query))
}

fn totals(n: &PlanNode) -> (i64, i64) {
    (n.shared_hit.unwrap_or(0), n.shared_read.unwrap_or(0))
}

/// Run a statement under `EXPLAIN (ANALYZE, BUFFERS, SETTINGS, FORMAT JSON)` as the
/// caller, always rolled back, and store the plan as evidence.
#[pg_extern(volatile, parallel_unsafe)]
fn explain(
    query: Option<String>,
    label: default!(Option<String>, "NULL"),
    runs: default!(Option<i32>, 1),
    timing: default!(Option<bool>, true),
) -> TableIterator<
    'static,
    (
        name!(evidence_id, i64),
        name!(label, Option<String>),
        name!(root_node, String),
        name!(execution_ms, Option<f64>),
        name!(planning_ms, Option<f64>),
        name!(median_of, i32),
        name!(shared_hit, i64),
        name!(shared_read, i64),
        name!(plan, JsonB),
    ),
> {
    crate::infra::search_path::guarded(|| explain_impl(query, label, runs, timing))
}

type ExplainRow = (
    i64,
    Option<String>,
    String,
    Option<f64>,
    Option<f64>,
    i32,
    i64,
    i64,
    JsonB,
);

fn explain_impl(
    query: Option<String>,
    label: Option<String>,
    runs: Option<i32>,
    timing: Option<bool>,
) -> TableIterator<'static, ExplainRow> {
    let q = validate_statement(query.as_deref());
    let runs = runs.unwrap_or(1);
    let c = capture(
        Gate::Plans,
        &q,
        label.as_deref(),
        runs,
        timing.unwrap_or(true),
    );
    let (hit, read) = totals(&c.parsed.root);
    let root = plan::flatten(&c.parsed)
        .first()
        .map(|n| n.label())
        .unwrap_or_default();
    TableIterator::once((
        c.evidence_id,
        label,
        root,
        c.parsed.execution_time,
        c.parsed.planning_time,
        c.runs_ms.len() as i32,
        hit,
        read,
        JsonB(c.plan_json),
    ))
}

type GapTuple = (
    i32,
    i32,
    String,
    Option<String>,
    f64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<String>,
    bool,
    bool,
    bool,
);

fn gap_rows(r: &ExplainResult) -> Vec<GapTuple> {
    plan::estimate_gaps(r, crate::infra::gucs::gap_threshold())
        .into_iter()
        .map(|g| {
            (
                g.id as i32,
                g.depth as i32,
                g.node,
                g.relation,
                g.est_rows,
                g.actual_rows,
                g.loops,
                g.q_error,
                g.direction.map(|d| d.to_string()),
                g.flagged,
                g.root_cause,
                g.cut_short,
            )
        })
        .collect()
}

/// Estimated vs actual rows for every plan node of `query`, with q-error, the
/// nodes at or above `capstone.gap_threshold`, and the likely root cause.
#[pg_extern(volatile, parallel_unsafe, name = "estimate_gap")]
fn estimate_gap_query(
    query: Option<String>,
    label: default!(Option<String>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(node_id, i32),
        name!(depth, i32),
        name!(node, String),
        name!(relation, Option<String>),
        name!(est_rows, f64),
        name!(actual_rows, Option<f64>),
        name!(loops, Option<f64>),
        name!(q_error, Option<f64>),
        name!(direction, Option<String>),
        name!(flagged, bool),
        name!(root_cause, bool),
        name!(cut_short_by_limit, bool),
    ),
> {
    crate::infra::search_path::guarded(|| {
        let q = validate_statement(query.as_deref());
        let c = capture(Gate::Statistics, &q, label.as_deref(), 1, true);
        TableIterator::new(gap_rows(&c.parsed))
    })
}

/// The same analysis on a stored capture.
#[pg_extern(stable, parallel_unsafe, name = "estimate_gap")]
fn estimate_gap_evidence(
    evidence_id: Option<i64>,
) -> TableIterator<
    'static,
    (
        name!(node_id, i32),
        name!(depth, i32),
        name!(node, String),
        name!(relation, Option<String>),
        name!(est_rows, f64),
        name!(actual_rows, Option<f64>),
        name!(loops, Option<f64>),
        name!(q_error, Option<f64>),
        name!(direction, Option<String>),
        name!(flagged, bool),
        name!(root_cause, bool),
        name!(cut_short_by_limit, bool),
    ),
> {
    let id = crate::infra::error::required(evidence_id, "evidence_id");
    let (r, _) = load_plan(id);
    TableIterator::new(gap_rows(&r))
}

type DiffTuple = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
);

fn diff_rows(
    before: &ExplainResult,
    after: &ExplainResult,
    ids: Option<(i64, i64)>,
) -> Vec<DiffTuple> {
    plan::diff_plans(before, after)
        .into_iter()
        .map(|d| {
            let key = match (d.kind.as_str(), ids) {
                ("statement", Some((b, a))) => format!("statement (evidence {b} -> {a})"),
                _ => d.key,
            };
            (
                d.kind,
                key,
                d.change,
                d.before_op,
                d.after_op,
                d.before_ms,
                d.after_ms,
                d.speedup,
                d.before_hit,
                d.after_hit,
                d.before_read,
                d.after_read,
                d.before_est_rows,
                d.after_est_rows,
                d.before_actual_rows,
                d.after_actual_rows,
            )
        })
        .collect()
}

/// Before/after proof: run `query`, apply `change` (e.g. CREATE INDEX ...; ANALYZE ...),
/// run `query` again, and return what changed, node by node. The change is kept;
/// if it fails, its error is raised and nothing of it is applied.
#[pg_extern(volatile, parallel_unsafe, name = "explain_diff")]
fn explain_diff_change(
    query: Option<String>,
    change: Option<String>,
    label: default!(Option<String>, "NULL"),
    runs: default!(Option<i32>, 1),
) -> TableIterator<
    'static,
    (
        name!(kind, String),
        name!(key, String),
        name!(change, String),
        name!(before_op, Option<String>),
        name!(after_op, Option<String>),
        name!(before_ms, Option<f64>),
        name!(after_ms, Option<f64>),
        name!(speedup, Option<f64>),
        name!(before_hit, Option<i64>),
        name!(after_hit, Option<i64>),
        name!(before_read, Option<i64>),
        name!(after_read, Option<i64>),
        name!(before_est_rows, Option<f64>),
        name!(after_est_rows, Option<f64>),
        name!(before_actual_rows, Option<f64>),
        name!(after_actual_rows, Option<f64>),
    ),
> {
    crate::infra::search_path::guarded(|| {
        let q = validate_statement(query.as_deref());
        let change = crate::infra::error::required(change, "change");
        if change.trim().is_empty()
            || crate::infra::parse::raw_statements(&change, "change").is_empty()
        {
            CapstoneError::InvalidParameter("change must not be empty".into()).raise_hint(
                "pass the SQL that should make the query faster, e.g. 'CREATE INDEX ...; ANALYZE ...'",
            );
        }
        let runs = runs.unwrap_or(1);
        let base = label.clone().unwrap_or_else(|| "explain_diff".into());
        let before = capture(
            Gate::Plans,
            &q,
            Some(&format!("{base}: before")),
            runs,
            true,
        );
        match subxact::run(Outcome::Commit, || {
            crate::infra::search_path::as_caller(|| Spi::run(&change))
        }) {
            Ok(Ok(())) => {}
            // SPI refused it without running it (COMMIT, ROLLBACK, COPY TO STDOUT, ...)
            Ok(Err(e)) => CapstoneError::NotSupported(format!(
                "the change cannot run inside a function: {e}"
            ))
            .raise_hint(
                "transaction control and client COPY cannot be part of a change; run them yourself",
            ),
            // the subtransaction is rolled back: nothing of the change remains
            Err(e) => (*e).rethrow(),
        }
        let after = capture(Gate::Plans, &q, Some(&format!("{base}: after")), runs, true);
        let rows = diff_rows(
            &before.parsed,
            &after.parsed,
            Some((before.evidence_id, after.evidence_id)),
        );
        // a statistics fix (CREATE STATISTICS, ANALYZE alone) proves the statistics gate; anything else the index gate
        let upper = change.to_uppercase();
        let gate = if upper.contains("STATISTICS")
            || (upper.contains("ANALYZE") && !upper.contains("INDEX"))
        {
            Gate::Statistics
        } else {
            Gate::Index
        };
        crate::infra::evidence::store(
            gate,
            Some(&base),
            Some(&q),
            json!({}),
            json!({
                "before": before.evidence_id,
                "after": after.evidence_id,
                "change": change,
                "diff": plan::diff_plans(&before.parsed, &after.parsed),
            }),
        );
        TableIterator::new(rows)
    })
}

/// Diff two stored captures (ids from capstone.evidence).
#[pg_extern(stable, parallel_unsafe, name = "explain_diff")]
fn explain_diff_evidence(
    before: Option<i64>,
    after: Option<i64>,
) -> TableIterator<
    'static,
    (
        name!(kind, String),
        name!(key, String),
        name!(change, String),
        name!(before_op, Option<String>),
        name!(after_op, Option<String>),
        name!(before_ms, Option<f64>),
        name!(after_ms, Option<f64>),
        name!(speedup, Option<f64>),
        name!(before_hit, Option<i64>),
        name!(after_hit, Option<i64>),
        name!(before_read, Option<i64>),
        name!(after_read, Option<i64>),
        name!(before_est_rows, Option<f64>),
        name!(after_est_rows, Option<f64>),
        name!(before_actual_rows, Option<f64>),
        name!(after_actual_rows, Option<f64>),
    ),
> {
    let b = crate::infra::error::required(before, "before");
    let a = crate::infra::error::required(after, "after");
    let (pb, _) = load_plan(b);
    let (pa, _) = load_plan(a);
    TableIterator::new(diff_rows(&pb, &pa, Some((b, a))))
}

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

struct Watched {
    name: String,
    sql: String,
    max_q: f64,
    allowed: Vec<String>,
    min_rows: i64,
    max_ms: Option<f64>,
}

fn watched() -> Vec<Watched> {
    let threshold = crate::infra::gucs::gap_threshold();
    Spi::connect(|c| {
        let mut out = Vec::new();
        for r in c.select(
            "SELECT name, sql, max_q_error, seqscan_allowed, seqscan_min_rows, max_ms
               FROM capstone.watched_queries
              WHERE enabled AND owner = current_user ORDER BY name",
            None,
            &[],
        )? {
            out.push(Watched {
                name: r.get::<String>(1)?.unwrap_or_default(),
                sql: r.get::<String>(2)?.unwrap_or_default(),
                max_q: r.get::<f64>(3)?.unwrap_or(threshold),
                // the column allows NULL elements: they allow nothing
                allowed: r
                    .get::<Vec<Option<String>>>(4)?
                    .unwrap_or_default()
                    .into_iter()
                    .flatten()
                    .collect(),
                min_rows: r.get::<i64>(5)?.unwrap_or(10000),
                max_ms: r.get::<f64>(6)?,
            });
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_else(|e| {
        CapstoneError::PrerequisiteState(format!("cannot read capstone.watched_queries: {e}"))
            .raise()
    })
}

/// Estimated row count of a relation named in a plan ("schema.rel" or "rel").
fn reltuples(relation: &str) -> f64 {
    let (schema, rel) = match relation.split_once('.') {
        Some((s, r)) => (Some(s.to_string()), r.to_string()),
        None => (None, relation.to_string()),
    };
    Spi::get_one_with_args::<f64>(
        "SELECT c.reltuples::float8 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relname = $2 AND ($1::text IS NULL OR n.nspname = $1)
          ORDER BY c.reltuples DESC LIMIT 1",
        &[schema.into(), rel.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(0.0)
}

fn judge(w: &Watched) -> GateResult {
    let mut res = GateResult {
        name: w.name.clone(),
        passed: true,
        reasons: vec![],
        worst_q_error: None,
        execution_ms: None,
        seq_scans: vec![],
        evidence_id: None,
    };
    // A broken watched query (dropped table, bad SQL) fails the gate with its error; it never aborts the gate.
    let outcome = subxact::run(Outcome::Commit, || {
        let q = validate_statement(Some(&w.sql));
        capture(
            Gate::Plans,
            &q,
            Some(&format!("plan_gate: {}", w.name)),
            1,
            true,
        )
    });
    let c = match outcome {
        Ok(c) => c,
        Err(e) => {
            let (code, msg) = subxact::describe(&e);
            // a cancel (Ctrl-C, statement_timeout) stops the gate; it is not one query's failure
            if code == "57014" {
                (*e).rethrow();
            }
            res.passed = false;
            res.reasons.push(format!("error {code}: {msg}"));
            return res;
        }
    };
    res.evidence_id = Some(c.evidence_id);
    res.execution_ms = c.parsed.execution_time;
    for n in plan::flatten(&c.parsed) {
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
    let gaps = plan::estimate_gaps(&c.parsed, w.max_q);
    // nodes a LIMIT stopped early legitimately return fewer rows than estimated
    let counted = |g: &&plan::GapRow| !(g.cut_short && g.direction == Some(plan::Direction::Over));
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
    res
}

/// Watched queries run under the caller's search_path; capstone's own reads are pinned.
pub fn run_gate() -> Vec<GateResult> {
    crate::infra::search_path::guarded(|| watched().iter().map(judge).collect())
}

/// Run every enabled watched query and judge it: pass, or fail with reasons.
#[pg_extern(volatile, parallel_unsafe)]
fn plan_gate() -> TableIterator<
    'static,
    (
        name!(name, String),
        name!(passed, bool),
        name!(reasons, Vec<String>),
        name!(worst_q_error, Option<f64>),
        name!(execution_ms, Option<f64>),
        name!(seq_scans, Vec<String>),
        name!(evidence_id, Option<i64>),
    ),
> {
    TableIterator::new(run_gate().into_iter().map(|r| {
        (
            r.name,
            r.passed,
            r.reasons,
            r.worst_q_error,
            r.execution_ms,
            r.seq_scans,
            r.evidence_id,
        )
    }))
}

/// The gate's verdict as one jsonb document, for CI and other machines.
#[pg_extern(volatile, parallel_unsafe)]
fn plan_gate_json() -> JsonB {
    let results = run_gate();
    let failed = results.iter().filter(|r| !r.passed).count();
    JsonB(json!({
        "passed": failed == 0,
        "queries": results.len(),
        "failed": failed,
        "results": results,
    }))
}

/// Raise an error when any watched query fails the gate, so
/// `psql -v ON_ERROR_STOP=1 -c 'SELECT capstone.assert_plans()'` exits non-zero.
#[pg_extern(volatile, parallel_unsafe)]
fn assert_plans() -> String {
    let results = run_gate();
    let failed: Vec<&GateResult> = results.iter().filter(|r| !r.passed).collect();
    if !failed.is_empty() {
        let detail = failed
            .iter()
            .map(|r| format!("{}: {}", r.name, r.reasons.join("; ")))
            .collect::<Vec<_>>()
            .join("\n");
        pgrx::pg_sys::panic::ErrorReport::new(
            pgrx::PgSqlErrorCode::ERRCODE_RAISE_EXCEPTION,
            format!("plan gate failed: {} of {} watched queries regressed", failed.len(), results.len()),
            "capstone",
        )
        .set_detail(detail)
        .set_hint("SELECT * FROM capstone.plan_gate() shows each reason; capstone.estimate_gap(evidence_id) shows the plan")
        .report(PgLogLevel::ERROR);
    }
    format!("plan gate passed: {} watched queries", results.len())
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn explain_stores_evidence() {
        let (id, root) = Spi::get_two::<i64, String>(
            "SELECT evidence_id, root_node FROM capstone.explain('SELECT 1', label => 't')",
        )
        .unwrap();
        assert!(root.unwrap().starts_with("Result"));
        let gate = Spi::get_one_with_args::<String>(
            "SELECT gate FROM capstone.evidence WHERE id = $1",
            &[id.unwrap().into()],
        )
        .unwrap();
        assert_eq!(gate.as_deref(), Some("plans"));
    }

    #[pg_test]
    fn data_changing_statement_is_rolled_back() {
        Spi::run("CREATE TABLE t_del AS SELECT g AS id FROM generate_series(1, 100) g").unwrap();
        Spi::run("SELECT * FROM capstone.explain('DELETE FROM t_del WHERE id > 10', runs => 3)")
            .unwrap();
        let n = Spi::get_one::<i64>("SELECT count(*) FROM t_del").unwrap();
        assert_eq!(n, Some(100));
    }

    #[pg_test]
    fn correlated_filter_is_flagged_at_its_scan() {
        Spi::run(
            "CREATE TABLE t_corr AS SELECT g AS id, g % 100 AS a, g % 100 AS b FROM generate_series(1, 20000) g;
             ANALYZE t_corr",
        )
        .unwrap();
        let (node, q) = Spi::get_two::<String, f64>(
            "SELECT node, q_error FROM capstone.estimate_gap('SELECT * FROM t_corr WHERE a = 1 AND b = 1')
              WHERE root_cause",
        )
        .unwrap();
        assert!(node.unwrap().starts_with("Seq Scan"));
        assert!(q.unwrap() >= 50.0);
    }

    #[pg_test(error = "query must not be NULL")]
    fn null_query() {
        Spi::run("SELECT * FROM capstone.explain(NULL)").unwrap();
    }

    #[pg_test(error = "query must not be empty")]
    fn empty_query() {
        Spi::run("SELECT * FROM capstone.explain('  ;  ')").unwrap();
    }

    #[pg_test(error = "query must be exactly one statement (got 2)")]
    fn two_statements() {
        Spi::run("SELECT * FROM capstone.explain('SELECT 1; DROP TABLE capstone.evidence')")
            .unwrap();
    }

    #[pg_test(error = "capstone cannot EXPLAIN ANALYZE a VACUUM statement")]
    fn utility_statement() {
        Spi::run("SELECT * FROM capstone.explain('VACUUM')").unwrap();
    }

    #[pg_test(error = "runs must be between 1 and 1000 (got 0)")]
    fn runs_out_of_range() {
        Spi::run("SELECT * FROM capstone.explain('SELECT 1', runs => 0)").unwrap();
    }

    #[pg_test(error = "evidence row 987654321 does not exist")]
    fn unknown_evidence() {
        Spi::run("SELECT * FROM capstone.estimate_gap(987654321::bigint)").unwrap();
    }

    #[pg_test]
    fn failed_change_leaves_nothing_behind() {
        Spi::run("CREATE TABLE t_chg AS SELECT g AS id FROM generate_series(1, 1000) g").unwrap();
        let failed = crate::infra::subxact::run(crate::infra::subxact::Outcome::Commit, || {
            Spi::run(
                "SELECT * FROM capstone.explain_diff('SELECT * FROM t_chg WHERE id = 5',
                     'CREATE INDEX t_chg_id ON t_chg (id); SELECT 1/0')",
            )
        });
        assert!(failed.is_err());
        let n = Spi::get_one::<i64>("SELECT count(*) FROM pg_class WHERE relname = 't_chg_id'")
            .unwrap();
        assert_eq!(n, Some(0));
    }

    #[pg_test]
    fn explain_diff_sees_the_new_index() {
        Spi::run("CREATE TABLE t_idx AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g; ANALYZE t_idx").unwrap();
        let (change, after) = Spi::get_two::<String, String>(
            "SELECT change, after_op FROM capstone.explain_diff('SELECT v FROM t_idx WHERE id = 42',
                 'CREATE INDEX t_idx_id ON t_idx (id); ANALYZE t_idx') WHERE kind = 'scan'",
        )
        .unwrap();
        assert!(change.unwrap().contains("scan method"));
        assert!(after.unwrap().contains("t_idx_id"));
    }
}
