//! Per-worker figures: read from EXPLAIN JSON's `"Workers"` and from text's `Worker N:`
//! lines to the same [`WorkerStats`], kept through the stored forms, and used by the
//! tips (a skewed parallel node; sorts and hash aggregates that spilled in a worker).

use super::import::first_plan as one;
use super::import::import;
use super::tips::plan_tips;
use super::tree::{ExplainResult, WorkerStats};

fn buffers(hit: i64) -> String {
    format!(
        r#""Shared Hit Blocks": {hit}, "Shared Read Blocks": 0, "Shared Dirtied Blocks": 0, "Shared Written Blocks": 0, "Local Hit Blocks": 0, "Local Read Blocks": 0, "Local Dirtied Blocks": 0, "Local Written Blocks": 0, "Temp Read Blocks": 0, "Temp Written Blocks": 0"#
    )
}

/// EXPLAIN (ANALYZE, BUFFERS, VERBOSE) of a Parallel Seq Scan where worker 0 did 90% of
/// the rows, in text as psql prints it.
const SKEWED_TEXT: &str = "                                  QUERY PLAN
--------------------------------------------------------------------------------
 Gather  (cost=1000.00..2000.00 rows=30000 width=8) (actual time=0.300..20.000 rows=30000 loops=1)
   Output: id
   Workers Planned: 2
   Workers Launched: 2
   Buffers: shared hit=300
   ->  Parallel Seq Scan on public.t  (cost=0.00..1000.00 rows=12500 width=8) (actual time=0.010..15.000 rows=10000 loops=3)
         Output: id
         Buffers: shared hit=300
         Worker 0:  actual time=0.020..14.000 rows=27000 loops=1
           Buffers: shared hit=270
         Worker 1:  actual time=0.030..2.000 rows=1500 loops=1
           Buffers: shared hit=15
 Planning Time: 0.100 ms
 Execution Time: 21.000 ms
(14 rows)
";

fn skewed_json() -> String {
    format!(
        r#"[{{"Plan": {{"Node Type": "Gather", "Parallel Aware": false, "Startup Cost": 1000.00, "Total Cost": 2000.00,
  "Plan Rows": 30000, "Plan Width": 8, "Actual Startup Time": 0.300, "Actual Total Time": 20.000, "Actual Rows": 30000,
  "Actual Loops": 1, "Output": ["id"], "Workers Planned": 2, "Workers Launched": 2, "Single Copy": false, {},
  "Plans": [{{"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Parallel Aware": true, "Relation Name": "t",
    "Schema": "public", "Alias": "t", "Startup Cost": 0.00, "Total Cost": 1000.00, "Plan Rows": 12500, "Plan Width": 8,
    "Actual Startup Time": 0.010, "Actual Total Time": 15.000, "Actual Rows": 10000, "Actual Loops": 3, "Output": ["id"], {},
    "Workers": [
      {{"Worker Number": 0, "Actual Startup Time": 0.020, "Actual Total Time": 14.000, "Actual Rows": 27000, "Actual Loops": 1, {}}},
      {{"Worker Number": 1, "Actual Startup Time": 0.030, "Actual Total Time": 2.000, "Actual Rows": 1500, "Actual Loops": 1, {}}}
    ]}}]}},
  "Planning Time": 0.100, "Triggers": [], "Execution Time": 21.000}}]"#,
        buffers(300),
        buffers(300),
        buffers(270),
        buffers(15)
    )
}

/// A parallel sort and hash aggregate without VERBOSE: per-worker sort and batches only;
/// worker 1's sort and worker 0's aggregation went to disk, the leader's did not.
const SPILL_TEXT: &str = " Gather Merge  (cost=10.00..20.00 rows=100 width=8) (actual time=5.000..9.000 rows=300 loops=1)
   Workers Planned: 2
   Workers Launched: 2
   ->  Sort  (cost=9.00..9.50 rows=50 width=8) (actual time=4.000..4.500 rows=100 loops=3)
         Sort Key: a
         Sort Method: quicksort  Memory: 25kB
         Worker 0:  Sort Method: quicksort  Memory: 30kB
         Worker 1:  Sort Method: external merge  Disk: 4096kB
         ->  Partial HashAggregate  (cost=5.00..8.00 rows=50 width=8) (actual time=3.000..3.500 rows=100 loops=3)
               Group Key: a
               Batches: 1  Memory Usage: 24kB
               Worker 0:  Batches: 5  Memory Usage: 4145kB  Disk Usage: 2000kB
               Worker 1:  Batches: 1  Memory Usage: 40kB
               ->  Parallel Seq Scan on t  (cost=0.00..4.00 rows=500 width=4) (actual time=0.010..1.000 rows=400 loops=3)
