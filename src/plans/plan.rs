//! Plan evidence from PostgreSQL `EXPLAIN (ANALYZE, BUFFERS, SETTINGS, FORMAT JSON)`.
//!
//! The module turns the JSON text that PostgreSQL prints into a typed tree
//! ([`parse_explain_json`]) and derives evidence from it: a pre-order
//! flattening ([`flatten`]), per-node estimate errors with the node where a
//! misestimate originates ([`estimate_gaps`]), and a structural comparison of
//! two plans of the same statement ([`diff_plans`]).
//!
//! Nothing here panics on user data: every lookup into the JSON is checked,
//! numbers of the wrong type are read as absent, and structural problems come
//! back as [`PlanError`].
//!
//! # Format differences between majors (observed in `fixtures/`, captured from
//! # 15.20, 16.15, 17.11 and 18.6)
//!
//! * **PG18** prints `"Actual Rows"` with two decimals (`780.00`, `0.43`): the
//!   per-loop average is no longer rounded. PG15-17 print integers, so a
//!   nested-loop inner side averaging 3/7 rows shows `"Actual Rows": 0` there
//!   and `0.43` on 18 (`fixtures/pg*_fractional_rows.json`). Never-executed
//!   nodes print an integer `0` on every version, 18 included.
//! * **PG18** adds `"Disabled": false|true` to every node and `"Index Searches"`
//!   to index, index-only and bitmap-index scans. Neither exists on 15-17.
//! * **PG17+** name initplans `"InitPlan 2"` and reference their output as
//!   `(InitPlan 2).col1`; PG15/16 print `"InitPlan 2 (returns $1)"` and `$1`.
//! * `"Settings"` is always present with `SETTINGS`, as an empty object when no
//!   planner setting differs from its default. PG15 orders the keys
//!   alphabetically, PG16+ in GUC-table order (we store them in a `BTreeMap`).
//!   Values are always JSON strings (`"work_mem": "16MB"`).
//! * Every version prints `"Planning"` (buffers used by the planner) and an
//!   empty `"Triggers": []` when no trigger fired; a fired trigger is
//!   `{"Trigger Name", "Relation", "Time", "Calls"}` (plus `"Constraint Name"`
//!   for constraint triggers).
//! * With `TIMING OFF` the `"Actual Startup Time"`/`"Actual Total Time"` keys
//!   are absent while rows and loops stay; `"Planning Time"` and
//!   `"Execution Time"` are still printed.
//! * Never-executed nodes (JSON format) keep `"Actual Startup Time": 0.000`,
//!   `"Actual Total Time": 0.000` and report `"Actual Loops": 0`.
//! * `"Schema"` (and `"Output"`) only appear with `VERBOSE`; without it
//!   `"Relation Name"` is unqualified.
//! * All versions use the same key names for costs, rows and buffers
//!   (`"Shared Hit Blocks"`, ...); buffers are inclusive of child nodes.

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use crate::infra::json::JsonError;
pub use crate::infra::json::{MAX_JSON_DEPTH, MAX_PLAN_DEPTH};

/// Parse plan JSON as deep as [`MAX_JSON_DEPTH`] (see [`crate::infra::json`]).
pub fn parse_json_deep(text: &str) -> Result<Value, PlanError> {
    crate::infra::json::parse_deep(text).map_err(PlanError::from)
}

impl From<JsonError> for PlanError {
    fn from(e: JsonError) -> Self {
        match e {
            JsonError::Syntax {
                line,
                column,
                message,
            } => PlanError::Json {
                line,
                column,
                message,
            },
            JsonError::TooDeep { limit } => PlanError::TooDeep { limit },
        }
    }
}

/// Why a text could not be read as an EXPLAIN JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// The text is not valid JSON.
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    /// Empty text, or an empty top-level array.
    Empty,
    /// Valid JSON without a `"Plan"` object where one was expected.
    NoPlan(String),
    /// A required key is missing.
    MissingField { path: String, field: &'static str },
    /// A key has a JSON type that cannot be used.
    WrongType {
        path: String,
        field: &'static str,
        expected: &'static str,
    },
    /// The plan tree nests deeper than [`MAX_PLAN_DEPTH`].
    TooDeep { limit: usize },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Json {
                line,
                column,
                message,
            } => write!(
                f,
                "EXPLAIN output is not valid JSON (line {line}, column {column}): {message}"
            ),
            PlanError::Empty => write!(f, "EXPLAIN output is empty"),
            PlanError::NoPlan(what) => write!(
                f,
                "EXPLAIN output has no \"Plan\" object: found {what}; expected the output of EXPLAIN (FORMAT JSON)"
            ),
            PlanError::MissingField { path, field } => {
                write!(f, "plan node at {path} has no \"{field}\"")
            }
            PlanError::WrongType {
                path,
                field,
                expected,
            } => write!(f, "\"{field}\" at {path} should be {expected}"),
            PlanError::TooDeep { limit } => {
                write!(f, "plan tree nests deeper than {limit} levels")
            }
        }
    }
}

impl std::error::Error for PlanError {}

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
    /// ("Filter", "..."), ("Index Cond", ...), ("Hash Cond", ...), ...
    pub conditions: Vec<(String, String)>,
    pub children: Vec<PlanNode>,
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
}

/// Keys read into [`PlanNode::conditions`], in this order.
const CONDITION_KEYS: [&str; 10] = [
    "Index Cond",
    "Recheck Cond",
    "TID Cond",
    "Merge Cond",
    "Hash Cond",
    "Join Filter",
    "Filter",
    "One-Time Filter",
    "Run Condition",
    "Order By",
];

/// Parse the output of `EXPLAIN (ANALYZE, BUFFERS, SETTINGS, FORMAT JSON)`.
///
/// Accepts the array form `[ { "Plan": ... } ]` (the first statement is used),
/// a bare object `{ "Plan": ... }`, and a row object `{"QUERY PLAN": [...]}`
/// as client tools export it. Numbers of the wrong JSON type read as absent.
pub fn parse_explain_json(text: &str) -> Result<ExplainResult, PlanError> {
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Err(PlanError::Empty);
    }
    let value = parse_json_deep(trimmed)?;
    let top = find_top(&value, 0)?;
    parse_top(top)
}

