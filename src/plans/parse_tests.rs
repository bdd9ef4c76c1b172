//! Unit tests for reading EXPLAIN JSON: every real capture parses into a consistent
//! tree on every major, the format differences between majors, and input errors.

use super::diff::diff_plans;
use super::flatten::flatten;
use super::gaps::{estimate_gaps, Direction};
use super::parse::{parse_explain_json, PlanError, MAX_PLAN_DEPTH};
use super::test_fixtures::*;

#[test]
fn every_fixture_parses_with_a_consistent_tree() {
    assert_eq!(FIXTURES.len() * 4, all_texts().len());
    for (name, _) in FIXTURES {
        for (v, p) in parsed(name) {
            let flat = flatten(&p);
            assert_eq!(flat.len(), p.node_count(), "pg{v}_{name}");
            for (i, f) in flat.iter().enumerate() {
                assert_eq!(f.id, i);
                match f.parent {
                    None => assert_eq!((i, f.depth), (0, 0)),
                    Some(parent) => {
                        assert!(parent < i);
                        assert_eq!(flat[parent].depth + 1, f.depth);
                        assert!(flat[parent].children.contains(&i));
                    }
                }
                assert!(!f.node.node_type.is_empty());
                assert!(f.node.total_cost >= f.node.startup_cost, "pg{v}_{name}");
                assert!(f.node.actual_loops.is_some(), "ANALYZE prints loops");
                assert!(f.node.shared_hit.is_some(), "BUFFERS prints hits");
                // "Disabled" exists from PG18 on.
                assert_eq!(f.node.disabled.is_some(), v >= 18, "pg{v}_{name}");
            }
            assert!(p.planning_time.is_some() && p.execution_time.is_some());
            assert!(p.planning_shared_hit.is_some());
            assert_eq!(estimate_gaps(&p, 2.0).len(), flat.len());
        }
    }
}

#[test]
fn seqscan_with_filter() {
    for (v, p) in parsed("seqscan") {
        assert_eq!(p.node_count(), 1);
        let n = &p.root;
        assert_eq!(n.node_type, "Seq Scan");
        assert_eq!(n.relation.as_deref(), Some("events"));
        assert_eq!(n.label(), "Seq Scan on events");
        assert_eq!(n.actual_rows, Some(780.0));
        assert_eq!(n.actual_loops, Some(1.0));
        assert_eq!(n.rows_removed_by_filter, Some(2220.0));
        assert_eq!(n.plan_rows, 333.0);
        assert_eq!(
            n.conditions,
            vec![(
                "Filter".to_string(),
                "((kind = 'buy'::text) AND (length(payload) > 10))".to_string()
            )]
        );
        assert!(n.actual_total_time.is_some());
        assert!(p.settings.is_empty(), "pg{v}: no changed settings");
        assert!(p.triggers.is_empty());
    }
}

#[test]
fn hash_join_with_aggregate() {
    for (v, p) in parsed("hashjoin_agg") {
        assert_eq!(
            types(&p),
            ["Aggregate", "Hash Join", "Seq Scan", "Hash", "Seq Scan"],
            "pg{v}"
        );
        assert_eq!(
            labels(&p),
            [
                "HashAggregate",
                "Hash Join",
                "Seq Scan on orders o",
                "Hash",
                "Seq Scan on customers c"
            ]
        );
        assert_eq!(p.root.strategy.as_deref(), Some("Hashed"));
        let join = node(&p, 1);
        assert_eq!(join.join_type.as_deref(), Some("Inner"));
        assert!(join
            .conditions
            .contains(&("Hash Cond".into(), "(o.customer_id = c.id)".into())));
        assert_eq!(node(&p, 3).parent_relationship.as_deref(), Some("Inner"));
        assert_eq!(p.root.actual_rows, Some(3.0));
        assert_eq!(p.settings.get("work_mem").map(String::as_str), Some("16MB"));
        assert_eq!(p.settings.len(), 1);
    }
}

#[test]
fn timing_off_has_rows_but_no_times() {
    let on = parsed("hashjoin_agg");
    for ((v, p), (_, timed)) in parsed("hashjoin_agg_timing_off").iter().zip(on.iter()) {
        assert_eq!(types(p), types(timed));
        for f in flatten(p) {
            assert_eq!(f.node.actual_total_time, None, "pg{v}");
            assert_eq!(f.node.actual_startup_time, None);
            assert_eq!(f.node.total_time_ms(), None);
            assert!(f.node.actual_rows.is_some() && f.node.executed());
        }
        for f in flatten(timed) {
            assert!(f.node.actual_total_time.is_some());
        }
        assert!(p.execution_time.is_some());
        let d = diff_plans(timed, p);
        assert_eq!(d.len(), 1, "same plan, times missing on one side");
        assert!(d[0].speedup.is_some());
        assert_eq!(d[0].after_planning_ms, p.planning_time);
    }
}

