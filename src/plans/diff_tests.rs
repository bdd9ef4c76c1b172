//! Unit tests for diffing two plans: scan, join-method and join-order changes, timing
//! rows, and alignment of one statement's plan across majors.

use super::diff::{diff_plans, diff_plans_with, DiffOptions};
use super::test_fixtures::*;

#[test]
fn diff_detects_scan_method_change() {
    for ((v, seq), (_, ios)) in parsed("tenant_seq").iter().zip(parsed("tenant_ios").iter()) {
        let d = diff_plans(seq, ios);
        assert_eq!(d.len(), 2, "pg{v}: {d:#?}");
        assert_eq!(d[0].kind, "statement");
        assert_eq!(d[0].key, "statement");
        assert_eq!(d[0].change, "plan changed");
        assert_eq!(d[0].before_ms, seq.execution_time);
        assert_eq!(d[0].after_planning_ms, ios.planning_time);
        assert!(d[0]
            .before_op
            .as_deref()
            .is_some_and(|s| s.starts_with("Seq Scan on shop.orders (1 nodes")));
        let r = &d[1];
        assert_eq!((r.kind.as_str(), r.key.as_str()), ("scan", "shop.orders"));
        assert_eq!(r.change, "scan method");
        assert_eq!(r.before_op.as_deref(), Some("Seq Scan on shop.orders"));
        assert_eq!(
            r.after_op.as_deref(),
            Some("Index Only Scan using orders_tenant_created_idx on shop.orders")
        );
        assert_eq!(r.before_actual_rows, Some(120.0));
        assert_eq!(r.after_actual_rows, Some(120.0));
        assert_eq!(r.before_hit, seq.root.shared_hit);
        assert_eq!(r.after_read, ios.root.shared_read);
        assert!(matches!(
            (r.speedup, r.before_ms, r.after_ms),
            (Some(s), Some(b), Some(a)) if close(s, b / a)
        ));

        // Only one side VERBOSE: names are compared unqualified.
        let mut plain = ios.clone();
        plain.root.schema = None;
        plain.root.relation = plain.root.relation_name.clone();
        let d = diff_plans(seq, &plain);
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].key, "orders");
        assert_eq!(d[1].change, "scan method");
    }
}

#[test]
fn diff_detects_join_method_change() {
    for ((v, hash), (_, nl)) in parsed("hashjoin_agg")
        .iter()
        .zip(parsed("join_nestloop").iter())
    {
        let d = diff_plans(hash, nl);
        let summary: Vec<(&str, &str, &str)> = d
            .iter()
            .map(|r| (r.kind.as_str(), r.key.as_str(), r.change.as_str()))
            .collect();
        assert!(
            summary.contains(&("join", "join(customers c, orders o)", "join method")),
            "pg{v}: {summary:?}"
        );
        assert!(summary.contains(&("other", "hash(customers c)", "removed")));
        assert!(summary.contains(&("other", "materialize(customers c)", "added")));
        assert!(summary.contains(&("scan", "customers c", "scan method")));
        assert_eq!(d[0].change, "plan changed");
        let j = d.iter().find(|r| r.change == "join method");
        assert!(j.is_some());
        if let Some(j) = j {
            assert_eq!(j.before_op.as_deref(), Some("Hash Join"));
            assert_eq!(j.after_op.as_deref(), Some("Nested Loop"));
            assert_eq!(j.before_actual_rows, Some(1500.0));
        }
        let removed = d.iter().find(|r| r.change == "removed");
        assert!(removed.is_some_and(|r| r.after_op.is_none() && r.after_ms.is_none()));
        assert!(removed.is_some_and(|r| r.speedup.is_none()));
        // The Memoize's inner scan runs 500 times.
        let scan = d.iter().find(|r| r.key == "customers c");
        assert_eq!(
            scan.and_then(|s| s.after_op.as_deref()),
            Some("Index Scan using customers_pkey on customers c")
        );
        assert_eq!(scan.and_then(|s| s.after_actual_rows), Some(500.0));
    }
}