/// Parse an already-decoded EXPLAIN JSON document (what the server returned as `json`).
pub fn parse_explain_value(value: &Value) -> Result<ExplainResult, PlanError> {
    let top = find_top(value, 0)?;
    parse_top(top)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn find_top(v: &Value, hops: usize) -> Result<&Map<String, Value>, PlanError> {
    if hops > 4 {
        return Err(PlanError::NoPlan("nested arrays".to_string()));
    }
    match v {
        Value::Array(items) => match items.first() {
            None => Err(PlanError::Empty),
            Some(first) => find_top(first, hops + 1),
        },
        Value::Object(map) => {
            if map.contains_key("Plan") {
                Ok(map)
            } else if let Some(inner) = map.get("QUERY PLAN") {
                find_top(inner, hops + 1)
            } else {
                Err(PlanError::NoPlan(
                    "an object without a \"Plan\" key".to_string(),
                ))
            }
        }
        other => Err(PlanError::NoPlan(json_type(other).to_string())),
    }
}

fn parse_top(top: &Map<String, Value>) -> Result<ExplainResult, PlanError> {
    let plan = match top.get("Plan") {
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(PlanError::WrongType {
                path: "$".to_string(),
                field: "Plan",
                expected: "an object",
            })
        }
        None => {
            return Err(PlanError::MissingField {
                path: "$".to_string(),
                field: "Plan",
            })
        }
    };
    let root = parse_node(plan, "Plan", 0)?;

    let mut settings = BTreeMap::new();
    if let Some(Value::Object(s)) = top.get("Settings") {
        for (k, v) in s {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            settings.insert(k.clone(), text);
        }
    }

    let mut triggers = Vec::new();
    if let Some(Value::Array(items)) = top.get("Triggers") {
        for item in items {
            if let Value::Object(t) = item {
                triggers.push(TriggerTime {
                    trigger_name: text(t, "Trigger Name").unwrap_or_default(),
                    constraint_name: text(t, "Constraint Name"),
                    relation: text(t, "Relation"),
                    time: num(t, "Time"),
                    calls: num(t, "Calls"),
                });
            }
        }
    }

    let (planning_shared_hit, planning_shared_read) = match top.get("Planning") {
        Some(Value::Object(p)) => (int(p, "Shared Hit Blocks"), int(p, "Shared Read Blocks")),
        _ => (None, None),
    };

    Ok(ExplainResult {
        root,
        planning_time: num(top, "Planning Time"),
        execution_time: num(top, "Execution Time"),
        settings,
        triggers,
        planning_shared_hit,
        planning_shared_read,
    })
}

fn parse_node(m: &Map<String, Value>, path: &str, depth: usize) -> Result<PlanNode, PlanError> {
    if depth > MAX_PLAN_DEPTH {
        return Err(PlanError::TooDeep {
            limit: MAX_PLAN_DEPTH,
        });
    }
    let node_type = match m.get("Node Type") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(PlanError::WrongType {
                path: path.to_string(),
                field: "Node Type",
                expected: "a string",
            })
        }
        None => {
            return Err(PlanError::MissingField {
                path: path.to_string(),
                field: "Node Type",
            })
        }
    };

    let mut children = Vec::new();
    match m.get("Plans") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let child_path = format!("{path}.Plans[{i}]");
                match item {
                    Value::Object(cm) => children.push(parse_node(cm, &child_path, depth + 1)?),
                    _ => {
                        return Err(PlanError::WrongType {
                            path: child_path,
                            field: "Plans",
                            expected: "an array of objects",
                        })
                    }
                }
            }
        }
        Some(_) => {
            return Err(PlanError::WrongType {
                path: path.to_string(),
                field: "Plans",
                expected: "an array",
            })
        }
    }

    let relation_name = text(m, "Relation Name");
    let schema = text(m, "Schema");
    let relation = match (&schema, &relation_name) {
        (Some(s), Some(r)) => Some(format!("{s}.{r}")),
        (None, Some(r)) => Some(r.clone()),
        _ => None,
    };
    let conditions = CONDITION_KEYS
        .iter()
        .filter_map(|k| text(m, k).map(|v| ((*k).to_string(), v)))
        .collect();

    Ok(PlanNode {
        node_type,
        relation,
        relation_name,
        schema,
        alias: text(m, "Alias"),
        index_name: text(m, "Index Name"),
        join_type: text(m, "Join Type"),
        parent_relationship: text(m, "Parent Relationship"),
        subplan_name: text(m, "Subplan Name"),
        strategy: text(m, "Strategy"),
        partial_mode: text(m, "Partial Mode"),
        operation: text(m, "Operation"),
        cte_name: text(m, "CTE Name"),
        function_name: text(m, "Function Name").or_else(|| text(m, "Table Function Name")),
        parallel_aware: matches!(m.get("Parallel Aware"), Some(Value::Bool(true))),
        disabled: match m.get("Disabled") {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        },
        startup_cost: num(m, "Startup Cost").unwrap_or(0.0),
        total_cost: num(m, "Total Cost").unwrap_or(0.0),
        plan_rows: num(m, "Plan Rows").unwrap_or(0.0),
        actual_rows: num(m, "Actual Rows"),
        actual_loops: num(m, "Actual Loops"),
        actual_startup_time: num(m, "Actual Startup Time"),
        actual_total_time: num(m, "Actual Total Time"),
        shared_hit: int(m, "Shared Hit Blocks"),
        shared_read: int(m, "Shared Read Blocks"),
        shared_dirtied: int(m, "Shared Dirtied Blocks"),
        shared_written: int(m, "Shared Written Blocks"),
        temp_read: int(m, "Temp Read Blocks"),
        temp_written: int(m, "Temp Written Blocks"),
        rows_removed_by_filter: num(m, "Rows Removed by Filter"),
        rows_removed_by_join_filter: num(m, "Rows Removed by Join Filter"),
        index_searches: int(m, "Index Searches"),
        heap_fetches: int(m, "Heap Fetches"),
        workers_planned: int(m, "Workers Planned"),
        workers_launched: int(m, "Workers Launched"),
        conditions,
        children,
    })
}