#[test]
fn nested_loop_inner_index_scan_runs_per_outer_row() {
    for (v, p) in parsed("nestloop_index") {
        assert_eq!(types(&p), ["Nested Loop", "Index Scan", "Index Scan"]);
        let outer = node(&p, 1);
        let inner = node(&p, 2);
        assert_eq!(outer.index_name.as_deref(), Some("orders_pkey"));
        assert_eq!(outer.actual_loops, Some(1.0));
        assert_eq!(
            inner.label(),
            "Index Scan using customers_pkey on customers c"
        );
        assert_eq!(inner.actual_loops, Some(5.0), "pg{v}");
        assert_eq!(inner.total_actual_rows(), Some(5.0));
        assert_eq!(inner.total_est_rows(), 5.0);
        assert!(inner
            .conditions
            .contains(&("Index Cond".into(), "(id = o.customer_id)".into())));
        assert!(matches!(
            (inner.total_time_ms(), inner.actual_total_time),
            (Some(t), Some(per_loop)) if close(t, per_loop * 5.0)
        ));
    }
}

#[test]
fn pg18_prints_fractional_rows_older_versions_round() {
    for (v, p) in parsed("fractional_rows") {
        let inner = node(&p, 2);
        assert_eq!(inner.node_type, "Bitmap Heap Scan");
        assert_eq!(inner.actual_loops, Some(7.0));
        assert_eq!(labels(&p)[0], "Nested Loop Left Join");
        assert!(inner.actual_rows.is_some());
        let rows = inner.actual_rows.unwrap_or(f64::NAN);
        if v >= 18 {
            assert!(close(rows, 0.43), "pg{v}: {rows}");
        } else {
            assert_eq!(rows, 0.0, "pg{v} rounds 3/7 down");
        }
    }
}

#[test]
fn initplan_and_subplan() {
    for (v, p) in parsed("subplan") {
        let rel: Vec<Option<String>> = flatten(&p)
            .iter()
            .map(|f| f.node.parent_relationship.clone())
            .collect();
        assert_eq!(
            rel,
            [
                None,
                Some("InitPlan".into()),
                Some("Outer".into()),
                Some("SubPlan".into()),
                Some("Outer".into())
            ]
        );
        let init = node(&p, 1).subplan_name.clone().unwrap_or_default();
        if v >= 17 {
            assert_eq!(init, "InitPlan 2");
        } else {
            assert_eq!(init, "InitPlan 2 (returns $1)");
        }
        assert_eq!(node(&p, 3).subplan_name.as_deref(), Some("SubPlan 1"));
        assert_eq!(node(&p, 4).actual_loops, Some(10.0));
        assert_eq!(
            node(&p, 4).label(),
            "Index Only Scan using orders_customer_idx on orders o"
        );
        assert_eq!(node(&p, 4).index_searches.is_some(), v >= 18);
    }
}

#[test]
fn never_executed_nodes_have_no_q_error() {
    for (v, p) in parsed("never_executed") {
        assert_eq!(
            types(&p),
            [
                "Nested Loop",
                "Index Scan",
                "Bitmap Heap Scan",
                "Bitmap Index Scan"
            ]
        );
        let gaps = estimate_gaps(&p, 1.0);
        for id in [2, 3] {
            let n = node(&p, id);
            assert_eq!(n.actual_loops, Some(0.0), "pg{v}");
            assert!(!n.executed());
            assert_eq!(gaps[id].q_error, None);
            assert_eq!(gaps[id].direction, None);
            assert!(!gaps[id].flagged && !gaps[id].root_cause);
        }
        assert_eq!(
            node(&p, 3).label(),
            "Bitmap Index Scan on orders_customer_idx"
        );
        // Estimated 3, got 0 (counted as 1): over by 3.
        assert_eq!(gaps[0].q_error, Some(3.0));
        assert_eq!(gaps[0].direction, Some(Direction::Over));
        assert_eq!(gaps[1].direction, Some(Direction::Exact));
        // With threshold 1.0 every executed node is flagged; the deepest
        // executed ones are root causes.
        assert!(gaps[1].root_cause && !gaps[0].root_cause);
        assert_eq!(gaps[0].inherits_from, vec![1]);
    }
}

