//! The plan tree written back as `EXPLAIN (FORMAT JSON)`'s document, so a plan imported
//! from text, YAML or XML is stored the way a captured plan is and every reader of
//! captured plans (estimate_gap, explain_diff, plan_tips) reads it unchanged. Only the
//! keys the tree holds are written; [`crate::plans::parse`] reads them back to an equal tree.

use crate::plans::tree::{ExplainResult, PlanNode, WorkerStats};
use serde_json::{Map, Number, Value};

fn put_s(m: &mut Map<String, Value>, k: &str, v: &Option<String>) {
    if let Some(v) = v {
        m.insert(k.to_string(), Value::String(v.clone()));
    }
}

fn put_f(m: &mut Map<String, Value>, k: &str, v: Option<f64>) {
    if let Some(n) = v.and_then(Number::from_f64) {
        m.insert(k.to_string(), Value::Number(n));
    }
}

fn put_i(m: &mut Map<String, Value>, k: &str, v: Option<i64>) {
    if let Some(v) = v {
        m.insert(k.to_string(), Value::Number(v.into()));
    }
}

fn node_object(n: &PlanNode, children: Vec<Value>) -> Value {
    let mut m = Map::new();
    m.insert("Node Type".into(), Value::String(n.node_type.clone()));
    put_s(&mut m, "Parent Relationship", &n.parent_relationship);
    put_s(&mut m, "Subplan Name", &n.subplan_name);
    put_s(&mut m, "Strategy", &n.strategy);
    put_s(&mut m, "Partial Mode", &n.partial_mode);
    put_s(&mut m, "Operation", &n.operation);
    put_s(&mut m, "Join Type", &n.join_type);
    m.insert("Parallel Aware".into(), Value::Bool(n.parallel_aware));
    if let Some(d) = n.disabled {
        m.insert("Disabled".into(), Value::Bool(d));
    }
    put_s(&mut m, "Index Name", &n.index_name);
    put_s(&mut m, "Relation Name", &n.relation_name);
    put_s(&mut m, "Function Name", &n.function_name);
    put_s(&mut m, "CTE Name", &n.cte_name);
    put_s(&mut m, "Schema", &n.schema);
    put_s(&mut m, "Alias", &n.alias);
    put_f(&mut m, "Startup Cost", Some(n.startup_cost));
    put_f(&mut m, "Total Cost", Some(n.total_cost));
    put_f(&mut m, "Plan Rows", Some(n.plan_rows));
    put_f(&mut m, "Actual Startup Time", n.actual_startup_time);
    put_f(&mut m, "Actual Total Time", n.actual_total_time);
    put_f(&mut m, "Actual Rows", n.actual_rows);
    put_f(&mut m, "Actual Loops", n.actual_loops);
    for (k, v) in &n.conditions {
        m.insert(k.clone(), Value::String(v.clone()));
    }
    put_f(&mut m, "Rows Removed by Filter", n.rows_removed_by_filter);
    put_f(
        &mut m,
        "Rows Removed by Join Filter",
        n.rows_removed_by_join_filter,
    );
    put_f(
        &mut m,
        "Rows Removed by Index Recheck",
        n.rows_removed_by_index_recheck,
    );
    put_i(&mut m, "Index Searches", n.index_searches);
    put_i(&mut m, "Heap Fetches", n.heap_fetches);
    put_i(&mut m, "Workers Planned", n.workers_planned);
    put_i(&mut m, "Workers Launched", n.workers_launched);
    put_s(&mut m, "Sort Method", &n.sort_method);
    put_i(&mut m, "Sort Space Used", n.sort_space_kb);
    put_s(&mut m, "Sort Space Type", &n.sort_space_type);
    put_i(&mut m, "Hash Buckets", n.hash_buckets);
    put_i(&mut m, "Hash Batches", n.hash_batches);
    put_i(&mut m, "Original Hash Batches", n.original_hash_batches);
    put_i(&mut m, "Peak Memory Usage", n.peak_memory_kb);
    put_i(&mut m, "HashAgg Batches", n.hashagg_batches);
    put_i(&mut m, "Disk Usage", n.disk_usage_kb);
    put_i(&mut m, "Cache Hits", n.cache_hits);
    put_i(&mut m, "Cache Misses", n.cache_misses);
    put_i(&mut m, "Cache Evictions", n.cache_evictions);
    put_i(&mut m, "Cache Overflows", n.cache_overflows);
    put_i(&mut m, "Exact Heap Blocks", n.exact_heap_blocks);
    put_i(&mut m, "Lossy Heap Blocks", n.lossy_heap_blocks);
    put_i(&mut m, "Shared Hit Blocks", n.shared_hit);
    put_i(&mut m, "Shared Read Blocks", n.shared_read);
    put_i(&mut m, "Shared Dirtied Blocks", n.shared_dirtied);
    put_i(&mut m, "Shared Written Blocks", n.shared_written);
    put_i(&mut m, "Temp Read Blocks", n.temp_read);
    put_i(&mut m, "Temp Written Blocks", n.temp_written);
    put_f(&mut m, "I/O Read Time", n.io_read_time);
    put_f(&mut m, "I/O Write Time", n.io_write_time);
    put_i(&mut m, "WAL Records", n.wal_records);
    put_i(&mut m, "WAL FPI", n.wal_fpi);
    put_i(&mut m, "WAL Bytes", n.wal_bytes);
    if !n.workers.is_empty() {
        let w = n.workers.iter().map(worker_object).collect();
        m.insert("Workers".into(), Value::Array(w));
    }
    if !children.is_empty() {
        m.insert("Plans".into(), Value::Array(children));
    }
    Value::Object(m)
}