fn text(m: &Map<String, Value>, key: &str) -> Option<String> {
    match m.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// A finite number; numeric strings are accepted too.
fn num(m: &Map<String, Value>, key: &str) -> Option<f64> {
    match m.get(key)? {
        Value::Number(n) => n.as_f64().filter(|f| f.is_finite()),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn int(m: &Map<String, Value>, key: &str) -> Option<i64> {
    match m.get(key)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(whole_to_i64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(whole_to_i64))
        }
        _ => None,
    }
}

fn whole_to_i64(f: f64) -> Option<i64> {
    // 9.2e18 is below i64::MAX (9.223e18), so the cast cannot saturate.
    if f.is_finite() && f.fract() == 0.0 && (-9.2e18..=9.2e18).contains(&f) {
        Some(f as i64)
    } else {
        None
    }
}

fn is_join_type(node_type: &str) -> bool {
    matches!(node_type, "Nested Loop" | "Hash Join" | "Merge Join")
}

/// Bitmap index nodes are folded into the Bitmap Heap Scan above them by the diff.
fn is_bitmap_index_part(node_type: &str) -> bool {
    matches!(node_type, "Bitmap Index Scan" | "BitmapAnd" | "BitmapOr")
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
    fn shown_alias(&self) -> Option<&str> {
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

    fn label_with(&self, method: String, strip_schema: bool) -> String {
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

/// A node of [`flatten`]'s pre-order listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlatNode<'a> {
    /// 0-based pre-order position.
    pub id: usize,
    pub parent: Option<usize>,
    /// 0 for the root.
    pub depth: usize,
    /// Ids of the direct children, in plan order.
    pub children: Vec<usize>,
    pub node: &'a PlanNode,
}

impl FlatNode<'_> {
    /// See [`PlanNode::label`].
    pub fn label(&self) -> String {
        self.node.label()
    }
}

/// Pre-order listing of the plan (a node's descendants follow it contiguously).
pub fn flatten(plan: &ExplainResult) -> Vec<FlatNode<'_>> {
    let mut out: Vec<FlatNode<'_>> = Vec::new();
    let mut stack: Vec<(&PlanNode, Option<usize>, usize)> = vec![(&plan.root, None, 0)];
    while let Some((node, parent, depth)) = stack.pop() {
        let id = out.len();
        if let Some(p) = parent.and_then(|p| out.get_mut(p)) {
            p.children.push(id);
        }
        out.push(FlatNode {
            id,
            parent,
            depth,
            children: Vec::new(),
            node,
        });
        for child in node.children.iter().rev() {
            stack.push((child, Some(id), depth + 1));
        }
    }
    out
}

/// Does this node consume its whole input before returning a row? A LIMIT above
/// such a node does not cut the nodes below it short.
fn is_blocking(n: &PlanNode) -> bool {
    match n.node_type.as_str() {
        "Sort" | "Hash" | "Materialize" | "SetOp" | "WindowAgg" | "Memoize" => true,
        "Aggregate" => !matches!(n.strategy.as_deref(), Some("Sorted")),
        _ => false,
    }
}

/// For each node: is it read through a LIMIT with only streaming nodes in
/// between, so that it legitimately returns fewer rows than estimated?
pub fn cut_short_by_limit(flat: &[FlatNode<'_>]) -> Vec<bool> {
    let mut out = vec![false; flat.len()];
    for f in flat {
        let mut cur = f.parent;
        let mut hops = 0usize;
        while let Some(pid) = cur {
            hops += 1;
            let Some(p) = flat.get(pid) else { break };
            if p.node.node_type == "Limit" {
                if let Some(slot) = out.get_mut(f.id) {
                    *slot = true;
                }
                break;
            }
            if is_blocking(p.node) || hops > MAX_PLAN_DEPTH {
                break;
            }
            cur = p.parent;
        }
    }
    out
}

/// Wall-clock share of a node's time: under a Gather, PostgreSQL reports the
/// average per process and counts loops over all processes, so time × loops is
/// CPU time; divide by the number of processes (workers + leader).
pub fn parallel_divisor(flat: &[FlatNode<'_>], id: usize) -> f64 {
    let mut cur = flat.get(id).and_then(|f| f.parent);
    let mut hops = 0usize;
    while let Some(pid) = cur {
        hops += 1;
        let Some(p) = flat.get(pid) else { break };
        if matches!(p.node.node_type.as_str(), "Gather" | "Gather Merge") {
            let workers = p
                .node
                .workers_launched
                .or(p.node.workers_planned)
                .unwrap_or(0)
                .max(0);
            return (workers + 1) as f64;
        }
        if hops > MAX_PLAN_DEPTH {
            break;
        }
        cur = p.parent;
    }
    1.0
}

/// Inclusive wall-clock time of a flattened node in ms (see [`parallel_divisor`]).
pub fn wall_time_ms(flat: &[FlatNode<'_>], id: usize) -> Option<f64> {
    flat.get(id)
        .and_then(|f| f.node.total_time_ms())
        .map(|t| t / parallel_divisor(flat, id))
}

/// Subtree size (node included) for each id of a pre-order listing.
fn subtree_sizes(flat: &[FlatNode<'_>]) -> Vec<usize> {
    let mut sizes = vec![1usize; flat.len()];
    for f in flat.iter().rev() {
        let own = sizes.get(f.id).copied().unwrap_or(1);
        if let Some(p) = f.parent.and_then(|p| sizes.get_mut(p)) {
            *p += own;
        }
    }
    sizes
}

/// Which way the planner was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Direction {
    /// The planner estimated fewer rows than came out.
    Under,
    /// The planner estimated more rows than came out.
    Over,
    Exact,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Under => "under",
            Direction::Over => "over",
            Direction::Exact => "exact",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Row counts below one (0, fractions, negatives, NaN) count as one row, as
/// PostgreSQL clamps its estimates to at least one; infinities are capped.
fn clamp_rows(v: f64) -> f64 {
    if v.is_nan() || v < 1.0 {
        1.0
    } else if v > f64::MAX {
        f64::MAX
    } else {
        v
    }
}

/// q-error `max(est/act, act/est)` (always `>= 1` and finite) and direction.
pub fn q_error(estimated: f64, actual: f64) -> (f64, Direction) {
    let e = clamp_rows(estimated);
    let a = clamp_rows(actual);
    let (q, dir) = if e < a {
        (a / e, Direction::Under)
    } else if e > a {
        (e / a, Direction::Over)
    } else {
        (1.0, Direction::Exact)
    };
    (q.max(1.0), dir)
}

/// One row of [`estimate_gaps`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapRow {
    pub id: usize,
    pub parent: Option<usize>,
    pub depth: usize,
    /// [`PlanNode::label`].
    pub node: String,
    pub relation: Option<String>,
    /// `plan_rows × loops`.
    pub est_rows: f64,
    /// `actual_rows × loops`.
    pub actual_rows: Option<f64>,
    pub loops: Option<f64>,
    /// None when the node never ran (loops 0) or has no actuals.
    pub q_error: Option<f64>,
    pub direction: Option<Direction>,
    /// `q_error >= threshold`.
    pub flagged: bool,
    /// Flagged, with no flagged node below: the misestimate starts here.
    pub root_cause: bool,
    /// For flagged nodes that are not root causes: the root-cause ids below them.
    pub inherits_from: Vec<usize>,
    /// Read through a LIMIT (streaming nodes only in between): fewer actual rows
    /// than estimated is expected there, so an over-estimate is not flagged.
    pub cut_short: bool,
}

/// Per-node estimate vs actual rows (totals over loops), flagging nodes whose
/// q-error reaches `threshold` and marking where each misestimate originates.
pub fn estimate_gaps(plan: &ExplainResult, threshold: f64) -> Vec<GapRow> {
    let flat = flatten(plan);
    let cut = cut_short_by_limit(&flat);
    let mut rows: Vec<GapRow> = flat
        .iter()
        .map(|f| {
            let n = f.node;
            let cut_short = cut.get(f.id).copied().unwrap_or(false);
            let est = n.total_est_rows();
            let actual = n.total_actual_rows();
            let (q, dir) = if n.executed() {
                let (q, d) = q_error(est, actual.unwrap_or(0.0));
                (Some(q), Some(d))
            } else {
                (None, None)
            };
            GapRow {
                id: f.id,
                parent: f.parent,
                depth: f.depth,
                node: n.label(),
                relation: n.relation.clone(),
                est_rows: est,
                actual_rows: actual,
                loops: n.actual_loops,
                q_error: q,
                direction: dir,
                flagged: q.is_some_and(|q| q >= threshold)
                    && !(cut_short && dir == Some(Direction::Over)),
                root_cause: false,
                inherits_from: Vec::new(),
                cut_short,
            }
        })
        .collect();

    // Reverse pre-order visits children before parents.
    let mut flagged_below = vec![false; rows.len()];
    for f in flat.iter().rev() {
        let below = flagged_below.get(f.id).copied().unwrap_or(false);
        let own = rows.get(f.id).is_some_and(|r| r.flagged);
        if let Some(r) = rows.get_mut(f.id) {
            r.root_cause = own && !below;
        }
        if let Some(p) = f.parent.and_then(|p| flagged_below.get_mut(p)) {
            *p = *p || below || own;
        }
    }
    let sizes = subtree_sizes(&flat);
    let causes: Vec<usize> = rows.iter().filter(|r| r.root_cause).map(|r| r.id).collect();
    for r in rows.iter_mut() {
        if r.flagged && !r.root_cause {
            let end = r.id + sizes.get(r.id).copied().unwrap_or(1);
            r.inherits_from = causes
                .iter()
                .copied()
                .filter(|c| *c > r.id && *c < end)
                .collect();
        }
    }
    rows
}

/// One row of [`diff_plans`]; plain fields so a SQL layer can emit columns.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DiffRow {
    /// "statement" | "scan" | "join" | "other".
    pub kind: String,
    /// Alignment key: "statement", "shop.orders o", "join(customers c, orders o)", ...
    pub key: String,
    /// "scan method", "join method", "join order", "join type", "method",
    /// "added", "removed", "timing"; several joined by ", ". For the statement
    /// row: "plan changed", "timing" or "unchanged".
    pub change: String,
    pub before_op: Option<String>,
    pub after_op: Option<String>,
    /// Node: actual total time × loops. Statement: execution time.
    pub before_ms: Option<f64>,
    pub after_ms: Option<f64>,
    /// before_ms / after_ms; None when either is missing or after is 0.
    pub speedup: Option<f64>,
    /// Statement row only.
    pub before_planning_ms: Option<f64>,
    pub after_planning_ms: Option<f64>,
    pub before_hit: Option<i64>,
    pub after_hit: Option<i64>,
    pub before_read: Option<i64>,
    pub after_read: Option<i64>,
    pub before_est_rows: Option<f64>,
    pub after_est_rows: Option<f64>,
    pub before_actual_rows: Option<f64>,
    pub after_actual_rows: Option<f64>,
}

/// When an aligned node with unchanged structure gets a "timing" row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiffOptions {
    /// Slower or faster by at least this factor ...
    pub timing_ratio: f64,
    /// ... and by at least this many ms.
    pub timing_min_delta_ms: f64,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            timing_ratio: 2.0,
            timing_min_delta_ms: 0.1,
        }
    }
}

