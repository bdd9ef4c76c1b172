//! Hand-made pastes: the decorations psql, terminals and mail clients add, plan-level
//! lines, PG12-18 variants, and bad input with its line number and expectation.

use super::first_plan as one;
use super::{import, Format};
use crate::plans::tree::ExplainResult;

const PLAN: &str = " Hash Join  (cost=1.09..2.22 rows=3 width=8) (actual time=0.030..0.040 rows=3 loops=1)
   Hash Cond: (a.x = b.x)
   Buffers: shared hit=2
   ->  Seq Scan on a  (cost=0.00..1.03 rows=3 width=4) (actual time=0.005..0.006 rows=3 loops=1)
         Filter: (x > 0)
         Rows Removed by Filter: 1
         Buffers: shared hit=1
   ->  Hash  (cost=1.04..1.04 rows=4 width=4) (actual time=0.010..0.010 rows=4 loops=1)
         Buckets: 1024  Batches: 1  Memory Usage: 9kB
         Buffers: shared hit=1
         ->  Seq Scan on b  (cost=0.00..1.04 rows=4 width=4) (actual time=0.002..0.003 rows=4 loops=1)
               Buffers: shared hit=1
 Planning Time: 0.100 ms
 Execution Time: 0.060 ms";

fn shape(p: &ExplainResult) -> Vec<(String, Option<String>, usize)> {
    crate::plans::flatten::flatten(p)
        .iter()
        .map(|f| (f.label(), f.node.parent_relationship.clone(), f.depth))
        .collect()
}

#[test]
fn the_tree_comes_from_the_arrows_columns() {
    let p = one(PLAN);
    assert_eq!(
        shape(&p),
        vec![
            ("Hash Join".into(), None, 0),
            ("Seq Scan on a".into(), Some("Outer".into()), 1),
            ("Hash".into(), Some("Inner".into()), 1),
            ("Seq Scan on b".into(), Some("Outer".into()), 2),
        ]
    );
    assert_eq!((p.planning_time, p.execution_time), (Some(0.1), Some(0.06)));
    assert_eq!(
        p.root
            .children
            .first()
            .and_then(|c| c.rows_removed_by_filter),
        Some(1.0)
    );
}

#[test]
fn every_decoration_gives_the_same_plan() {
    let plain = one(PLAN);
    let width = PLAN.lines().map(str::len).max().unwrap_or(0);
    let rule = "-".repeat(width);
    let psql = format!("{:^width$}\n{rule}\n{PLAN}\n(14 rows)\n", "QUERY PLAN");
    let plus: String = PLAN.lines().map(|l| format!("{l:<width$}+\n")).collect();
    let framed: String = PLAN.lines().map(|l| format!("| {l:<width$} |\n")).collect();
    let framed = format!(
        "+{rule}--+\n| {:<width$} |\n+{rule}--+\n{framed}+{rule}--+\n",
        "QUERY PLAN"
    );
    let unicode: String = PLAN.lines().map(|l| format!("│ {l:<width$} │\n")).collect();
    let unicode = format!(
        "┌{}┐\n{unicode}└{}┘\n(14 rows)",
        "─".repeat(width + 2),
        "─".repeat(width + 2)
    );
    let quoted = format!("'{}'", PLAN.trim());
    let csv: String = PLAN.lines().map(|l| format!("\"{l}\"\n")).collect();
    let tabs: String = PLAN.lines().map(|l| format!("\t{l}\n")).collect();
    // a mail client wrapping at 60 columns, on spaces
    let mut mail = String::new();
    for l in PLAN.lines() {
        let mut cur = String::new();
        for w in l.split(' ') {
            if cur.len() + w.len() > 60 && !cur.trim().is_empty() {
                mail.push_str(cur.trim_end());
                mail.push('\n');
                cur.clear();
            }
            cur.push_str(w);
            cur.push(' ');
        }
        mail.push_str(cur.trim_end());
        mail.push('\n');
    }
    // a terminal wrapping at 70 columns, mid-word
    let mut term = String::new();
    for l in PLAN.lines() {
        let chars: Vec<char> = l.chars().collect();
        for chunk in chars.chunks(70) {
            term.extend(chunk);
            term.push('\n');
        }
    }
    for (what, src) in [
        ("psql", psql),
        ("plus", plus),
        ("framed", framed),
        ("unicode", unicode),
        ("quoted", quoted),
        ("csv", csv),
        ("tabs", tabs),
        ("mail", mail),
        ("terminal", term),
    ] {
        let p = one(&src);
        assert_eq!(shape(&p), shape(&plain), "{what}:\n{src}");
        assert_eq!(p.root.total_cost, plain.root.total_cost, "{what}");
        assert_eq!(p.execution_time, plain.execution_time, "{what}");
    }
}