fn worker_object(w: &WorkerStats) -> Value {
    let mut m = Map::new();
    put_i(&mut m, "Worker Number", Some(w.worker_number));
    put_f(&mut m, "Actual Startup Time", w.actual_startup_time);
    put_f(&mut m, "Actual Total Time", w.actual_total_time);
    put_f(&mut m, "Actual Rows", w.actual_rows);
    put_f(&mut m, "Actual Loops", w.actual_loops);
    put_s(&mut m, "Sort Method", &w.sort_method);
    put_i(&mut m, "Sort Space Used", w.sort_space_kb);
    put_s(&mut m, "Sort Space Type", &w.sort_space_type);
    put_i(&mut m, "HashAgg Batches", w.hashagg_batches);
    put_i(&mut m, "Peak Memory Usage", w.peak_memory_kb);
    put_i(&mut m, "Disk Usage", w.disk_usage_kb);
    put_i(&mut m, "Shared Hit Blocks", w.shared_hit);
    put_i(&mut m, "Shared Read Blocks", w.shared_read);
    put_i(&mut m, "Shared Dirtied Blocks", w.shared_dirtied);
    put_i(&mut m, "Shared Written Blocks", w.shared_written);
    put_i(&mut m, "Temp Read Blocks", w.temp_read);
    put_i(&mut m, "Temp Written Blocks", w.temp_written);
    Value::Object(m)
}

/// The plan node as a JSON object, built bottom-up without recursion (plans can be
/// 200 levels deep and 10,000s of nodes wide).
fn plan_value(root: &PlanNode) -> Value {
    // pre-order with parent links, then fold from the end
    let mut order: Vec<(&PlanNode, Option<usize>)> = Vec::new();
    let mut stack = vec![(root, None)];
    while let Some((n, p)) = stack.pop() {
        let id = order.len();
        order.push((n, p));
        for c in n.children.iter().rev() {
            stack.push((c, Some(id)));
        }
    }
    let mut built: Vec<Vec<Value>> = vec![Vec::new(); order.len()];
    for id in (0..order.len()).rev() {
        let Some((n, p)) = order.get(id).copied() else {
            continue;
        };
        let mut kids = built.get_mut(id).map(std::mem::take).unwrap_or_default();
        kids.reverse();
        let v = node_object(n, kids);
        match p.and_then(|p| built.get_mut(p)) {
            Some(siblings) => siblings.push(v),
            None => return v,
        }
    }
    Value::Null
}

/// The whole document: `[{"Plan": ..., "Planning Time": ..., ...}]`.
pub fn to_explain_json(r: &ExplainResult) -> Value {
    let mut top = Map::new();
    if let Some(q) = &r.query_text {
        top.insert("Query Text".into(), Value::String(q.clone()));
    }
    top.insert("Plan".into(), plan_value(&r.root));
    if r.planning_shared_hit.is_some() || r.planning_shared_read.is_some() {
        let mut p = Map::new();
        put_i(&mut p, "Shared Hit Blocks", r.planning_shared_hit);
        put_i(&mut p, "Shared Read Blocks", r.planning_shared_read);
        top.insert("Planning".into(), Value::Object(p));
    }
    put_f(&mut top, "Planning Time", r.planning_time);
    if !r.triggers.is_empty() {
        let t = r
            .triggers
            .iter()
            .map(|t| {
                let mut m = Map::new();
                m.insert("Trigger Name".into(), Value::String(t.trigger_name.clone()));
                put_s(&mut m, "Constraint Name", &t.constraint_name);
                put_s(&mut m, "Relation", &t.relation);
                put_f(&mut m, "Time", t.time);
                put_f(&mut m, "Calls", t.calls);
                Value::Object(m)
            })
            .collect();
        top.insert("Triggers".into(), Value::Array(t));
    }
    if !r.settings.is_empty() {
        let s = r
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        top.insert("Settings".into(), Value::Object(s));
    }
    if let Some(j) = &r.jit {
        let mut timing = Map::new();
        put_f(&mut timing, "Generation", j.generation_ms);
        put_f(&mut timing, "Inlining", j.inlining_ms);
        put_f(&mut timing, "Optimization", j.optimization_ms);
        put_f(&mut timing, "Emission", j.emission_ms);
        put_f(&mut timing, "Total", j.total_ms);
        let mut m = Map::new();
        put_i(&mut m, "Functions", j.functions);
        m.insert("Timing".into(), Value::Object(timing));
        top.insert("JIT".into(), Value::Object(m));
    }
    put_f(&mut top, "Execution Time", r.execution_time);
    Value::Array(vec![Value::Object(top)])
}
