//! The typed plan tree: one [`PlanNode`] per EXPLAIN node and the [`ExplainResult`]
//! around it, with the totals over loops and the labels PostgreSQL's text format
//! prints. Pure data; reading JSON into it is [`super::parse`]'s job.

use serde::Serialize;
use std::collections::BTreeMap;

/// One plan node. Per-loop values are as PostgreSQL prints them; use
/// [`PlanNode::total_actual_rows`] and friends for totals over all loops.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlanNode {
    /// `"Node Type"`: "Seq Scan", "Hash Join", "Index Only Scan", ...
    pub node_type: String,
    /// `"Relation Name"`, prefixed `schema.` when `"Schema"` is present.
    pub relation: Option<String>,
    /// `"Relation Name"` as printed (never schema-qualified).
    pub relation_name: Option<String>,
    /// `"Schema"` (VERBOSE only).
    pub schema: Option<String>,
    pub alias: Option<String>,
    pub index_name: Option<String>,
    pub join_type: Option<String>,
    /// "Outer", "Inner", "InitPlan", "SubPlan", "Member", ...
    pub parent_relationship: Option<String>,
    /// `"Subplan Name"`, e.g. "InitPlan 2" or "InitPlan 2 (returns $1)".
    pub subplan_name: Option<String>,
    /// Aggregate/SetOp `"Strategy"`: "Plain", "Sorted", "Hashed", "Mixed".
    pub strategy: Option<String>,
    /// Aggregate `"Partial Mode"`: "Simple", "Partial", "Finalize".
    pub partial_mode: Option<String>,
    /// ModifyTable `"Operation"`: "Insert", "Update", "Delete", "Merge".
    pub operation: Option<String>,
    pub cte_name: Option<String>,
    /// `"Function Name"` or `"Table Function Name"`.
    pub function_name: Option<String>,
    pub parallel_aware: bool,
    /// PG18+ only.
    pub disabled: Option<bool>,
    pub startup_cost: f64,
    pub total_cost: f64,
    /// Estimate per loop.
    pub plan_rows: f64,
    /// Per loop (PG18 prints fractions).
    pub actual_rows: Option<f64>,
    pub actual_loops: Option<f64>,
    /// ms per loop (absent with TIMING OFF).
    pub actual_startup_time: Option<f64>,
    /// ms per loop (absent with TIMING OFF).
    pub actual_total_time: Option<f64>,
    pub shared_hit: Option<i64>,
    pub shared_read: Option<i64>,
    pub shared_dirtied: Option<i64>,
    pub shared_written: Option<i64>,
    pub temp_read: Option<i64>,
    pub temp_written: Option<i64>,
    pub rows_removed_by_filter: Option<f64>,
    pub rows_removed_by_join_filter: Option<f64>,
    /// PG18+ only.
    pub index_searches: Option<i64>,
    pub heap_fetches: Option<i64>,
    pub workers_planned: Option<i64>,
    pub workers_launched: Option<i64>,
    /// Sort/Incremental Sort: "quicksort", "top-N heapsort", "external merge", ...
    pub sort_method: Option<String>,
    /// "Memory" or "Disk".
    pub sort_space_type: Option<String>,
    pub sort_space_kb: Option<i64>,
    pub hash_buckets: Option<i64>,
    pub hash_batches: Option<i64>,
    pub original_hash_batches: Option<i64>,
    /// Hash "Peak Memory Usage" or HashAggregate/Memoize/Material "Peak Memory Usage".
    pub peak_memory_kb: Option<i64>,
    /// HashAggregate `"HashAgg Batches"` (PG13+): more than 1 means it spilled.
    pub hashagg_batches: Option<i64>,
    /// HashAggregate `"Disk Usage"` in kB.
    pub disk_usage_kb: Option<i64>,
    pub cache_hits: Option<i64>,
    pub cache_misses: Option<i64>,
    pub cache_evictions: Option<i64>,
    pub cache_overflows: Option<i64>,
    pub rows_removed_by_index_recheck: Option<f64>,
    pub exact_heap_blocks: Option<i64>,
    pub lossy_heap_blocks: Option<i64>,
    /// ms (track_io_timing), shared/local reads and writes.
    pub io_read_time: Option<f64>,
    pub io_write_time: Option<f64>,
    pub wal_records: Option<i64>,
    pub wal_fpi: Option<i64>,
    pub wal_bytes: Option<i64>,
    /// ("Filter", "..."), ("Index Cond", ...), ("Hash Cond", ...), ...
    pub conditions: Vec<(String, String)>,
    /// Per-worker figures, in worker order: JSON's `"Workers"`, text's `Worker N:` lines.
    /// The node's own sort and hash-aggregate fields are the leader's (or, when the
    /// leader did not run the node, absent); its actual figures are over all processes.
    pub workers: Vec<WorkerStats>,
    pub children: Vec<PlanNode>,
}