#[test]
fn insert_with_trigger() {
    for (v, p) in parsed("insert_trigger") {
        assert_eq!(p.root.node_type, "ModifyTable");
        assert_eq!(p.root.operation.as_deref(), Some("Insert"));
        assert_eq!(p.root.label(), "Insert on order_audit");
        assert_eq!(p.node_count(), 3);
        assert_eq!(node(&p, 1).total_actual_rows(), Some(150.0));
        assert_eq!(p.triggers.len(), 1, "pg{v}");
        let t = &p.triggers[0];
        assert_eq!(t.trigger_name, "order_audit_bump");
        assert_eq!(t.relation.as_deref(), Some("order_audit"));
        assert_eq!(t.calls, Some(150.0));
        assert!(t.time.is_some_and(|ms| ms > 0.0));
        assert_eq!(t.constraint_name, None);
    }
}

#[test]
fn large_union_plan() {
    for (v, p) in parsed("large_union") {
        let flat = flatten(&p);
        assert_eq!(flat.len(), 121, "pg{v}");
        assert!(flat.len() >= 100);
        assert_eq!(p.root.node_type, "Append");
        assert_eq!(p.root.children.len(), 40);
        let t = types(&p);
        assert_eq!(t.iter().filter(|x| *x == "Nested Loop").count(), 40);
        assert_eq!(t.iter().filter(|x| *x == "Index Scan").count(), 80);
        assert_eq!(flat.iter().map(|f| f.depth).max(), Some(2));
        assert!(flat
            .iter()
            .filter(|f| f.depth == 2)
            .all(|f| f.node.relation.is_some()));
        let d = diff_plans(&p, &p);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].change, "unchanged");
        assert_eq!(estimate_gaps(&p, 2.0).len(), 121);
    }
}

#[test]
fn verbose_plans_qualify_relations() {
    for ((v, seq), (_, ios)) in parsed("tenant_seq").iter().zip(parsed("tenant_ios").iter()) {
        assert_eq!(seq.root.relation.as_deref(), Some("shop.orders"));
        assert_eq!(seq.root.schema.as_deref(), Some("shop"));
        assert_eq!(seq.root.relation_name.as_deref(), Some("orders"));
        assert_eq!(seq.root.label(), "Seq Scan on shop.orders");
        assert_eq!(
            ios.root.label(),
            "Index Only Scan using orders_tenant_created_idx on shop.orders"
        );
        assert_eq!(seq.settings.len(), 3, "pg{v}");
        assert_eq!(
            seq.settings.get("enable_indexscan").map(String::as_str),
            Some("off")
        );
        assert!(ios.settings.is_empty());
    }
}

#[test]
fn misestimate_fixture_root_cause_is_the_heap_scan() {
    for (v, p) in parsed("misestimate") {
        let gaps = estimate_gaps(&p, 2.0);
        let flagged: Vec<usize> = gaps.iter().filter(|g| g.flagged).map(|g| g.id).collect();
        // Hash Join (1), Hash (3), Bitmap Heap Scan (4): 38 estimated, 150 found.
        assert_eq!(flagged, [1, 3, 4], "pg{v}");
        let causes: Vec<usize> = gaps.iter().filter(|g| g.root_cause).map(|g| g.id).collect();
        assert_eq!(causes, [4]);
        assert_eq!(gaps[4].node, "Bitmap Heap Scan on orders o");
        assert_eq!(gaps[4].relation.as_deref(), Some("orders"));
        assert_eq!(gaps[4].direction, Some(Direction::Under));
        assert!(gaps[4].q_error.is_some_and(|q| close(q, 150.0 / 38.0)));
        assert_eq!(gaps[1].inherits_from, vec![4]);
        assert_eq!(gaps[3].inherits_from, vec![4]);
        assert!(gaps[4].inherits_from.is_empty());
        assert_eq!(gaps[0].direction, Some(Direction::Exact));
        assert!(!gaps[5].flagged, "the index scan estimate was right");
    }
}

type ErrCheck = fn(&PlanError) -> bool;

