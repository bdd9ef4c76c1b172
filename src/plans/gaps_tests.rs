//! Unit tests for q-error, estimate gaps and the timing helpers of the flattened plan.

use super::flatten::{flatten, parallel_divisor, wall_time_ms};
use super::gaps::{estimate_gaps, q_error, Direction};
use super::test_fixtures::must_parse;
use super::tree::{ExplainResult, PlanNode};

#[test]
fn limit_cuts_streaming_children_short_but_not_through_a_sort() {
    let json = r#"[{"Plan": {"Node Type": "Limit", "Plan Rows": 20, "Actual Rows": 20, "Actual Loops": 1,
        "Plans": [{"Node Type": "Index Scan", "Relation Name": "orders", "Index Name": "o_idx",
                   "Parent Relationship": "Outer", "Plan Rows": 200000, "Actual Rows": 20, "Actual Loops": 1}]}}]"#;
    let p = must_parse(json);
    let g = estimate_gaps(&p, 10.0);
    assert!(g[1].cut_short);
    assert!(
        !g[1].flagged,
        "an early stop under LIMIT is not a misestimate"
    );
    let json = r#"[{"Plan": {"Node Type": "Limit", "Plan Rows": 20, "Actual Rows": 20, "Actual Loops": 1,
        "Plans": [{"Node Type": "Sort", "Parent Relationship": "Outer", "Plan Rows": 200000, "Actual Rows": 20, "Actual Loops": 1,
          "Plans": [{"Node Type": "Seq Scan", "Relation Name": "orders", "Parent Relationship": "Outer",
                     "Plan Rows": 200000, "Actual Rows": 20, "Actual Loops": 1}]}]}}]"#;
    let p = must_parse(json);
    let g = estimate_gaps(&p, 10.0);
    assert!(g[1].cut_short);
    assert!(!g[2].cut_short, "the sort read its whole input");
    assert!(g[2].flagged);
}

#[test]
fn parallel_node_time_is_wall_clock() {
    let json = r#"[{"Plan": {"Node Type": "Gather", "Workers Planned": 2, "Workers Launched": 2,
        "Plan Rows": 100, "Actual Rows": 100, "Actual Loops": 1, "Actual Total Time": 12.0,
        "Plans": [{"Node Type": "Seq Scan", "Relation Name": "t", "Parent Relationship": "Outer",
                   "Plan Rows": 33, "Actual Rows": 33, "Actual Loops": 3, "Actual Total Time": 10.0}]}}]"#;
    let p = must_parse(json);
    let flat = flatten(&p);
    assert_eq!(parallel_divisor(&flat, 1), 3.0);
    assert_eq!(wall_time_ms(&flat, 1), Some(10.0));
    assert_eq!(wall_time_ms(&flat, 0), Some(12.0));
}

#[test]
fn q_error_math() {
    assert_eq!(q_error(10.0, 1000.0), (100.0, Direction::Under));
    assert_eq!(q_error(1000.0, 10.0), (100.0, Direction::Over));
    assert_eq!(q_error(42.0, 42.0), (1.0, Direction::Exact));
    // Zero counts as one row on both sides.
    assert_eq!(q_error(0.0, 0.0), (1.0, Direction::Exact));
    assert_eq!(q_error(0.0, 1.0), (1.0, Direction::Exact));
    assert_eq!(q_error(1.0, 0.0), (1.0, Direction::Exact));
    assert_eq!(q_error(0.0, 50.0), (50.0, Direction::Under));
    assert_eq!(q_error(50.0, 0.0), (50.0, Direction::Over));
    assert_eq!(q_error(0.5, 4.0), (4.0, Direction::Under));
    // Garbage in, finite q out.
    for (e, a) in [
        (f64::NAN, 5.0),
        (5.0, f64::NAN),
        (-3.0, 7.0),
        (f64::INFINITY, 1.0),
        (f64::INFINITY, f64::INFINITY),
        (f64::NEG_INFINITY, f64::MAX),
    ] {
        let (q, _) = q_error(e, a);
        assert!(q.is_finite() && q >= 1.0, "{e} {a} -> {q}");
    }
    assert_eq!(q_error(f64::INFINITY, f64::INFINITY).1, Direction::Exact);
    assert_eq!(Direction::Under.to_string(), "under");
}