#[test]
fn subplans_ctes_workers_and_plan_level_lines() {
    let src = " Seq Scan on public.customers c  (cost=39.29..91.81 rows=10 width=12) (actual time=0.243..0.261 rows=10 loops=1)
   Output: c.id
   Filter: ((c.tier = $1) AND (SubPlan 2))
   InitPlan 1 (returns $1)
     ->  Aggregate  (cost=39.00..39.01 rows=1 width=4) (actual time=0.202..0.203 rows=1 loops=1)
           ->  CTE Scan on big b  (cost=0.00..20.00 rows=1000 width=4) (never executed)
   CTE big
     ->  Parallel Seq Scan on public.orders  (cost=0.00..1.00 rows=1 width=4) (actual rows=5 loops=3)
           Worker 0:  actual time=0.1..0.2 rows=4 loops=1
             Buffers: shared hit=4
   SubPlan 2
     ->  Index Only Scan using orders_customer_idx on public.orders o  (cost=0.29..4.31 rows=1 width=0) (actual time=0.001..0.001 rows=1 loops=50)
           Index Cond: (o.customer_id = c.id)
           Heap Fetches: 0
 Settings: work_mem = '16MB', search_path = 'corpus, public'
 Planning:
   Buffers: shared hit=7 read=1
 Trigger audit_touch on audit: time=0.123 calls=100
 JIT:
   Functions: 3
   Options: Inlining false, Optimization false, Expressions true, Deforming true
   Timing: Generation 0.5 ms (Deform 0.1 ms), Inlining 0.0 ms, Optimization 0.2 ms, Emission 3.1 ms, Total 3.8 ms
 Planning Time: 0.2 ms
 Execution Time: 9.5 ms";
    let p = one(src);
    let s = shape(&p);
    assert_eq!(s.len(), 5, "{s:?}");
    let names: Vec<_> = crate::plans::flatten::flatten(&p)
        .iter()
        .map(|f| f.node.subplan_name.clone())
        .collect();
    assert_eq!(
        names,
        vec![
            None,
            Some("InitPlan 1 (returns $1)".into()),
            None,
            Some("CTE big".into()),
            Some("SubPlan 2".into())
        ]
    );
    assert_eq!(p.root.relation.as_deref(), Some("public.customers"));
    assert_eq!(
        p.settings.get("search_path").map(String::as_str),
        Some("corpus, public")
    );
    assert_eq!(
        (p.planning_shared_hit, p.planning_shared_read),
        (Some(7), Some(1))
    );
    assert_eq!(
        p.triggers
            .first()
            .map(|t| (t.trigger_name.as_str(), t.calls)),
        Some(("audit_touch", Some(100.0)))
    );
    assert_eq!(p.jit.as_ref().and_then(|j| j.total_ms), Some(3.8));
    assert_eq!(p.jit.as_ref().and_then(|j| j.functions), Some(3));
    // the worker's buffers are not the node's
    let cte = p.root.children.get(1);
    assert_eq!(cte.and_then(|c| c.shared_hit), Some(0));
    assert_eq!(cte.map(|c| c.parallel_aware), Some(true));
}

