//! Diffing two plans of one statement: nodes aligned by what they read (not by their
//! text), the statement summary row first, then what changed node by node. Pure logic;
//! capturing the two plans is [`super::capture`]'s job.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::flatten::{flatten, subtree_sizes, wall_time_ms};
use super::tree::{ExplainResult, PlanNode};

/// Bitmap index nodes are folded into the Bitmap Heap Scan above them by the diff.
fn is_bitmap_index_part(node_type: &str) -> bool {
    matches!(node_type, "Bitmap Index Scan" | "BitmapAnd" | "BitmapOr")
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