/// One parallel worker's figures for a node. Actual figures and buffers are printed
/// with VERBOSE only; sort and hash-aggregate figures always.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkerStats {
    /// `"Worker Number"`, from 0.
    pub worker_number: i64,
    /// ms per loop (VERBOSE, absent with TIMING OFF).
    pub actual_startup_time: Option<f64>,
    pub actual_total_time: Option<f64>,
    /// Per loop, as for the node.
    pub actual_rows: Option<f64>,
    pub actual_loops: Option<f64>,
    pub sort_method: Option<String>,
    pub sort_space_type: Option<String>,
    pub sort_space_kb: Option<i64>,
    pub hashagg_batches: Option<i64>,
    pub peak_memory_kb: Option<i64>,
    pub disk_usage_kb: Option<i64>,
    pub shared_hit: Option<i64>,
    pub shared_read: Option<i64>,
    pub shared_dirtied: Option<i64>,
    pub shared_written: Option<i64>,
    pub temp_read: Option<i64>,
    pub temp_written: Option<i64>,
}

impl WorkerStats {
    /// Rows over this worker's loops.
    pub fn total_actual_rows(&self) -> Option<f64> {
        Some(self.actual_rows? * self.actual_loops?.max(0.0))
    }
}

/// One entry of the top-level `"Triggers"` array.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TriggerTime {
    pub trigger_name: String,
    pub constraint_name: Option<String>,
    pub relation: Option<String>,
    /// Total ms over all calls.
    pub time: Option<f64>,
    pub calls: Option<f64>,
}

/// A parsed EXPLAIN document.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExplainResult {
    pub root: PlanNode,
    pub planning_time: Option<f64>,
    pub execution_time: Option<f64>,
    /// The `"Settings"` object; non-string values are kept as their JSON text.
    pub settings: BTreeMap<String, String>,
    pub triggers: Vec<TriggerTime>,
    /// Buffers the planner used (`"Planning"` object).
    pub planning_shared_hit: Option<i64>,
    pub planning_shared_read: Option<i64>,
    /// `"Query Text"` (auto_explain and imported plans).
    pub query_text: Option<String>,
    pub jit: Option<Jit>,
}

/// The top-level `"JIT"` object: functions compiled and the time spent, in ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Jit {
    pub functions: Option<i64>,
    pub generation_ms: Option<f64>,
    pub inlining_ms: Option<f64>,
    pub optimization_ms: Option<f64>,
    pub emission_ms: Option<f64>,
    pub total_ms: Option<f64>,
}

fn is_join_type(node_type: &str) -> bool {
    matches!(node_type, "Nested Loop" | "Hash Join" | "Merge Join")
}

impl PlanNode {
    /// Executed at least once and carrying actual row counts.
    pub fn executed(&self) -> bool {
        self.actual_rows.is_some() && self.actual_loops.is_some_and(|l| l > 0.0)
    }

    /// Loops, with "no actuals" and non-positive values read as 0.
    fn loops_or_zero(&self) -> f64 {
        match self.actual_loops {
            Some(l) if l > 0.0 => l,
            _ => 0.0,
        }
    }