";

const SPILL_JSON: &str = r#"[{"Plan": {"Node Type": "Gather Merge", "Parallel Aware": false, "Startup Cost": 10.00,
  "Total Cost": 20.00, "Plan Rows": 100, "Actual Startup Time": 5.000, "Actual Total Time": 9.000, "Actual Rows": 300,
  "Actual Loops": 1, "Workers Planned": 2, "Workers Launched": 2,
  "Plans": [{"Node Type": "Sort", "Parent Relationship": "Outer", "Parallel Aware": false, "Startup Cost": 9.00,
    "Total Cost": 9.50, "Plan Rows": 50, "Actual Startup Time": 4.000, "Actual Total Time": 4.500, "Actual Rows": 100,
    "Actual Loops": 3, "Sort Key": ["a"], "Sort Method": "quicksort", "Sort Space Used": 25, "Sort Space Type": "Memory",
    "Workers": [
      {"Worker Number": 0, "Sort Method": "quicksort", "Sort Space Used": 30, "Sort Space Type": "Memory"},
      {"Worker Number": 1, "Sort Method": "external merge", "Sort Space Used": 4096, "Sort Space Type": "Disk"}],
    "Plans": [{"Node Type": "Aggregate", "Strategy": "Hashed", "Partial Mode": "Partial", "Parent Relationship": "Outer",
      "Parallel Aware": false, "Startup Cost": 5.00, "Total Cost": 8.00, "Plan Rows": 50, "Actual Startup Time": 3.000,
      "Actual Total Time": 3.500, "Actual Rows": 100, "Actual Loops": 3, "Group Key": ["a"], "Planned Partitions": 0,
      "HashAgg Batches": 1, "Peak Memory Usage": 24, "Disk Usage": 0,
      "Workers": [
        {"Worker Number": 0, "HashAgg Batches": 5, "Peak Memory Usage": 4145, "Disk Usage": 2000},
        {"Worker Number": 1, "HashAgg Batches": 1, "Peak Memory Usage": 40, "Disk Usage": 0}],
      "Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Parallel Aware": true, "Relation Name": "t",
        "Alias": "t", "Startup Cost": 0.00, "Total Cost": 4.00, "Plan Rows": 500, "Actual Startup Time": 0.010,
        "Actual Total Time": 1.000, "Actual Rows": 400, "Actual Loops": 3, "Workers": []}]}]}]},
  "Triggers": []}]"#;

fn worker(n: i64) -> WorkerStats {
    WorkerStats {
        worker_number: n,
        ..WorkerStats::default()
    }
}

fn all_workers(p: &ExplainResult) -> Vec<Vec<WorkerStats>> {
    crate::plans::flatten::flatten(p)
        .iter()
        .map(|f| f.node.workers.clone())
        .collect()
}

#[test]
fn verbose_text_and_json_give_the_same_workers() {
    let t = one(SKEWED_TEXT);
    let j = one(&skewed_json());
    let scan = |p: &ExplainResult| p.root.children.first().map(|c| c.workers.clone());
    let w0 = WorkerStats {
        actual_startup_time: Some(0.02),
        actual_total_time: Some(14.0),
        actual_rows: Some(27000.0),
        actual_loops: Some(1.0),
        shared_hit: Some(270),
        shared_read: Some(0),
        shared_dirtied: Some(0),
        shared_written: Some(0),
        temp_read: Some(0),
        temp_written: Some(0),
        ..worker(0)
    };
    let w1 = WorkerStats {
        actual_startup_time: Some(0.03),
        actual_total_time: Some(2.0),
        actual_rows: Some(1500.0),
        shared_hit: Some(15),
        ..w0.clone()
    };
    let w1 = WorkerStats {
        worker_number: 1,
        ..w1
    };
    assert_eq!(scan(&t), Some(vec![w0, w1]));
    assert_eq!(all_workers(&t), all_workers(&j));
    assert!(t.root.workers.is_empty(), "the Gather itself has none");
}

