//! Reading EXPLAIN JSON into the typed tree of [`super::tree`]: the text PostgreSQL
//! prints for `EXPLAIN (ANALYZE, BUFFERS, SETTINGS, FORMAT JSON)`, or the value the
//! server returned. Nothing here panics on user data: every lookup is checked, numbers
//! of the wrong type read as absent, and structural problems come back as [`PlanError`].
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

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

use super::tree::{ExplainResult, Jit, PlanNode, TriggerTime};
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
        query_text: text(top, "Query Text"),
        jit: match top.get("JIT") {
            Some(Value::Object(j)) => Some(read_jit(j)),
            _ => None,
        },
    })
}

fn read_jit(j: &Map<String, Value>) -> Jit {
    let timing = match j.get("Timing") {
        Some(Value::Object(t)) => Some(t),
        _ => None,
    };
    // PG15+ nests Generation as {"Deform", "Total"}; older majors print a number
    let t = |k: &str| {
        timing.and_then(|t| match t.get(k) {
            Some(Value::Object(o)) => num(o, "Total"),
            _ => num(t, k),
        })
    };
    Jit {
        functions: int(j, "Functions"),
        generation_ms: t("Generation"),
        inlining_ms: t("Inlining"),
        optimization_ms: t("Optimization"),
        emission_ms: t("Emission"),
        total_ms: t("Total"),
    }
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
        sort_method: text(m, "Sort Method"),
        sort_space_type: text(m, "Sort Space Type"),
        sort_space_kb: int(m, "Sort Space Used"),
        hash_buckets: int(m, "Hash Buckets"),
        hash_batches: int(m, "Hash Batches"),
        original_hash_batches: int(m, "Original Hash Batches"),
        peak_memory_kb: int(m, "Peak Memory Usage"),
        hashagg_batches: int(m, "HashAgg Batches"),
        disk_usage_kb: int(m, "Disk Usage"),
        cache_hits: int(m, "Cache Hits"),
        cache_misses: int(m, "Cache Misses"),
        cache_evictions: int(m, "Cache Evictions"),
        cache_overflows: int(m, "Cache Overflows"),
        rows_removed_by_index_recheck: num(m, "Rows Removed by Index Recheck"),
        exact_heap_blocks: int(m, "Exact Heap Blocks"),
        lossy_heap_blocks: int(m, "Lossy Heap Blocks"),
        io_read_time: num(m, "I/O Read Time").or_else(|| num(m, "Shared I/O Read Time")),
        io_write_time: num(m, "I/O Write Time").or_else(|| num(m, "Shared I/O Write Time")),
        wal_records: int(m, "WAL Records"),
        wal_fpi: int(m, "WAL FPI"),
        wal_bytes: int(m, "WAL Bytes"),
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
