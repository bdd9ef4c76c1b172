//! Plan evidence from psql, the SQL surface: capture (`capstone.explain`), before/after
//! proof (`capstone.explain_diff`), estimate gaps (`capstone.estimate_gap`) and the
//! plan-regression gate (`capstone.plan_gate`, `plan_gate_json`, `assert_plans`), plans
//! from elsewhere (`capstone.plan_import`) and findings on any plan (`capstone.plan_tips`).
//! Argument checks, calls and result rows only; errors are raised here and nowhere below.
//!
//! The rooms: the plan model is pure Rust (`tree` the typed plan, `parse` reading EXPLAIN
//! JSON into it, `flatten` the pre-order listing and timing, `gaps` estimate gaps, `diff`
//! two plans aligned, `stats` the median); `statement` checks the text, `capture` runs
//! EXPLAIN and stores evidence, `proof` is explain_diff's before/after, `watched` reads
//! the watched queries and `gate` judges them; `import` reads pasted plans, `imported`
//! stores them, `tips` scores findings.

// pgrx needs each result row spelled out as a name!() tuple in the signature
#![allow(clippy::type_complexity)]

pub mod capture;
pub mod diff;
pub mod flatten;
pub mod gaps;
pub mod gate;
pub mod import;
pub mod parse;
pub mod proof;
pub mod statement;
pub mod stats;
pub mod tips;
pub mod tree;
pub mod watched;

mod imported;

#[cfg(test)]
mod diff_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod gaps_tests;
#[cfg(test)]
mod parse_tests;
#[cfg(test)]
mod test_fixtures;
#[cfg(test)]
mod workers_tests;

/// The plan model under its earlier path (`crate::plans::plan::…`), for the report and
/// triage; new code names the concept modules (`plans::parse`, `plans::gaps`, ...).
pub mod plan {
    pub use super::diff::{diff_plans, diff_plans_with, plan_shape, DiffOptions, DiffRow};
    pub use super::flatten::{
        cut_short_by_limit, flatten, parallel_divisor, wall_time_ms, FlatNode,
    };
    pub use super::gaps::{estimate_gaps, q_error, Direction, GapRow};
    pub use super::parse::{
        parse_explain_json, parse_explain_value, parse_json_deep, PlanError, MAX_JSON_DEPTH,
        MAX_PLAN_DEPTH,
    };
    pub use super::stats::median;
    pub use super::tree::{ExplainResult, PlanNode, TriggerTime};
}

use crate::infra::error::{check_range, CapstoneError, OrRaise};
use crate::infra::evidence::Gate;
use crate::infra::format::round;
use capture::capture;
use gate::{assert_verdict, run_gate};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::json;
use statement::validate_statement;
use tree::{ExplainResult, PlanNode};

/// Decimals in result columns: milliseconds as EXPLAIN prints them, ratios (q-error,
/// speedup) and row counts (PG18 prints fractional per-loop rows) to two.
const MS: i32 = 3;
const RATIO: i32 = 2;
const ROWS: i32 = 2;

fn ms(v: Option<f64>) -> Option<f64> {
    v.map(|v| round(v, MS))
}

fn ratio(v: Option<f64>) -> Option<f64> {
    v.map(|v| round(v, RATIO))
}