/// A node as the diff sees it.
struct Entry {
    key: String,
    kind: &'static str,
    node_type: String,
    join_type: Option<String>,
    op: String,
    outer: Option<BTreeSet<String>>,
    ms: Option<f64>,
    hit: Option<i64>,
    read: Option<i64>,
    est: f64,
    actual: Option<f64>,
}

/// Identity of a scanned object: target (qualified unless `strip`) plus alias
/// when it differs from the target's name.
fn scan_ident(n: &PlanNode, strip: bool) -> Option<String> {
    let target = if strip {
        n.relation_name.as_deref()
    } else {
        n.relation.as_deref()
    }
    .or(n.cte_name.as_deref())
    .or(n.function_name.as_deref())?;
    Some(match n.shown_alias() {
        Some(a) => format!("{target} {a}"),
        None => target.to_string(),
    })
}

fn is_scan(n: &PlanNode) -> bool {
    n.node_type.ends_with("Scan")
        && !is_bitmap_index_part(&n.node_type)
        && (n.relation_name.is_some() || n.cte_name.is_some() || n.function_name.is_some())
}

fn role_of(node_type: &str) -> String {
    match node_type {
        "Nested Loop" | "Hash Join" | "Merge Join" => "join",
        "Aggregate" | "Group" => "aggregate",
        "Sort" | "Incremental Sort" => "sort",
        "Materialize" | "Memoize" => "materialize",
        "Gather" | "Gather Merge" => "gather",
        "Append" | "Merge Append" => "append",
        "SetOp" | "HashSetOp" => "setop",
        "ModifyTable" => "modify",
        other => return other.to_ascii_lowercase(),
    }
    .to_string()
}