#[test]
fn sort_and_hash_aggregate_workers_without_verbose() {
    let t = one(SPILL_TEXT);
    let j = one(SPILL_JSON);
    assert_eq!(all_workers(&t), all_workers(&j));
    let sort = t.root.children.first();
    let w1 = sort.and_then(|s| s.workers.get(1));
    assert_eq!(
        w1.map(|w| (
            w.sort_method.as_deref(),
            w.sort_space_type.as_deref(),
            w.sort_space_kb
        )),
        Some((Some("external merge"), Some("Disk"), Some(4096)))
    );
    assert!(w1.is_some_and(|w| w.actual_rows.is_none() && w.shared_hit.is_none()));
    let agg = sort.and_then(|s| s.children.first());
    let w0 = agg.and_then(|a| a.workers.first());
    assert_eq!(
        w0.map(|w| (w.hashagg_batches, w.peak_memory_kb, w.disk_usage_kb)),
        Some((Some(5), Some(4145), Some(2000)))
    );
}

#[test]
fn workers_survive_both_stored_forms() {
    for src in [
        SKEWED_TEXT.to_string(),
        skewed_json(),
        SPILL_TEXT.to_string(),
        SPILL_JSON.to_string(),
    ] {
        let r = import(&src);
        assert!(r.is_ok(), "{:?}", r.as_ref().err());
        let Ok(i) = r else {
            continue;
        };
        for p in &i.plans {
            let back = super::import::stored(&p.stored, p.stored_format.as_str());
            assert_eq!(back.as_ref().ok(), Some(&p.parsed));
            let json = super::import::emit::to_explain_json(&p.parsed).to_string();
            let back = super::import::stored(&json, "json");
            assert_eq!(back.as_ref().ok(), Some(&p.parsed));
        }
    }
}

#[test]
fn a_wrapped_worker_line_and_a_worker_outside_a_node() {
    // a mail client wrapped the worker's figures at a space
    let wrapped = "Parallel Seq Scan on t  (cost=0.00..1.00 rows=1 width=4) (actual time=0.010..1.000 rows=10 loops=2)\n  Worker 0:  actual time=0.020..0.900 rows=12\nloops=1";
    let p = one(wrapped);
    assert_eq!(
        p.root.workers.first().and_then(|w| w.actual_rows),
        Some(12.0)
    );
    let bad = import("Worker 0:  actual time=0.1..0.2 rows=1 loops=1\nSeq Scan on t  (cost=0.00..1.00 rows=1 width=4)");
    assert!(bad.is_ok() || bad.is_err_and(|e| e.line >= 1));
    let bad = import("Seq Scan on t  (cost=0.00..1.00 rows=1 width=4)\n  Worker 0:  actual time=0.1..x rows=1 loops=1");
    assert!(
        bad.is_err_and(|e| e.line == 2),
        "bad figures are a coded error"
    );
}

#[test]
fn a_skewed_parallel_node_is_a_tip() {
    for p in [one(SKEWED_TEXT), one(&skewed_json())] {
        let tips = plan_tips(&p, 10.0);
        let skew: Vec<_> = tips
            .iter()
            .filter(|t| t.finding == "parallel skew")
            .collect();
        assert_eq!(skew.len(), 1, "{tips:?}");
        let t = skew[0];
        assert_eq!(t.node_id, Some(1));
        assert_eq!(
            t.evidence,
            "worker 0 returned 27000 of 30000 rows (90%); an even share over 3 processes is 33.3%"
        );
        // the scan's wall time (15 ms x 3 loops / 3 processes) less nothing below it,
        // times 1 - 1 / (3 x 0.9)
        let saving = t.est_saving_ms.unwrap_or(0.0);
        assert!((saving - 15.0 * (1.0 - 1.0 / 2.7)).abs() < 1e-6, "{saving}");
    }
}