#[test]
fn costs_off_timing_off_and_old_majors() {
    let p = one("Limit\n  ->  Sort\n        Sort Key: a\n        ->  Seq Scan on t\n              Filter: (a > 1)");
    assert_eq!(shape(&p).len(), 3);
    let p = one("Aggregate  (actual rows=1 loops=1)\n  ->  Seq Scan on t  (actual rows=10.00 loops=1)\nPlanning Time: 0.1 ms\nExecution Time: 0.2 ms");
    assert_eq!(
        p.root.children.first().and_then(|c| c.actual_rows),
        Some(10.0)
    );
    assert!(p.root.actual_total_time.is_none());
    let old = one("Seq Scan on t  (cost=0.00..1.00 rows=1 width=4) (actual time=0.01..0.02 rows=1 loops=1)\nTotal runtime: 0.05 ms");
    assert_eq!(old.execution_time, Some(0.05));
    let io = one("Seq Scan on t  (cost=0.00..1.00 rows=1 width=4) (actual time=0.01..0.02 rows=1 loops=1)\n  Buffers: shared read=3\n  I/O Timings: read=0.5\n  WAL: records=2 fpi=1 bytes=300");
    assert_eq!(
        (io.root.io_read_time, io.root.wal_bytes),
        (Some(0.5), Some(300))
    );
}

#[test]
fn formats_are_detected() {
    for (src, f) in [
        ("[{\"Plan\": {\"Node Type\": \"Result\"}}]", Format::Json),
        ("{\"Query Text\": \"select 1\", \"Plan\": {\"Node Type\": \"Result\"}}", Format::Json),
        ("- Plan: \n    Node Type: \"Result\"\n    Plan Rows: 1", Format::Yaml),
        ("<explain xmlns=\"http://www.postgresql.org/2009/explain\">\n  <Query>\n    <Plan>\n      <Node-Type>Result</Node-Type>\n    </Plan>\n  </Query>\n</explain>", Format::Xml),
        ("Result  (cost=0.00..0.01 rows=1 width=4)", Format::Text),
        ("LOG:  duration: 0.1 ms  plan:\n\tResult  (cost=0.00..0.01 rows=1 width=4)", Format::AutoExplain),
    ] {
        let r = import(src);
        assert!(r.as_ref().is_ok_and(|i| i.format == f), "{src}: {:?}", r.err());
    }
    let psql_json = " QUERY PLAN\n------------\n [          +\n   {        +\n     \"Plan\": {\"Node Type\": \"Result\", \"Plan Rows\": 1}+\n   }        +\n ]\n(1 row)";
    assert_eq!(one(psql_json).root.node_type, "Result");
}

#[test]
fn bad_pastes_say_where_and_what() {
    for (src, line, expect) in [
        ("", 1, "an EXPLAIN plan"),
        ("hello world", 1, "a plan node line"),
        ("Seq Scan on t  (cost=0.00..1.00 rows=1 width=4)\n  ->  Frobnicate  (cost=1..2 rows=1 width=1)", 2, "plan node type"),
        ("Seq Scan on t  (cost=0.00..1.00 rows=1 width=4)\n  Rows Removed by Filter: lots", 2, "row count"),
        ("Seq Scan on t  (cost=zero..1.00 rows=1 width=4)", 1, "cost=STARTUP..TOTAL"),
        ("[{\"Plan\": {\"Node Type\": \"Result\"}", 1, "EXPLAIN (FORMAT JSON)"),
        ("\n\n[{\"Plan\": 3}]", 3, "EXPLAIN (FORMAT JSON)"),
        ("<explain><Query><Plan></Query></explain>", 1, "</Plan>"),
        ("LOG:  duration: 1 ms  plan:\nLOG:  statement: x", 1, "a plan after"),
    ] {
        let r = import(src);
        assert!(
            r.as_ref().is_err_and(|e| e.line == line && e.expected.contains(expect)),
            "{src:?}: {r:?}"
        );
    }
}
