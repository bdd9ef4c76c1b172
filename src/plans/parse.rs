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

// ---- lenient scalars: a value of another JSON type reads as absent ----

/// What a JSON scalar reads as, where it has the right type.
trait Scalar: Sized {
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    fn from_text(_: &str) -> Option<Self> {
        None
    }
    fn from_string(s: String) -> Option<Self> {
        Self::from_text(&s)
    }
}

impl Scalar for String {
    fn from_text(s: &str) -> Option<Self> {
        Some(s.to_string())
    }
    fn from_string(s: String) -> Option<Self> {
        Some(s)
    }
}

/// A finite number; numeric strings are accepted too.
impl Scalar for f64 {
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v).filter(|f| f.is_finite())
    }
    fn from_text(s: &str) -> Option<Self> {
        s.trim().parse::<f64>().ok().filter(|f| f.is_finite())
    }
}

/// A whole number; numeric strings and whole floats are accepted too.
impl Scalar for i64 {
    fn from_i64(v: i64) -> Option<Self> {
        Some(v)
    }
    fn from_u64(v: u64) -> Option<Self> {
        i64::try_from(v).ok()
    }
    fn from_f64(v: f64) -> Option<Self> {
        whole_to_i64(v)
    }
    fn from_text(s: &str) -> Option<Self> {
        let s = s.trim();
        s.parse::<i64>()
            .ok()
            .or_else(|| s.parse::<f64>().ok().and_then(whole_to_i64))
    }
}

impl Scalar for bool {
    fn from_bool(v: bool) -> Option<Self> {
        Some(v)
    }
}

/// Reads any JSON value as `Some(T)` when it has T's type, else None (arrays and
/// objects are read through and dropped).
struct Lenient<T>(std::marker::PhantomData<T>);

const STR: Lenient<String> = Lenient(std::marker::PhantomData);
const NUM: Lenient<f64> = Lenient(std::marker::PhantomData);
const INT: Lenient<i64> = Lenient(std::marker::PhantomData);
const BOOL: Lenient<bool> = Lenient(std::marker::PhantomData);

impl<'de, T: Scalar> DeserializeSeed<'de> for Lenient<T> {
    type Value = Option<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Scalar> Visitor<'de> for Lenient<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(T::from_bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(T::from_i64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(T::from_u64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(T::from_f64(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(T::from_text(v))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(T::from_string(v))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map).map(|_| None)
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

/// Reads a map key as a `K`, matching the borrowed text (no allocation).
struct Key<K>(fn(&str) -> K);

impl<'de, K> DeserializeSeed<'de> for Key<K> {
    type Value = K;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<K, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, K> Visitor<'de> for Key<K> {
    type Value = K;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, v: &str) -> Result<K, E> {
        Ok((self.0)(v))
    }
}

// ---- the document around the plan ----