    /// Estimated rows over all loops: `plan_rows × loops` (× 1 when the node
    /// never ran or has no actuals).
    pub fn total_est_rows(&self) -> f64 {
        self.plan_rows * self.loops_or_zero().max(1.0)
    }

    /// Actual rows over all loops (`actual_rows × loops`).
    pub fn total_actual_rows(&self) -> Option<f64> {
        self.actual_rows.map(|r| r * self.loops_or_zero())
    }

    /// Inclusive actual time over all loops in ms (`actual_total_time × loops`).
    pub fn total_time_ms(&self) -> Option<f64> {
        self.actual_total_time.map(|t| t * self.loops_or_zero())
    }

    /// The operation as PostgreSQL's text format names it, without target:
    /// "HashAggregate", "Hash Left Join", "Parallel Seq Scan", "Insert", ...
    pub fn method(&self) -> String {
        let nt = self.node_type.as_str();
        let mut base = match (nt, self.strategy.as_deref()) {
            ("Aggregate", Some("Hashed")) => "HashAggregate".to_string(),
            ("Aggregate", Some("Sorted")) => "GroupAggregate".to_string(),
            ("Aggregate", Some("Mixed")) => "MixedAggregate".to_string(),
            ("SetOp", Some("Hashed")) => "HashSetOp".to_string(),
            ("ModifyTable", _) => self.operation.clone().unwrap_or_else(|| nt.to_string()),
            _ => nt.to_string(),
        };
        if let Some(jt) = self.join_type.as_deref() {
            if jt != "Inner" && is_join_type(nt) {
                base = match nt {
                    "Nested Loop" => format!("Nested Loop {jt} Join"),
                    "Hash Join" => format!("Hash {jt} Join"),
                    _ => format!("Merge {jt} Join"),
                };
            }
        }
        match self.partial_mode.as_deref() {
            Some("Partial") => base = format!("Partial {base}"),
            Some("Finalize") => base = format!("Finalize {base}"),
            _ => {}
        }
        if self.parallel_aware {
            base = format!("Parallel {base}");
        }
        base
    }

    /// Base name of what the node reads (relation, CTE or function), unqualified.
    fn target_base(&self) -> Option<&str> {
        self.relation_name
            .as_deref()
            .or(self.cte_name.as_deref())
            .or(self.function_name.as_deref())
    }

    /// Alias when it differs from the target's base name.
    pub(super) fn shown_alias(&self) -> Option<&str> {
        let alias = self.alias.as_deref()?;
        if Some(alias) == self.target_base() {
            None
        } else {
            Some(alias)
        }
    }

    /// "Seq Scan on shop.orders o", "Index Only Scan using orders_tenant_created_idx
    /// on shop.orders", "Bitmap Index Scan on orders_customer_idx", "Hash Join",
    /// "Insert on order_audit", "HashAggregate".
    pub fn label(&self) -> String {
        self.label_with(self.method(), false)
    }

    pub(super) fn label_with(&self, method: String, strip_schema: bool) -> String {
        let mut s = method;
        let target = if strip_schema {
            self.relation_name.as_deref()
        } else {
            self.relation.as_deref()
        }
        .or(self.cte_name.as_deref())
        .or(self.function_name.as_deref());
        if let Some(idx) = self.index_name.as_deref() {
            s.push_str(if target.is_some() { " using " } else { " on " });
            s.push_str(idx);
        }
        if let Some(t) = target {
            s.push_str(" on ");
            s.push_str(t);
            if let Some(a) = self.shown_alias() {
                s.push(' ');
                s.push_str(a);
            }
        } else if self.index_name.is_none() && self.node_type.ends_with("Scan") {
            if let Some(a) = self.alias.as_deref() {
                s.push_str(" on ");
                s.push_str(a);
            }
        }
        s
    }
}

impl ExplainResult {
    /// Number of plan nodes.
    pub fn node_count(&self) -> usize {
        let mut n = 0;
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            n += 1;
            stack.extend(node.children.iter());
        }
        n
    }
}