fn diff_entries(plan: &ExplainResult, strip: bool) -> Vec<Entry> {
    let flat = flatten(plan);
    let sizes = subtree_sizes(&flat);
    let mut relsets: Vec<BTreeSet<String>> = vec![BTreeSet::new(); flat.len()];
    for f in flat.iter().rev() {
        let mut set = std::mem::take(relsets.get_mut(f.id).unwrap_or(&mut BTreeSet::new()));
        if is_scan(f.node) {
            if let Some(id) = scan_ident(f.node, strip) {
                set.insert(id);
            }
        }
        if let Some(p) = f.parent.and_then(|p| relsets.get_mut(p)) {
            p.extend(set.iter().cloned());
        }
        if let Some(slot) = relsets.get_mut(f.id) {
            *slot = set;
        }
    }

    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for f in &flat {
        let n = f.node;
        if is_bitmap_index_part(&n.node_type) {
            continue;
        }
        let rels = relsets.get(f.id).cloned().unwrap_or_default();
        let (base, kind, op) = if is_scan(n) {
            let ident = scan_ident(n, strip).unwrap_or_default();
            let mut method = n.method();
            if n.node_type == "Bitmap Heap Scan" {
                let end = f.id + sizes.get(f.id).copied().unwrap_or(1);
                let idx: Vec<&str> = flat
                    .get(f.id + 1..end)
                    .unwrap_or(&[])
                    .iter()
                    .filter(|d| d.node.node_type == "Bitmap Index Scan")
                    .filter_map(|d| d.node.index_name.as_deref())
                    .collect();
                if !idx.is_empty() {
                    method = format!("{method} using {}", idx.join("+"));
                }
            }
            (ident, "scan", n.label_with(method, strip))
        } else {
            let role = role_of(&n.node_type);
            let kind = if role == "join" { "join" } else { "other" };
            let base = match scan_ident(n, strip) {
                // ModifyTable: keyed by its target table.
                Some(target) => format!("{role} {target}"),
                None => {
                    let list: Vec<&str> = rels.iter().map(String::as_str).collect();
                    format!("{role}({})", list.join(", "))
                }
            };
            (base, kind, n.label_with(n.method(), strip))
        };
        let count = seen.entry(base.clone()).or_insert(0);
        *count += 1;
        let key = if *count == 1 {
            base
        } else {
            format!("{base} #{count}")
        };
        let outer = if kind == "join" {
            let outer_child = f
                .children
                .iter()
                .copied()
                .find(|c| {
                    flat.get(*c)
                        .and_then(|x| x.node.parent_relationship.as_deref())
                        == Some("Outer")
                })
                .or_else(|| {
                    f.children.iter().copied().find(|c| {
                        !matches!(
                            flat.get(*c)
                                .and_then(|x| x.node.parent_relationship.as_deref()),
                            Some("InitPlan") | Some("SubPlan")
                        )
                    })
                });
            outer_child.and_then(|c| relsets.get(c).cloned())
        } else {
            None
        };
        out.push(Entry {
            key,
            kind,
            node_type: n.node_type.clone(),
            join_type: n.join_type.clone(),
            op,
            outer,
            ms: wall_time_ms(&flat, f.id),
            hit: n.shared_hit,
            read: n.shared_read,
            est: n.total_est_rows(),
            actual: n.total_actual_rows(),
        });
    }
    out
}

fn speedup(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) if a > 0.0 && b >= 0.0 => Some(b / a).filter(|s| s.is_finite()),
        _ => None,
    }
}

fn timing_changed(before: Option<f64>, after: Option<f64>, opts: &DiffOptions) -> bool {
    match (before, after) {
        (Some(b), Some(a)) => {
            let (lo, hi) = if b < a { (b, a) } else { (a, b) };
            let delta_ok = hi - lo >= opts.timing_min_delta_ms;
            let ratio_ok = if lo > 0.0 {
                hi / lo >= opts.timing_ratio
            } else {
                hi > 0.0
            };
            delta_ok && ratio_ok
        }
        _ => false,
    }
}

fn node_row(
    kind: &str,
    key: &str,
    change: String,
    b: Option<&Entry>,
    a: Option<&Entry>,
) -> DiffRow {
    let before_ms = b.and_then(|e| e.ms);
    let after_ms = a.and_then(|e| e.ms);
    DiffRow {
        kind: kind.to_string(),
        key: key.to_string(),
        change,
        before_op: b.map(|e| e.op.clone()),
        after_op: a.map(|e| e.op.clone()),
        before_ms,
        after_ms,
        speedup: speedup(before_ms, after_ms),
        before_planning_ms: None,
        after_planning_ms: None,
        before_hit: b.and_then(|e| e.hit),
        after_hit: a.and_then(|e| e.hit),
        before_read: b.and_then(|e| e.read),
        after_read: a.and_then(|e| e.read),
        before_est_rows: b.map(|e| e.est),
        after_est_rows: a.map(|e| e.est),
        before_actual_rows: b.and_then(|e| e.actual),
        after_actual_rows: a.and_then(|e| e.actual),
    }
}

/// "HashAggregate (5 nodes: Seq Scan x2, Aggregate x1, Hash x1, ...)".
pub fn plan_shape(plan: &ExplainResult) -> String {
    let flat = flatten(plan);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &flat {
        *counts.entry(f.node.node_type.as_str()).or_insert(0) += 1;
    }
    let mut by_count: Vec<(&str, usize)> = counts.into_iter().collect();
    by_count.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
    let mut parts: Vec<String> = by_count
        .iter()
        .take(3)
        .map(|(t, c)| format!("{t} x{c}"))
        .collect();
    if by_count.len() > 3 {
        parts.push("...".to_string());
    }
    format!(
        "{} ({} nodes: {})",
        plan.root.label(),
        flat.len(),
        parts.join(", ")
    )
}

