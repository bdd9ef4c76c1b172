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

//!
//! # How it reads
//!
//! The plan tree is deserialized straight from the text (or from a decoded
//! [`serde_json::Value`], through the same code): keys are matched as borrowed strings,
//! only the fields the tree holds are allocated, and everything else is skipped without
//! being built. A 10,000-node plan of ~45 keys a node would otherwise be a million
//! allocations of a `Value` tree first. Problems with the plan itself (a node without
//! `"Node Type"`, `"Plans"` that is not an array) do not stop the reader: the first one
//! is kept and reported after the whole text has been read, so a syntax error anywhere
//! is reported as such, with its line and column.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

use super::tree::{ExplainResult, Jit, PlanNode, TriggerTime, WorkerStats};
use crate::infra::json::JsonError;
pub use crate::infra::json::{MAX_JSON_DEPTH, MAX_PLAN_DEPTH};

mod document;
mod node;
mod scalar;
mod workers;
use document::*;
use node::*;
use scalar::*;
use workers::*;

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

fn syntax(e: serde_json::Error) -> PlanError {
    PlanError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    }
}

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
    // every level the readers below recurse into is bounded (plan nodes by
    // MAX_PLAN_DEPTH, plan-level values by SMALL_DEPTH) and what they skip is skipped
    // without recursion, so a hostile deep document cannot exhaust the stack and needs
    // no scan of its own first
    let mut de = serde_json::Deserializer::from_str(trimmed);
    de.disable_recursion_limit();
    let r = Top { hops: 0 }.deserialize(&mut de).map_err(syntax)?;
    de.end().map_err(syntax)?;
    r
}

/// Parse an already-decoded EXPLAIN JSON document (what the server returned as `json`).
pub fn parse_explain_value(value: &Value) -> Result<ExplainResult, PlanError> {
    Top { hops: 0 }.deserialize(value).map_err(syntax)?
}