const SWAP_A: &str = r#"[{"Plan": {"Node Type": "Hash Join", "Join Type": "Inner",
    "Plan Rows": 100, "Actual Rows": 100, "Actual Loops": 1, "Actual Total Time": 4.0,
    "Plans": [
      {"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "orders",
       "Alias": "o", "Plan Rows": 1000, "Actual Rows": 1000, "Actual Loops": 1},
      {"Node Type": "Hash", "Parent Relationship": "Inner", "Plan Rows": 10,
       "Actual Rows": 10, "Actual Loops": 1, "Plans": [
        {"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "customers",
         "Alias": "c", "Plan Rows": 10, "Actual Rows": 10, "Actual Loops": 1}]}]},
  "Planning Time": 0.1, "Execution Time": 4.5}]"#;

const SWAP_B: &str = r#"{"Plan": {"Node Type": "Hash Join", "Join Type": "Inner",
    "Plan Rows": 100, "Actual Rows": 100, "Actual Loops": 1, "Actual Total Time": 4.0,
    "Plans": [
      {"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "customers",
       "Alias": "c", "Plan Rows": 10, "Actual Rows": 10, "Actual Loops": 1},
      {"Node Type": "Hash", "Parent Relationship": "Inner", "Plan Rows": 1000,
       "Actual Rows": 1000, "Actual Loops": 1, "Plans": [
        {"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "orders",
         "Alias": "o", "Plan Rows": 1000, "Actual Rows": 1000, "Actual Loops": 1}]}]},
  "Planning Time": 0.1, "Execution Time": 4.5}"#;

#[test]
fn diff_detects_join_order_swap() {
    let a = must_parse(SWAP_A);
    let b = must_parse(SWAP_B);
    let d = diff_plans(&a, &b);
    let summary: Vec<(&str, &str)> = d
        .iter()
        .map(|r| (r.key.as_str(), r.change.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("statement", "plan changed"),
            ("join(customers c, orders o)", "join order"),
            ("hash(customers c)", "removed"),
            ("hash(orders o)", "added"),
        ]
    );
    assert_eq!(d[1].kind, "join");
    assert_eq!(d[1].speedup, Some(1.0));
    // Without timing the speedup is unknown.
    assert_eq!(d[2].before_ms, None);
}

#[test]
fn identical_plans_give_only_the_statement_row() {
    for (name, _) in FIXTURES {
        for (v, p) in parsed(name) {
            let d = diff_plans(&p, &p);
            assert_eq!(d.len(), 1, "pg{v}_{name}: {d:#?}");
            assert_eq!(d[0].change, "unchanged");
            assert_eq!(d[0].before_op, d[0].after_op);
            if p.execution_time.is_some_and(|t| t > 0.0) {
                assert_eq!(d[0].speedup, Some(1.0));
            }
        }
    }
}

#[test]
fn same_query_across_versions_aligns_fully() {
    let opts = DiffOptions {
        timing_ratio: f64::INFINITY,
        timing_min_delta_ms: f64::INFINITY,
    };
    for (name, _) in FIXTURES {
        let all = parsed(name);
        for pair in all.windows(2) {
            let d = diff_plans_with(&pair[0].1, &pair[1].1, &opts);
            assert_eq!(
                d.len(),
                1,
                "{name} pg{} vs pg{}: {d:#?}",
                pair[0].0,
                pair[1].0
            );
        }
    }
}

#[test]
fn diff_reports_timing_when_structure_is_unchanged() {
    let (_, before) = parsed("hashjoin_agg").remove(0);
    let mut after = before.clone();
    // The join got 10x slower; everything else stayed.
    after.root.children[0].actual_total_time = before.root.children[0]
        .actual_total_time
        .map(|t| t * 10.0 + 1.0);
    after.execution_time = before.execution_time.map(|t| t * 10.0 + 1.0);
    let d = diff_plans(&before, &after);
    assert_eq!(d.len(), 2, "{d:#?}");
    assert_eq!(d[0].change, "timing");
    assert_eq!(d[1].change, "timing");
    assert_eq!(d[1].kind, "join");
    assert!(d[1].speedup.is_some_and(|s| s < 0.2));
}