/// Top-level keys: the plan, a client's wrapper, and the small plan-level objects,
/// which are kept as `Value`s (a handful per plan) and read as before.
enum TopKey {
    Plan,
    QueryPlan,
    Small(&'static str),
    Other,
}

fn top_key(k: &str) -> TopKey {
    const SMALL: [&str; 7] = [
        "Settings",
        "Triggers",
        "Planning",
        "JIT",
        "Planning Time",
        "Execution Time",
        "Query Text",
    ];
    match k {
        "Plan" => TopKey::Plan,
        "QUERY PLAN" => TopKey::QueryPlan,
        _ => SMALL
            .iter()
            .find(|s| **s == k)
            .map_or(TopKey::Other, |s| TopKey::Small(s)),
    }
}

/// The document, or the part of it that holds the `"Plan"` object: the first element of
/// an array, the object with a `"Plan"` key, or what `"QUERY PLAN"` holds.
struct Top {
    hops: usize,
}

impl Top {
    fn no_plan(&self, what: &str) -> Result<ExplainResult, PlanError> {
        Err(PlanError::NoPlan(if self.hops > 4 {
            "nested arrays".to_string()
        } else {
            what.to_string()
        }))
    }
}

impl<'de> DeserializeSeed<'de> for Top {
    type Value = Result<ExplainResult, PlanError>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top {
    type Value = Result<ExplainResult, PlanError>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the output of EXPLAIN (FORMAT JSON)")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(self.no_plan("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(self.no_plan("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(self.no_plan("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(self.no_plan("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(self.no_plan("a string"))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(self.no_plan("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if self.hops > 4 {
            IgnoredAny.visit_seq(seq)?;
            return Ok(self.no_plan("an array"));
        }
        let first = seq.next_element_seed(Top {
            hops: self.hops + 1,
        })?;
        // the other statements are read (so the text must be valid), not kept
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(first.unwrap_or(Err(PlanError::Empty)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if self.hops > 4 {
            IgnoredAny.visit_map(map)?;
            return Ok(self.no_plan("an object"));
        }
        let mut plan: Option<Node> = None;
        let mut wrapped: Option<Result<ExplainResult, PlanError>> = None;
        let mut small = Map::new();
        while let Some(k) = map.next_key_seed(Key(top_key))? {
            match k {
                TopKey::Plan => {
                    plan = Some(map.next_value_seed(NodeSeed {
                        path: Path::Root,
                        depth: 0,
                    })?)
                }
                TopKey::QueryPlan => {
                    wrapped = Some(map.next_value_seed(Top {
                        hops: self.hops + 1,
                    })?)
                }
                TopKey::Small(name) => {
                    small.insert(name.to_string(), map.next_value_seed(Bounded(SMALL_DEPTH))?);
                }
                TopKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match (plan, wrapped) {
            (Some(Node::Ok(root)), _) => Ok(top_result(*root, &small)),
            (Some(Node::Err(e)), _) => Err(e),
            (Some(Node::NotObject), _) => Err(PlanError::WrongType {
                path: "$".to_string(),
                field: "Plan",
                expected: "an object",
            }),
            (None, Some(r)) => r,
            (None, None) => self.no_plan("an object without a \"Plan\" key"),
        })
    }
}

/// How deep a plan-level value (Settings, Triggers, JIT, ...) is read; EXPLAIN nests
/// them at most three levels.
const SMALL_DEPTH: usize = 16;

/// A JSON value read as a `Value` down to a depth; what lies deeper reads as null.
struct Bounded(usize);

impl<'de> DeserializeSeed<'de> for Bounded {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.0 == 0 {
            IgnoredAny.visit_seq(seq)?;
            return Ok(Value::Null);
        }
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Bounded(self.0 - 1))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if self.0 == 0 {
            IgnoredAny.visit_map(map)?;
            return Ok(Value::Null);
        }
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(Bounded(self.0 - 1))?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

fn top_result(root: PlanNode, top: &Map<String, Value>) -> ExplainResult {
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

    ExplainResult {
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
    }
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

fn text(m: &Map<String, Value>, key: &str) -> Option<String> {
    match m.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn num(m: &Map<String, Value>, key: &str) -> Option<f64> {
    m.get(key).and_then(|v| NUM.deserialize(v).ok().flatten())
}

fn int(m: &Map<String, Value>, key: &str) -> Option<i64> {
    m.get(key).and_then(|v| INT.deserialize(v).ok().flatten())
}

// ---- plan nodes ----

/// Where a node is, for error messages: `Plan`, `Plan.Plans[0].Plans[3]`; rendered
/// only when there is an error to report.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Child(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("Plan"),
            Path::Child(p, i) => write!(f, "{p}.Plans[{i}]"),
        }
    }
}

/// A node as read: the node, the first problem in it or below it, or a JSON value that
/// is not an object.
enum Node {
    Ok(Box<PlanNode>),
    Err(PlanError),
    NotObject,
}

type StrField = fn(&mut PlanNode) -> &mut Option<String>;
type NumField = fn(&mut PlanNode) -> &mut Option<f64>;
type IntField = fn(&mut PlanNode) -> &mut Option<i64>;

/// What a node key is read into.
enum NodeKey {
    NodeType,
    Plans,
    Workers,
    ParallelAware,
    Disabled,
    StartupCost,
    TotalCost,
    PlanRows,
    FunctionName,
    TableFunctionName,
    IoRead,
    SharedIoRead,
    IoWrite,
    SharedIoWrite,
    Condition(usize),
    Str(StrField),
    Num(NumField),
    Int(IntField),
    Other,
}

fn node_key(k: &str) -> NodeKey {
    use NodeKey::*;
    match k {
        "Node Type" => NodeType,
        "Plans" => Plans,
        "Workers" => Workers,
        "Parallel Aware" => ParallelAware,
        "Disabled" => Disabled,
        "Startup Cost" => StartupCost,
        "Total Cost" => TotalCost,
        "Plan Rows" => PlanRows,
        "Function Name" => FunctionName,
        "Table Function Name" => TableFunctionName,
        "I/O Read Time" => IoRead,
        "Shared I/O Read Time" => SharedIoRead,
        "I/O Write Time" => IoWrite,
        "Shared I/O Write Time" => SharedIoWrite,
        "Relation Name" => Str(|n| &mut n.relation_name),
        "Schema" => Str(|n| &mut n.schema),
        "Alias" => Str(|n| &mut n.alias),
        "Index Name" => Str(|n| &mut n.index_name),
        "Join Type" => Str(|n| &mut n.join_type),
        "Parent Relationship" => Str(|n| &mut n.parent_relationship),
        "Subplan Name" => Str(|n| &mut n.subplan_name),
        "Strategy" => Str(|n| &mut n.strategy),
        "Partial Mode" => Str(|n| &mut n.partial_mode),
        "Operation" => Str(|n| &mut n.operation),
        "CTE Name" => Str(|n| &mut n.cte_name),
        "Sort Method" => Str(|n| &mut n.sort_method),
        "Sort Space Type" => Str(|n| &mut n.sort_space_type),
        "Actual Rows" => Num(|n| &mut n.actual_rows),
        "Actual Loops" => Num(|n| &mut n.actual_loops),
        "Actual Startup Time" => Num(|n| &mut n.actual_startup_time),
        "Actual Total Time" => Num(|n| &mut n.actual_total_time),
        "Rows Removed by Filter" => Num(|n| &mut n.rows_removed_by_filter),
        "Rows Removed by Join Filter" => Num(|n| &mut n.rows_removed_by_join_filter),
        "Rows Removed by Index Recheck" => Num(|n| &mut n.rows_removed_by_index_recheck),
        "Shared Hit Blocks" => Int(|n| &mut n.shared_hit),
        "Shared Read Blocks" => Int(|n| &mut n.shared_read),
        "Shared Dirtied Blocks" => Int(|n| &mut n.shared_dirtied),
        "Shared Written Blocks" => Int(|n| &mut n.shared_written),
        "Temp Read Blocks" => Int(|n| &mut n.temp_read),
        "Temp Written Blocks" => Int(|n| &mut n.temp_written),
        "Index Searches" => Int(|n| &mut n.index_searches),
        "Heap Fetches" => Int(|n| &mut n.heap_fetches),
        "Workers Planned" => Int(|n| &mut n.workers_planned),
        "Workers Launched" => Int(|n| &mut n.workers_launched),
        "Sort Space Used" => Int(|n| &mut n.sort_space_kb),
        "Hash Buckets" => Int(|n| &mut n.hash_buckets),
        "Hash Batches" => Int(|n| &mut n.hash_batches),
        "Original Hash Batches" => Int(|n| &mut n.original_hash_batches),
        "Peak Memory Usage" => Int(|n| &mut n.peak_memory_kb),
        "HashAgg Batches" => Int(|n| &mut n.hashagg_batches),
        "Disk Usage" => Int(|n| &mut n.disk_usage_kb),
        "Cache Hits" => Int(|n| &mut n.cache_hits),
        "Cache Misses" => Int(|n| &mut n.cache_misses),
        "Cache Evictions" => Int(|n| &mut n.cache_evictions),
        "Cache Overflows" => Int(|n| &mut n.cache_overflows),
        "Exact Heap Blocks" => Int(|n| &mut n.exact_heap_blocks),
        "Lossy Heap Blocks" => Int(|n| &mut n.lossy_heap_blocks),
        "WAL Records" => Int(|n| &mut n.wal_records),
        "WAL FPI" => Int(|n| &mut n.wal_fpi),
        "WAL Bytes" => Int(|n| &mut n.wal_bytes),
        _ => CONDITION_KEYS
            .iter()
            .position(|c| *c == k)
            .map_or(Other, Condition),
    }
}

struct NodeSeed<'p> {
    path: Path<'p>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = Node;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a plan node object")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::NotObject)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::NotObject)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::NotObject)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::NotObject)
    }
    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::NotObject)
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::NotObject)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Node, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Node::NotObject)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        if self.depth > MAX_PLAN_DEPTH {
            IgnoredAny.visit_map(map)?;
            return Ok(Node::Err(PlanError::TooDeep {
                limit: MAX_PLAN_DEPTH,
            }));
        }
        // on the heap: this frame recurses once per plan level, and a deep plan must not
        // need a deep stack
        let mut n = Box::<PlanNode>::default();
        // None: no "Node Type" key; Some(None): not a string
        let mut node_type: Option<Option<String>> = None;
        let mut kids: Option<Kids> = None;
        let mut conditions: Box<[Option<String>; 10]> = Box::default();
        let (mut function, mut table_function) = (None, None);
        let (mut io_read, mut shared_io_read, mut io_write, mut shared_io_write) =
            (None, None, None, None);
        let mut parallel_aware = None;
        while let Some(k) = map.next_key_seed(Key(node_key))? {
            match k {
                NodeKey::NodeType => node_type = Some(map.next_value_seed(STR)?),
                NodeKey::Plans => {
                    kids = Some(map.next_value_seed(KidsSeed {
                        parent: &self.path,
                        depth: self.depth,
                    })?)
                }
                NodeKey::Workers => n.workers = map.next_value_seed(WorkersSeed)?,
                NodeKey::ParallelAware => parallel_aware = map.next_value_seed(BOOL)?,
                NodeKey::Disabled => n.disabled = map.next_value_seed(BOOL)?,
                NodeKey::StartupCost => n.startup_cost = map.next_value_seed(NUM)?.unwrap_or(0.0),
                NodeKey::TotalCost => n.total_cost = map.next_value_seed(NUM)?.unwrap_or(0.0),
                NodeKey::PlanRows => n.plan_rows = map.next_value_seed(NUM)?.unwrap_or(0.0),
                NodeKey::FunctionName => function = map.next_value_seed(STR)?,
                NodeKey::TableFunctionName => table_function = map.next_value_seed(STR)?,
                NodeKey::IoRead => io_read = map.next_value_seed(NUM)?,
                NodeKey::SharedIoRead => shared_io_read = map.next_value_seed(NUM)?,
                NodeKey::IoWrite => io_write = map.next_value_seed(NUM)?,
                NodeKey::SharedIoWrite => shared_io_write = map.next_value_seed(NUM)?,
                NodeKey::Condition(i) => {
                    let v = map.next_value_seed(STR)?;
                    if let Some(slot) = conditions.get_mut(i) {
                        *slot = v;
                    }
                }
                NodeKey::Str(field) => *field(&mut n) = map.next_value_seed(STR)?,
                NodeKey::Num(field) => *field(&mut n) = map.next_value_seed(NUM)?,
                NodeKey::Int(field) => *field(&mut n) = map.next_value_seed(INT)?,
                NodeKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let path = &self.path;
        n.node_type = match node_type {
            Some(Some(t)) => t,
            Some(None) => {
                return Ok(Node::Err(PlanError::WrongType {
                    path: path.to_string(),
                    field: "Node Type",
                    expected: "a string",
                }))
            }
            None => {
                return Ok(Node::Err(PlanError::MissingField {
                    path: path.to_string(),
                    field: "Node Type",
                }))
            }
        };
        match kids {
            None | Some(Kids::Null) => {}
            Some(Kids::Ok(children)) => n.children = children,
            Some(Kids::Err(e)) => return Ok(Node::Err(e)),
            Some(Kids::NotArray) => {
                return Ok(Node::Err(PlanError::WrongType {
                    path: path.to_string(),
                    field: "Plans",
                    expected: "an array",
                }))
            }
        }
        n.relation = match (&n.schema, &n.relation_name) {
            (Some(s), Some(r)) => Some(format!("{s}.{r}")),
            (None, Some(r)) => Some(r.clone()),
            _ => None,
        };
        n.conditions = CONDITION_KEYS
            .iter()
            .zip(*conditions)
            .filter_map(|(k, v)| v.map(|v| ((*k).to_string(), v)))
            .collect();
        n.function_name = function.or(table_function);
        n.io_read_time = io_read.or(shared_io_read);
        n.io_write_time = io_write.or(shared_io_write);
        n.parallel_aware = parallel_aware == Some(true);
        Ok(Node::Ok(n))
    }
}

/// A node's `"Plans"` as read.
enum Kids {
    Ok(Vec<PlanNode>),
    Err(PlanError),
    Null,
    NotArray,
}

struct KidsSeed<'p> {
    parent: &'p Path<'p>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for KidsSeed<'_> {
    type Value = Kids;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Kids, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KidsSeed<'_> {
    type Value = Kids;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of plan nodes")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Kids, E> {
        Ok(Kids::NotArray)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Kids, E> {
        Ok(Kids::NotArray)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Kids, E> {
        Ok(Kids::NotArray)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Kids, E> {
        Ok(Kids::NotArray)
    }
    fn visit_str<E>(self, _: &str) -> Result<Kids, E> {
        Ok(Kids::NotArray)
    }
    fn visit_unit<E>(self) -> Result<Kids, E> {
        Ok(Kids::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Kids, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(Kids::NotArray)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kids, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(2));
        let mut i = 0;
        loop {
            let path = Path::Child(self.parent, i);
            let Some(node) = seq.next_element_seed(NodeSeed {
                path,
                depth: self.depth + 1,
            })?
            else {
                return Ok(Kids::Ok(out));
            };
            let err = match node {
                Node::Ok(n) => {
                    out.push(*n);
                    i += 1;
                    continue;
                }
                Node::Err(e) => e,
                Node::NotObject => PlanError::WrongType {
                    path: path.to_string(),
                    field: "Plans",
                    expected: "an array of objects",
                },
            };
            // the first problem is the one reported; the rest is only read
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Kids::Err(err));
        }
    }
}

// ---- per-worker figures ----

type WStrField = fn(&mut WorkerStats) -> &mut Option<String>;
type WNumField = fn(&mut WorkerStats) -> &mut Option<f64>;
type WIntField = fn(&mut WorkerStats) -> &mut Option<i64>;

enum WorkerKey {
    Number,
    Str(WStrField),
    Num(WNumField),
    Int(WIntField),
    Other,
}

fn worker_key(k: &str) -> WorkerKey {
    use WorkerKey::*;
    match k {
        "Worker Number" => Number,
        "Actual Startup Time" => Num(|w| &mut w.actual_startup_time),
        "Actual Total Time" => Num(|w| &mut w.actual_total_time),
        "Actual Rows" => Num(|w| &mut w.actual_rows),
        "Actual Loops" => Num(|w| &mut w.actual_loops),
        "Sort Method" => Str(|w| &mut w.sort_method),
        "Sort Space Type" => Str(|w| &mut w.sort_space_type),
        "Sort Space Used" => Int(|w| &mut w.sort_space_kb),
        "HashAgg Batches" => Int(|w| &mut w.hashagg_batches),
        "Peak Memory Usage" => Int(|w| &mut w.peak_memory_kb),
        "Disk Usage" => Int(|w| &mut w.disk_usage_kb),
        "Shared Hit Blocks" => Int(|w| &mut w.shared_hit),
        "Shared Read Blocks" => Int(|w| &mut w.shared_read),
        "Shared Dirtied Blocks" => Int(|w| &mut w.shared_dirtied),
        "Shared Written Blocks" => Int(|w| &mut w.shared_written),
        "Temp Read Blocks" => Int(|w| &mut w.temp_read),
        "Temp Written Blocks" => Int(|w| &mut w.temp_written),
        _ => Other,
    }
}

/// A node's `"Workers"`: each object with a `"Worker Number"`; anything else is skipped.
struct WorkersSeed;

impl<'de> DeserializeSeed<'de> for WorkersSeed {
    type Value = Vec<WorkerStats>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for WorkersSeed {
    type Value = Vec<WorkerStats>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of workers")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(w) = seq.next_element_seed(WorkerSeed)? {
            out.extend(w);
        }
        Ok(out)
    }
}

struct WorkerSeed;

impl<'de> DeserializeSeed<'de> for WorkerSeed {
    type Value = Option<WorkerStats>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for WorkerSeed {
    type Value = Option<WorkerStats>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a worker object")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut w = WorkerStats::default();
        let mut number = None;
        while let Some(k) = map.next_key_seed(Key(worker_key))? {
            match k {
                WorkerKey::Number => number = map.next_value_seed(INT)?,
                WorkerKey::Str(field) => *field(&mut w) = map.next_value_seed(STR)?,
                WorkerKey::Num(field) => *field(&mut w) = map.next_value_seed(NUM)?,
                WorkerKey::Int(field) => *field(&mut w) = map.next_value_seed(INT)?,
                WorkerKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        // memory is kept for hash aggregation only (as text prints it, beside its batches)
        if w.hashagg_batches.is_none() {
            w.peak_memory_kb = None;
        }
        Ok(number.map(|n| {
            w.worker_number = n;
            w
        }))
    }
}