#[test]
fn an_even_split_or_a_small_node_is_not_skewed() {
    let even = SKEWED_TEXT
        .replace("rows=27000 loops=1", "rows=10000 loops=1")
        .replace("rows=1500 loops=1", "rows=9000 loops=1");
    let tips = plan_tips(&one(&even), 10.0);
    assert!(
        tips.iter().all(|t| t.finding != "parallel skew"),
        "{tips:?}"
    );
    // without VERBOSE there are no per-worker rows to judge by
    let plain: String = SKEWED_TEXT
        .lines()
        .filter(|l| !l.contains("Worker ") && !l.contains("hit=270") && !l.contains("hit=15"))
        .collect::<Vec<_>>()
        .join("\n");
    let tips = plan_tips(&one(&plain), 10.0);
    assert!(
        tips.iter().all(|t| t.finding != "parallel skew"),
        "{tips:?}"
    );
    // the leader did most of the rows of a small scan: below SKEW_ROWS
    let small = SKEWED_TEXT
        .replace("rows=30000 loops=1", "rows=300 loops=1")
        .replace("rows=10000 loops=3", "rows=100 loops=3")
        .replace("rows=27000 loops=1", "rows=10 loops=1")
        .replace("rows=1500 loops=1", "rows=5 loops=1");
    let tips = plan_tips(&one(&small), 10.0);
    assert!(
        tips.iter().all(|t| t.finding != "parallel skew"),
        "{tips:?}"
    );
}

#[test]
fn the_leader_doing_most_of_the_rows_is_named() {
    let leader = SKEWED_TEXT
        .replace("rows=27000 loops=1", "rows=1000 loops=1")
        .replace("rows=1500 loops=1", "rows=1000 loops=1");
    let tips = plan_tips(&one(&leader), 10.0);
    let skew = tips.iter().find(|t| t.finding == "parallel skew");
    assert!(
        skew.is_some_and(|t| t
            .evidence
            .starts_with("the leader returned 28000 of 30000 rows")),
        "{tips:?}"
    );
}

#[test]
fn spills_in_a_worker_are_found() {
    for p in [one(SPILL_TEXT), one(SPILL_JSON)] {
        let tips = plan_tips(&p, 10.0);
        let sort = tips.iter().find(|t| t.finding == "sort on disk");
        assert_eq!(
            sort.map(|t| t.evidence.as_str()),
            Some(
                "external merge wrote 4096 kB to disk (worker 1; 1 of 3 processes sorted on disk)"
            ),
            "{tips:?}"
        );
        let agg = tips.iter().find(|t| t.finding == "hash aggregate spill");
        assert_eq!(
            agg.map(|t| t.evidence.as_str()),
            Some("HashAggregate spilled: 5 batches, 2000 kB on disk, 4145 kB in memory (worker 0; 1 of 3 processes spilled)"),
            "{tips:?}"
        );
    }
}

#[test]
fn yaml_and_xml_keep_workers_too() {
    let json = r#"[{"Plan": {"Node Type": "Sort", "Actual Rows": 5, "Actual Loops": 2, "Workers": [
        {"Worker Number": 0, "Sort Method": "quicksort", "Sort Space Used": 25, "Sort Space Type": "Memory"}]}}]"#;
    let yaml = "- Plan: \n    Node Type: \"Sort\"\n    Actual Rows: 5\n    Actual Loops: 2\n    Workers: \n      - Worker Number: 0\n        Sort Method: \"quicksort\"\n        Sort Space Used: 25\n        Sort Space Type: \"Memory\"";
    let xml = "<explain xmlns=\"http://www.postgresql.org/2009/explain\">\n  <Query>\n    <Plan>\n      <Node-Type>Sort</Node-Type>\n      <Actual-Rows>5</Actual-Rows>\n      <Actual-Loops>2</Actual-Loops>\n      <Workers>\n        <Worker>\n          <Worker-Number>0</Worker-Number>\n          <Sort-Method>quicksort</Sort-Method>\n          <Sort-Space-Used>25</Sort-Space-Used>\n          <Sort-Space-Type>Memory</Sort-Space-Type>\n        </Worker>\n      </Workers>\n    </Plan>\n  </Query>\n</explain>";
    let want = one(json).root.workers;
    assert_eq!(want.len(), 1);
    assert_eq!(want.first().and_then(|w| w.sort_space_kb), Some(25));
    for src in [yaml, xml] {
        assert_eq!(one(src).root.workers, want, "{src}");
    }
}