#[test]
fn input_forms_and_errors() {
    let bare = r#"{"Plan": {"Node Type": "Result", "Plan Rows": 1}}"#;
    assert_eq!(must_parse(bare).root.node_type, "Result");
    let row = format!(r#"[{{"QUERY PLAN": [{bare}]}}]"#);
    assert_eq!(must_parse(&row).node_count(), 1);
    let with_bom = format!("\u{feff}  \n{bare}\n");
    assert!(parse_explain_json(&with_bom).is_ok());

    let cases: [(&str, ErrCheck); 9] = [
        ("", |e| *e == PlanError::Empty),
        ("  \n", |e| *e == PlanError::Empty),
        ("[]", |e| *e == PlanError::Empty),
        ("[1]", |e| matches!(e, PlanError::NoPlan(_))),
        ("{}", |e| matches!(e, PlanError::NoPlan(_))),
        (r#"{"Plan": 3}"#, |e| {
            matches!(e, PlanError::WrongType { field: "Plan", .. })
        }),
        (r#"{"Plan": {}}"#, |e| {
            matches!(
                e,
                PlanError::MissingField {
                    field: "Node Type",
                    ..
                }
            )
        }),
        (
            r#"{"Plan": {"Node Type": "Append", "Plans": [{"Node Type": 7}]}}"#,
            |e| matches!(e, PlanError::WrongType { field: "Node Type", path, .. } if path == "Plan.Plans[0]"),
        ),
        (
            "[{\"Plan\": {\"Node Type\": \"Seq Scan\",\n  \"Plan Rows\": }}]",
            |e| matches!(e, PlanError::Json { line: 2, .. }),
        ),
    ];
    for (text, check) in cases {
        let r = parse_explain_json(text);
        assert!(r.is_err(), "{text:?} parsed");
        if let Err(err) = r {
            assert!(check(&err), "{text:?} -> {err:?}");
            assert!(!err.to_string().is_empty());
            let _: &dyn std::error::Error = &err;
        }
    }
    let plans_obj = r#"{"Plan": {"Node Type": "Append", "Plans": {}}}"#;
    assert!(matches!(
        parse_explain_json(plans_obj),
        Err(PlanError::WrongType { field: "Plans", .. })
    ));
    // Wrong-typed numbers read as absent; numeric strings are accepted.
    let odd = r#"{"Plan": {"Node Type": "Seq Scan", "Plan Rows": "12", "Actual Rows": null,
        "Actual Loops": "x", "Shared Hit Blocks": 1e30, "Shared Read Blocks": 7.0,
        "Total Cost": -5, "Relation Name": 3}}"#;
    let p = must_parse(odd);
    assert_eq!(p.root.plan_rows, 12.0);
    assert_eq!((p.root.actual_rows, p.root.actual_loops), (None, None));
    assert_eq!((p.root.shared_hit, p.root.shared_read), (None, Some(7)));
    assert_eq!(p.root.total_cost, -5.0);
    assert_eq!(p.root.relation, None);
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    // a chain of `levels` Limit nodes above a Result, as EXPLAIN prints it
    let nested = |levels: usize| {
        format!(
            r#"[{{"Plan": {}{{"Node Type": "Result"}}{}}}]"#,
            r#"{"Node Type": "Limit", "Plans": ["#.repeat(levels),
            "]}".repeat(levels)
        )
    };
    assert!(matches!(
        parse_explain_json(&nested(5000)),
        Err(PlanError::TooDeep { .. })
    ));
    // Past serde_json's own limit of 128 JSON levels (about 62 plan levels), up to
    // MAX_PLAN_DEPTH, the tree parses and derives fine.
    for levels in [40, 150, MAX_PLAN_DEPTH] {
        let p = must_parse(&nested(levels));
        assert_eq!(p.node_count(), levels + 1);
        assert_eq!(flatten(&p).last().map(|f| f.depth), Some(levels));
        assert_eq!(diff_plans(&p, &p).len(), 1);
    }
    assert_eq!(
        crate::infra::json::depth(r#"{"a": "[[[{{", "b": [1, [2]]}"#),
        3
    );
    // 100,000 levels where nothing reads them as plan nodes: in an unknown key, in a
    // plan-level value, around the document; skipped or cut off, never recursed into
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let d = deep(100_000);
    let odd = format!(
        r#"{{"Plan": {{"Node Type": "Result", "Output": {d}, "Actual Rows": {d}}}, "Settings": {{"a": {d}}}, "Triggers": {d}}}"#
    );
    let p = must_parse(&odd);
    assert_eq!(
        (p.root.node_type.as_str(), p.root.actual_rows),
        ("Result", None)
    );
    assert!(matches!(parse_explain_json(&d), Err(PlanError::NoPlan(_))));
    let cut = format!("{}{}", "[".repeat(100_000), "]".repeat(99_999));
    assert!(matches!(
        parse_explain_json(&cut),
        Err(PlanError::Json { .. })
    ));
}
