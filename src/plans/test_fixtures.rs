//! Test support: the real EXPLAIN captures in `fixtures/` (one per major) and small
//! readers over them, shared by the plan model's test files. Test-only.

use super::flatten::flatten;
use super::parse::parse_explain_json;
use super::tree::{ExplainResult, PlanNode};

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

pub(super) const VERSIONS: [u32; 4] = [15, 16, 17, 18];

/// Real captures: `fixtures/pgNN_<name>.json` for each name and major.
pub(super) const FIXTURES: &[(&str, [&str; 4])] = fixture_table!(
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

/// The four captures of fixture `name` (15, 16, 17, 18).
pub(super) fn texts(name: &str) -> [&'static str; 4] {
    let found = FIXTURES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
    assert!(found.is_some(), "no fixture {name}");
    found.unwrap_or([""; 4])
}

/// `text` parsed; a parse error fails the test.
pub(super) fn must_parse(text: &str) -> ExplainResult {
    let p = parse_explain_json(text);
    assert!(p.is_ok(), "{p:?}");
    p.unwrap_or_default()
}

/// `text` as JSON; a syntax error fails the test.
pub(super) fn must_json(text: &str) -> serde_json::Value {
    let v = serde_json::from_str(text);
    assert!(v.is_ok(), "{v:?}");
    v.unwrap_or_default()
}

/// Fixture `name` parsed on each major.
pub(super) fn parsed(name: &str) -> Vec<(u32, ExplainResult)> {
    VERSIONS
        .iter()
        .zip(texts(name))
        .map(|(v, t)| {
            let p = parse_explain_json(t);
            assert!(p.is_ok(), "pg{v}_{name}: {p:?}");
            (*v, p.unwrap_or_default())
        })
        .collect()
}

pub(super) fn all_texts() -> Vec<&'static str> {
    FIXTURES
        .iter()
        .flat_map(|(_, t)| t.iter().copied())
        .collect()
}

pub(super) fn types(p: &ExplainResult) -> Vec<String> {
    flatten(p)
        .iter()
        .map(|f| f.node.node_type.clone())
        .collect()
}

pub(super) fn labels(p: &ExplainResult) -> Vec<String> {
    flatten(p).iter().map(|f| f.label()).collect()
}

pub(super) fn node(p: &ExplainResult, id: usize) -> &PlanNode {
    let found = flatten(p).get(id).map(|f| f.node);
    assert!(found.is_some(), "no node {id}");
    found.unwrap_or(&p.root)
}

pub(super) fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}