/// [`diff_plans_with`] with [`DiffOptions::default`].
pub fn diff_plans(before: &ExplainResult, after: &ExplainResult) -> Vec<DiffRow> {
    diff_plans_with(before, after, &DiffOptions::default())
}

/// Align the nodes of two plans of one statement by what they read, not by
/// their text, and report what changed. Scans are keyed by (relation, alias,
/// occurrence); other nodes by their role ("join", "aggregate", "hash", ...)
/// over the sorted set of relations beneath them, plus occurrence. Bitmap
/// index nodes are folded into their Bitmap Heap Scan. The first row is the
/// statement summary; then changed/removed nodes in the before plan's order,
/// then added nodes in the after plan's order.
pub fn diff_plans_with(
    before: &ExplainResult,
    after: &ExplainResult,
    opts: &DiffOptions,
) -> Vec<DiffRow> {
    let qualified = |p: &ExplainResult| flatten(p).iter().any(|f| f.node.schema.is_some());
    // Compare unqualified names when only one side was captured with VERBOSE.
    let strip = qualified(before) != qualified(after);
    let b_entries = diff_entries(before, strip);
    let a_entries = diff_entries(after, strip);
    let a_index: HashMap<&str, usize> = a_entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.key.as_str(), i))
        .collect();
    let mut a_used = vec![false; a_entries.len()];

    let mut rows = Vec::new();
    let mut structural = false;
    for b in &b_entries {
        let matched = a_index.get(b.key.as_str()).copied();
        let a = matched.and_then(|i| a_entries.get(i));
        if let Some(slot) = matched.and_then(|i| a_used.get_mut(i)) {
            *slot = true;
        }
        let Some(a) = a else {
            structural = true;
            rows.push(node_row(
                b.kind,
                &b.key,
                "removed".to_string(),
                Some(b),
                None,
            ));
            continue;
        };
        let mut changes: Vec<&str> = Vec::new();
        match b.kind {
            "scan" => {
                if b.op != a.op {
                    changes.push("scan method");
                }
            }
            "join" => {
                if b.node_type != a.node_type {
                    changes.push("join method");
                }
                if b.outer.is_some() && a.outer.is_some() && b.outer != a.outer {
                    changes.push("join order");
                }
                if changes.is_empty() && b.join_type != a.join_type {
                    changes.push("join type");
                }
            }
            _ => {
                if b.op != a.op {
                    changes.push("method");
                }
            }
        }
        if !changes.is_empty() {
            structural = true;
        } else if timing_changed(b.ms, a.ms, opts) {
            changes.push("timing");
        }
        if !changes.is_empty() {
            rows.push(node_row(
                b.kind,
                &b.key,
                changes.join(", "),
                Some(b),
                Some(a),
            ));
        }
    }
    for (a, used) in a_entries.iter().zip(a_used.iter()) {
        if !used {
            structural = true;
            rows.push(node_row(a.kind, &a.key, "added".to_string(), None, Some(a)));
        }
    }

    let change = if structural {
        "plan changed"
    } else if timing_changed(before.execution_time, after.execution_time, opts) {
        "timing"
    } else {
        "unchanged"
    };
    let statement = DiffRow {
        kind: "statement".to_string(),
        key: "statement".to_string(),
        change: change.to_string(),
        before_op: Some(plan_shape(before)),
        after_op: Some(plan_shape(after)),
        before_ms: before.execution_time,
        after_ms: after.execution_time,
        speedup: speedup(before.execution_time, after.execution_time),
        before_planning_ms: before.planning_time,
        after_planning_ms: after.planning_time,
        before_hit: before.root.shared_hit,
        after_hit: after.root.shared_hit,
        before_read: before.root.shared_read,
        after_read: after.root.shared_read,
        before_est_rows: Some(before.root.total_est_rows()),
        after_est_rows: Some(after.root.total_est_rows()),
        before_actual_rows: before.root.total_actual_rows(),
        after_actual_rows: after.root.total_actual_rows(),
    };
    let mut out = Vec::with_capacity(rows.len() + 1);
    out.push(statement);
    out.extend(rows);
    out
}