fn rows(v: Option<f64>) -> Option<f64> {
    v.map(|v| round(v, ROWS))
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
    let row =
        crate::infra::search_path::guarded(|| explain_row(query, label, runs, timing)).or_raise();
    TableIterator::once(row)
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

fn explain_row(
    query: Option<String>,
    label: Option<String>,
    runs: Option<i32>,
    timing: Option<bool>,
) -> crate::infra::error::Result<ExplainRow> {
    let q = validate_statement(query.as_deref())?;
    let runs = check_range("runs", runs.unwrap_or(1), 1, 1000);
    let c = capture(
        Gate::Plans,
        &q,
        label.as_deref(),
        runs,
        timing.unwrap_or(true),
    )?;
    let (hit, read) = totals(&c.parsed.root);
    let root = flatten::flatten(&c.parsed)
        .first()
        .map(|n| n.label())
        .unwrap_or_default();
    Ok((
        c.evidence_id,
        label,
        root,
        ms(c.parsed.execution_time),
        ms(c.parsed.planning_time),
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
    gaps::estimate_gaps(r, crate::infra::gucs::gap_threshold())
        .into_iter()
        .map(|g| {
            (
                g.id as i32,
                g.depth as i32,
                g.node,
                g.relation,
                round(g.est_rows, ROWS),
                rows(g.actual_rows),
                g.loops,
                ratio(g.q_error),
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
    let rows = crate::infra::search_path::guarded(|| {
        let q = validate_statement(query.as_deref())?;
        let c = capture(Gate::Statistics, &q, label.as_deref(), 1, true)?;
        Ok::<_, crate::infra::error::Failure>(gap_rows(&c.parsed))
    })
    .or_raise();
    TableIterator::new(rows)
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
    let (r, _) = capture::load_plan(id).or_raise();
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
    diff::diff_plans(before, after)
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
                ms(d.before_ms),
                ms(d.after_ms),
                ratio(d.speedup),
                d.before_hit,
                d.after_hit,
                d.before_read,
                d.after_read,
                rows(d.before_est_rows),
                rows(d.after_est_rows),
                rows(d.before_actual_rows),
                rows(d.after_actual_rows),
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
    let rows = crate::infra::search_path::guarded(|| {
        let q = validate_statement(query.as_deref())?;
        let change = crate::infra::error::required(change, "change");
        if change.trim().is_empty()
            || crate::infra::parse::raw_statements(&change, "change").is_empty()
        {
            return Err(CapstoneError::InvalidParameter("change must not be empty".into()).with_hint(
                "pass the SQL that should make the query faster, e.g. 'CREATE INDEX ...; ANALYZE ...'",
            ));
        }
        let runs = check_range("runs", runs.unwrap_or(1), 1, 1000);
        let base = label.clone().unwrap_or_else(|| "explain_diff".into());
        let p = proof::prove(&q, &change, &base, runs)?;
        Ok(diff_rows(
            &p.before.parsed,
            &p.after.parsed,
            Some((p.before.evidence_id, p.after.evidence_id)),
        ))
    })
    .or_raise();
    TableIterator::new(rows)
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
    let (pb, _) = capture::load_plan(b).or_raise();
    let (pa, _) = capture::load_plan(a).or_raise();
    TableIterator::new(diff_rows(&pb, &pa, Some((b, a))))
}

/// Read a plan capstone did not run (EXPLAIN text as pasted from psql, JSON, YAML,
/// XML, or auto_explain log entries) and store each plan as evidence. Nothing is executed.
#[pg_extern(volatile, parallel_unsafe)]
fn plan_import(
    source: Option<&str>,
    label: default!(Option<String>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(evidence_id, i64),
        name!(format, String),
        name!(plan_no, i32),
        name!(plans, i32),
        name!(nodes, i32),
        name!(duration_ms, Option<f64>),
        name!(query_text, Option<String>),
    ),
> {
    let source = crate::infra::error::required(source, "source");
    let imported = import::import(source).unwrap_or_else(|e| {
        CapstoneError::InvalidText(format!("cannot read this plan: {e}")).raise_with(
            format!(
                "capstone read the paste as {}",
                import::detect(&import::clean::clean(source)).as_str()
            ),
            "pass the whole output of EXPLAIN (text, JSON, YAML or XML) or the auto_explain log lines, as printed",
        )
    });
    let ids = imported::store(&imported, label.as_deref());
    let of = imported.plans.len() as i32;
    let rows: Vec<_> = imported
        .plans
        .iter()
        .zip(ids)
        .enumerate()
        .map(|(i, (p, id))| {
            let format = match imported.format {
                import::Format::AutoExplain => format!("auto_explain ({})", p.format.as_str()),
                f => f.as_str().to_string(),
            };
            (
                id,
                format,
                i as i32 + 1,
                of,
                p.parsed.node_count() as i32,
                ms(p.duration_ms),
                p.parsed.query_text.clone(),
            )
        })
        .collect();
    TableIterator::new(rows)
}

/// Findings on a stored plan (captured or imported), highest possible saving first.
#[pg_extern(stable, parallel_unsafe)]
fn plan_tips(
    evidence_id: Option<i64>,
    top_n: default!(Option<i32>, 3),
) -> TableIterator<
    'static,
    (
        name!(rank, i32),
        name!(node_id, Option<i32>),
        name!(node, String),
        name!(finding, String),
        name!(evidence, String),
        name!(first_fix, String),
        name!(est_saving_ms, Option<f64>),
    ),
> {
    let id = crate::infra::error::required(evidence_id, "evidence_id");
    let top_n = check_range("top_n", top_n.unwrap_or(3), 1, 100_000);
    let (r, _) = capture::load_plan(id).or_raise();
    let rows: Vec<_> = tips::plan_tips(&r, crate::infra::gucs::gap_threshold())
        .into_iter()
        .take(top_n as usize)
        .enumerate()
        .map(|(i, t)| {
            (
                i as i32 + 1,
                t.node_id.map(|n| n as i32),
                t.node,
                t.finding.to_string(),
                t.evidence,
                t.first_fix,
                ms(t.est_saving_ms),
            )
        })
        .collect();
    TableIterator::new(rows)
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
    TableIterator::new(run_gate().or_raise().into_iter().map(|r| {
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
    let results = run_gate().or_raise();
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
    assert_verdict(&run_gate().or_raise()).or_raise()
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