fn leaf(node_type: &str, rel: &str, est: f64, act: f64) -> PlanNode {
    PlanNode {
        node_type: node_type.into(),
        relation: Some(rel.into()),
        relation_name: Some(rel.into()),
        plan_rows: est,
        actual_rows: Some(act),
        actual_loops: Some(1.0),
        ..PlanNode::default()
    }
}

fn inner_node(node_type: &str, est: f64, act: f64, children: Vec<PlanNode>) -> PlanNode {
    PlanNode {
        node_type: node_type.into(),
        plan_rows: est,
        actual_rows: Some(act),
        actual_loops: Some(1.0),
        children,
        ..PlanNode::default()
    }
}

fn plan_of(root: PlanNode) -> ExplainResult {
    ExplainResult {
        root,
        ..ExplainResult::default()
    }
}

#[test]
fn gaps_mark_where_a_misestimate_starts() {
    // Sort(0) -> Hash Join(1) -> [Seq Scan orders(2), Hash(3) -> Seq Scan customers(4)]
    // The orders scan is 100x under; the join inherits it; the sort
    // above is again right because a LIMIT-like node trims rows.
    let mut outer = leaf("Seq Scan", "orders", 10.0, 1000.0);
    outer.parent_relationship = Some("Outer".into());
    let mut hash = inner_node(
        "Hash",
        50.0,
        50.0,
        vec![leaf("Seq Scan", "customers", 50.0, 50.0)],
    );
    hash.parent_relationship = Some("Inner".into());
    let join = inner_node("Hash Join", 10.0, 1000.0, vec![outer, hash]);
    let plan = plan_of(inner_node("Limit", 10.0, 10.0, vec![join]));

    let gaps = estimate_gaps(&plan, 2.0);
    assert_eq!(gaps.len(), 5);
    let flagged: Vec<bool> = gaps.iter().map(|g| g.flagged).collect();
    assert_eq!(flagged, [false, true, true, false, false]);
    let cause: Vec<bool> = gaps.iter().map(|g| g.root_cause).collect();
    assert_eq!(cause, [false, false, true, false, false]);
    assert_eq!(gaps[1].inherits_from, vec![2]);
    assert_eq!(gaps[2].q_error, Some(100.0));
    assert_eq!(gaps[2].direction, Some(Direction::Under));
    assert_eq!(gaps[2].node, "Seq Scan on orders");
    assert_eq!(gaps[4].depth, 3);
    assert_eq!(gaps[4].parent, Some(3));

    // Two independent misestimates under one join: both are root causes.
    let mut plan2 = plan.clone();
    plan2.root.children[0].children[1].children[0].actual_rows = Some(5000.0);
    plan2.root.children[0].children[1].actual_rows = Some(5000.0);
    let gaps2 = estimate_gaps(&plan2, 2.0);
    let causes: Vec<usize> = gaps2
        .iter()
        .filter(|g| g.root_cause)
        .map(|g| g.id)
        .collect();
    assert_eq!(causes, [2, 4]);
    assert_eq!(gaps2[1].inherits_from, vec![2, 4]);
    assert_eq!(gaps2[3].inherits_from, vec![4]);

    // Loops multiply both sides.
    let mut looped = leaf("Index Scan", "t", 2.0, 20.0);
    looped.actual_loops = Some(10.0);
    let g = estimate_gaps(&plan_of(looped), 2.0);
    assert_eq!((g[0].est_rows, g[0].actual_rows), (20.0, Some(200.0)));
    assert_eq!(g[0].q_error, Some(10.0));

    // No actuals (plain EXPLAIN): nothing flagged.
    let mut no_actuals = leaf("Seq Scan", "t", 2.0, 0.0);
    no_actuals.actual_rows = None;
    no_actuals.actual_loops = None;
    let g = estimate_gaps(&plan_of(no_actuals), 1.0);
    assert_eq!((g[0].q_error, g[0].flagged), (None, false));
}