/// Median of the non-NaN values (sorts the slice); None when there are none.
pub fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(|a, b| a.total_cmp(b));
    // total_cmp puts -NaN first and +NaN last, so the numbers are contiguous.
    let start = values.iter().position(|v| !v.is_nan())?;
    let end = values.iter().rposition(|v| !v.is_nan())? + 1;
    let nums = values.get(start..end)?;
    let mid = nums.len() / 2;
    if nums.len() % 2 == 1 {
        nums.get(mid).copied()
    } else {
        let lo = *nums.get(mid.checked_sub(1)?)?;
        let hi = *nums.get(mid)?;
        // Halve first so two huge values cannot overflow to infinity.
        Some(lo / 2.0 + hi / 2.0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn limit_cuts_streaming_children_short_but_not_through_a_sort() {
        let json = r#"[{"Plan": {"Node Type": "Limit", "Plan Rows": 20, "Actual Rows": 20, "Actual Loops": 1,
            "Plans": [{"Node Type": "Index Scan", "Relation Name": "orders", "Index Name": "o_idx",
                       "Parent Relationship": "Outer", "Plan Rows": 200000, "Actual Rows": 20, "Actual Loops": 1}]}}]"#;
        let p = parse_explain_json(json).unwrap();
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
        let p = parse_explain_json(json).unwrap();
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
        let p = parse_explain_json(json).unwrap();
        let flat = flatten(&p);
        assert_eq!(parallel_divisor(&flat, 1), 3.0);
        assert_eq!(wall_time_ms(&flat, 1), Some(10.0));
        assert_eq!(wall_time_ms(&flat, 0), Some(12.0));
    }

    use super::*;
    use proptest::prelude::*;

    macro_rules! fx {
        ($v:literal, $name:ident) => {
            include_str!(concat!("fixtures/pg", $v, "_", stringify!($name), ".json"))
        };
    }

    macro_rules! fixture_table {
        ($($name:ident),* $(,)?) => {
            &[$((
                stringify!($name),
                [fx!("15", $name), fx!("16", $name), fx!("17", $name), fx!("18", $name)],
            )),*]
        };
    }

    const VERSIONS: [u32; 4] = [15, 16, 17, 18];

    /// Real captures: `fixtures/pgNN_<name>.json` for each name and major.
    const FIXTURES: &[(&str, [&str; 4])] = fixture_table!(
        seqscan,
        hashjoin_agg,
        hashjoin_agg_timing_off,
        nestloop_index,
        misestimate,
        fractional_rows,
        subplan,
        never_executed,
        insert_trigger,
        large_union,
        tenant_seq,
        tenant_ios,
        join_nestloop,
    );

    fn texts(name: &str) -> [&'static str; 4] {
        FIXTURES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .unwrap_or_else(|| panic!("no fixture {name}"))
    }

    fn parsed(name: &str) -> Vec<(u32, ExplainResult)> {
        VERSIONS
            .iter()
            .zip(texts(name))
            .map(|(v, t)| {
                let p = parse_explain_json(t).unwrap_or_else(|e| panic!("pg{v}_{name}: {e}"));
                (*v, p)
            })
            .collect()
    }

    fn all_texts() -> Vec<&'static str> {
        FIXTURES
            .iter()
            .flat_map(|(_, t)| t.iter().copied())
            .collect()
    }

    fn types(p: &ExplainResult) -> Vec<String> {
        flatten(p)
            .iter()
            .map(|f| f.node.node_type.clone())
            .collect()
    }

    fn labels(p: &ExplainResult) -> Vec<String> {
        flatten(p).iter().map(|f| f.label()).collect()
    }

    fn node(p: &ExplainResult, id: usize) -> &PlanNode {
        flatten(p)
            .get(id)
            .map(|f| f.node)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    // ---- fixtures -------------------------------------------------------

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
            let t = inner.total_time_ms().unwrap();
            assert!(close(t, inner.actual_total_time.unwrap() * 5.0));
        }
    }

    #[test]
    fn pg18_prints_fractional_rows_older_versions_round() {
        for (v, p) in parsed("fractional_rows") {
            let inner = node(&p, 2);
            assert_eq!(inner.node_type, "Bitmap Heap Scan");
            assert_eq!(inner.actual_loops, Some(7.0));
            assert_eq!(labels(&p)[0], "Nested Loop Left Join");
            let rows = inner.actual_rows.unwrap();
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
            let init = node(&p, 1).subplan_name.clone().unwrap();
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
            assert!(close(gaps[4].q_error.unwrap(), 150.0 / 38.0));
            assert_eq!(gaps[1].inherits_from, vec![4]);
            assert_eq!(gaps[3].inherits_from, vec![4]);
            assert!(gaps[4].inherits_from.is_empty());
            assert_eq!(gaps[0].direction, Some(Direction::Exact));
            assert!(!gaps[5].flagged, "the index scan estimate was right");
        }
    }

    // ---- q-error and estimate gaps ---------------------------------------

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

    // ---- diff -------------------------------------------------------------

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
                .unwrap()
                .starts_with("Seq Scan on shop.orders (1 nodes"));
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
            let s = r.speedup.unwrap();
            assert!(close(s, r.before_ms.unwrap() / r.after_ms.unwrap()));

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
            let j = d.iter().find(|r| r.change == "join method").unwrap();
            assert_eq!(j.before_op.as_deref(), Some("Hash Join"));
            assert_eq!(j.after_op.as_deref(), Some("Nested Loop"));
            assert_eq!(j.before_actual_rows, Some(1500.0));
            let removed = d.iter().find(|r| r.change == "removed").unwrap();
            assert!(removed.after_op.is_none() && removed.after_ms.is_none());
            assert!(removed.speedup.is_none());
            // The Memoize's inner scan runs 500 times.
            let scan = d.iter().find(|r| r.key == "customers c").unwrap();
            assert_eq!(
                scan.after_op.as_deref(),
                Some("Index Scan using customers_pkey on customers c")
            );
            assert_eq!(scan.after_actual_rows, Some(500.0));
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
        let a = parse_explain_json(SWAP_A).unwrap();
        let b = parse_explain_json(SWAP_B).unwrap();
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
        assert!(d[1].speedup.unwrap() < 0.2);
    }

    // ---- helpers and errors -------------------------------------------------

    #[test]
    fn median_helper() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0]), Some(3.0));
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut [f64::NAN, 2.0, -f64::NAN, 4.0]), Some(3.0));
        assert_eq!(median(&mut [f64::NAN]), None);
        assert_eq!(median(&mut [f64::MAX, f64::MAX]), Some(f64::MAX));
        assert_eq!(
            median(&mut [f64::NEG_INFINITY, 1.0, f64::INFINITY]),
            Some(1.0)
        );
    }

    type ErrCheck = fn(&PlanError) -> bool;

    #[test]
    fn input_forms_and_errors() {
        let bare = r#"{"Plan": {"Node Type": "Result", "Plan Rows": 1}}"#;
        assert_eq!(parse_explain_json(bare).unwrap().root.node_type, "Result");
        let row = format!(r#"[{{"QUERY PLAN": [{bare}]}}]"#);
        assert_eq!(parse_explain_json(&row).unwrap().node_count(), 1);
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
            let err = parse_explain_json(text).expect_err(text);
            assert!(check(&err), "{text:?} -> {err:?}");
            assert!(!err.to_string().is_empty());
            let _: &dyn std::error::Error = &err;
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
        let p = parse_explain_json(odd).unwrap();
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
            let p = parse_explain_json(&nested(levels)).unwrap();
            assert_eq!(p.node_count(), levels + 1);
            assert_eq!(flatten(&p).last().map(|f| f.depth), Some(levels));
            assert_eq!(diff_plans(&p, &p).len(), 1);
        }
        assert_eq!(
            crate::infra::json::depth(r#"{"a": "[[[{{", "b": [1, [2]]}"#),
            3
        );
    }

    // ---- never panics ---------------------------------------------------

    /// Run everything derived from a text; must not panic whatever it is.
    fn exercise(text: &str, other: &ExplainResult) {
        let Ok(p) = parse_explain_json(text) else {
            return;
        };
        let flat = flatten(&p);
        for f in &flat {
            let _ = f.label();
            let _ = f.node.total_time_ms();
            let _ = q_error(
                f.node.total_est_rows(),
                f.node.total_actual_rows().unwrap_or(0.0),
            );
        }
        assert_eq!(flat.len(), p.node_count());
        for threshold in [0.0, 1.0, 2.0, f64::NAN, f64::INFINITY] {
            assert_eq!(estimate_gaps(&p, threshold).len(), flat.len());
        }
        let d = diff_plans(&p, &p);
        assert_eq!(d.first().map(|r| r.kind.as_str()), Some("statement"));
        let _ = diff_plans(&p, other);
        let _ = diff_plans(other, &p);
        let _ = plan_shape(&p);
        let mut times: Vec<f64> = flat
            .iter()
            .filter_map(|f| f.node.actual_total_time)
            .collect();
        let _ = median(&mut times);
    }

    fn reference() -> ExplainResult {
        parse_explain_json(texts("misestimate")[3]).unwrap()
    }

    /// splitmix64: deterministic choices from a proptest-chosen seed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            if n == 0 {
                0
            } else {
                self.next() % n
            }
        }
    }

    fn odd_number(rng: &mut Rng, n: &serde_json::Number) -> Value {
        match rng.below(11) {
            0 => Value::String(n.to_string()),
            1 => Value::Null,
            2 => serde_json::json!(-(n.as_f64().unwrap_or(1.0)) - 1.0),
            3 => serde_json::json!(1e308),
            4 => serde_json::json!(-1e308),
            5 => serde_json::json!(u64::MAX),
            6 => serde_json::json!(i64::MIN),
            7 => serde_json::json!(0),
            8 => Value::String("NaN".into()),
            9 => Value::Bool(true),
            _ => serde_json::json!([]),
        }
    }

    /// Delete keys, replace numbers, retype strings, shuffle arrays.
    fn mutate(v: &mut Value, rng: &mut Rng, rate: u64) {
        match v {
            Value::Object(m) => {
                let keys: Vec<String> = m.keys().cloned().collect();
                for k in keys {
                    // Breaking the skeleton ends parsing early; do it rarely so
                    // most cases reach the derived functions.
                    let skeleton = matches!(k.as_str(), "Plan" | "Plans" | "Node Type");
                    let r = if skeleton { rate / 10 } else { rate };
                    if rng.below(100) < r {
                        m.remove(&k);
                    } else if let Some(child) = m.get_mut(&k) {
                        if skeleton && k == "Node Type" && rng.below(100) >= r {
                            continue;
                        }
                        mutate(child, rng, rate);
                    }
                }
            }
            Value::Array(items) => {
                if rng.below(100) < rate {
                    items.reverse();
                }
                if rng.below(100) < rate && !items.is_empty() {
                    let i = rng.below(items.len() as u64) as usize;
                    let copy = items[i].clone();
                    items.push(copy);
                }
                for item in items.iter_mut() {
                    mutate(item, rng, rate);
                }
            }
            Value::Number(n) if rng.below(100) < rate * 2 => {
                *v = odd_number(rng, n);
            }
            Value::String(_) if rng.below(100) < rate => {
                *v = match rng.below(3) {
                    0 => serde_json::json!(42),
                    1 => Value::String(String::new()),
                    _ => Value::Object(Map::new()),
                };
            }
            _ => {}
        }
    }

    #[test]
    fn most_mutations_still_parse() {
        // Guards the property tests below: they must mostly reach the
        // derived functions, not stop at a parse error.
        let all = all_texts();
        let mut ok = 0;
        let total = 400u64;
        for seed in 0..total {
            let idx = (seed as usize) % all.len();
            let mut v: Value = serde_json::from_str(all[idx]).unwrap();
            let mut rng = Rng(seed);
            mutate(&mut v, &mut rng, 1 + seed % 29);
            let text = serde_json::to_string(&v).unwrap();
            if parse_explain_json(&text).is_ok() {
                ok += 1;
            }
            exercise(&text, &reference());
        }
        assert!(ok * 2 > total, "only {ok}/{total} mutated plans parsed");
    }

    fn fixture_index() -> impl Strategy<Value = usize> {
        0..FIXTURES.len() * 4
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(192))]

        #[test]
        fn truncated_fixtures_never_panic(idx in fixture_index(), frac in 0.0f64..1.0) {
            let all = all_texts();
            let text = all[idx];
            let cut = (text.len() as f64 * frac) as usize;
            let truncated = String::from_utf8_lossy(&text.as_bytes()[..cut.min(text.len())]);
            exercise(&truncated, &reference());
        }

        #[test]
        fn byte_replaced_fixtures_never_panic(
            idx in fixture_index(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..12),
        ) {
            let all = all_texts();
            let mut bytes = all[idx].as_bytes().to_vec();
            for (pos, b) in edits {
                let at = pos % bytes.len();
                bytes[at] = b;
            }
            exercise(&String::from_utf8_lossy(&bytes), &reference());
        }

        #[test]
        fn structurally_mutated_fixtures_never_panic(
            idx in fixture_index(),
            seed in any::<u64>(),
            rate in 1u64..30,
            pretty in any::<bool>(),
        ) {
            let all = all_texts();
            let mut v: Value = serde_json::from_str(all[idx]).unwrap();
            let mut rng = Rng(seed);
            mutate(&mut v, &mut rng, rate);
            let text = if pretty {
                serde_json::to_string_pretty(&v).unwrap()
            } else {
                serde_json::to_string(&v).unwrap()
            };
            exercise(&text, &reference());
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
            exercise(&s, &reference());
            exercise(&format!("[{{\"Plan\": {{\"Node Type\": \"X\", \"Plans\": [{s}"), &reference());
        }

        #[test]
        fn q_error_is_finite_and_at_least_one(e in any::<f64>(), a in any::<f64>()) {
            let (q, d) = q_error(e, a);
            prop_assert!(q.is_finite() && q >= 1.0);
            prop_assert_eq!(d == Direction::Exact, q == 1.0);
        }

        #[test]
        fn median_lies_between_min_and_max(mut xs in proptest::collection::vec(-1e12f64..1e12, 0..40)) {
            let m = median(&mut xs);
            prop_assert_eq!(m.is_some(), !xs.is_empty());
            if let Some(m) = m {
                prop_assert!(xs[0] <= m && m <= xs[xs.len() - 1]);
            }
        }
    }
}
