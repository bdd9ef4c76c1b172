//! PostgreSQL's text EXPLAIN format read into the plan tree. A line tokenizer sorts each
//! cleaned line into a node (`->  Hash Join  (cost=...)`), a subplan header (`InitPlan 1
//! (returns $0)`, `SubPlan 2`, `CTE name`), a per-worker line (`Worker 0:  actual ...`), a
//! property (`Key: value`) or a continuation of the line before (a hard-wrapped line);
//! the tree comes from the columns the lines start at: a line belongs to the nearest node
//! above it that starts further left. Plan-level lines (Planning/Execution Time, JIT,
//! Settings, Triggers, Query Text) are read onto the [`ExplainResult`].

use super::clean::Line;
use super::text_node::{looks_like_node, parse_header};
use super::text_prop::{apply_property, apply_worker_line, apply_worker_property};
use super::ImportError;
use crate::infra::json::MAX_PLAN_DEPTH;
use crate::plans::tree::{ExplainResult, Jit, PlanNode, TriggerTime, WorkerStats};
use std::collections::BTreeMap;

/// What a logical line is.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// `->  ...`, or the root: the header text after the arrow.
    Node(String),
    /// InitPlan / SubPlan / CTE header.
    Subplan(String),
    /// `Worker N:  ...`: figures of one parallel worker, not a node of their own: its
    /// number and what follows the colon on the same line.
    Worker(i64, String),
    /// `Key: value` (value may be empty: `JIT:`, `Planning:`).
    Property(String, String),
}

/// A logical line: physical lines joined, the column its text starts at, its kind.
#[derive(Debug, Clone)]
struct Logical {
    no: usize,
    col: usize,
    kind: Kind,
}

fn is_subplan_header(t: &str) -> bool {
    let numbered = |p: &str| {
        t.strip_prefix(p).is_some_and(|r| {
            let digits: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
            !digits.is_empty() && (r.len() == digits.len() || r[digits.len()..].starts_with(" ("))
        })
    };
    numbered("InitPlan ")
        || numbered("SubPlan ")
        || t.strip_prefix("CTE ")
            .is_some_and(|r| !r.is_empty() && !r.contains(':') && !r.starts_with("Scan"))
}

/// `Worker 3:  actual time=...` into 3 and what follows the colon.
fn worker(t: &str) -> Option<(i64, String)> {
    let r = t.strip_prefix("Worker ")?;
    let digits = r.chars().take_while(|c| c.is_ascii_digit()).count();
    let rest = r[digits..].strip_prefix(':')?;
    let n = r[..digits].parse::<i64>().ok()?;
    Some((n, rest.trim().to_string()))
}

/// `Key: value` with a key made of words (letters, digits, spaces, `/-_()`).
fn property(t: &str) -> Option<(String, String)> {
    let (key, value) = match t.find(": ") {
        Some(at) => (&t[..at], &t[at + 2..]),
        None => (t.strip_suffix(':')?, ""),
    };
    if t.starts_with("Trigger ") {
        return Some((key.to_string(), value.to_string()));
    }
    let ok = !key.is_empty()
        && key.len() <= 40
        && key.starts_with(|c: char| c.is_ascii_uppercase())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '/' | '-' | '_'));
    ok.then(|| (key.to_string(), value.to_string()))
}

fn classify(t: &str, seen_node: bool) -> Option<Kind> {
    if let Some(rest) = t.strip_prefix("->") {
        return Some(Kind::Node(rest.trim().to_string()));
    }
    if is_subplan_header(t) {
        return Some(Kind::Subplan(t.to_string()));
    }
    if let Some((n, rest)) = worker(t) {
        return Some(Kind::Worker(n, rest));
    }
    if !seen_node && looks_like_node(t) {
        return Some(Kind::Node(t.to_string()));
    }
    property(t).map(|(k, v)| Kind::Property(k, v))
}

fn col_of(s: &str) -> usize {
    s.len() - s.trim_start().len()
}

/// Join hard-wrapped lines and classify. A line of no known kind continues the one
/// before: with no space when the one before filled the widest line (a terminal
/// wrapped it mid-word), with one space otherwise (a mail client wrapped at a space).
fn logical_lines(lines: &[Line]) -> Result<Vec<Logical>, ImportError> {
    let widest = lines.iter().map(|l| l.text.len()).max().unwrap_or(0);
    let mut out: Vec<(Logical, String)> = Vec::new();
    let mut seen_node = false;
    let mut prev_len = 0;
    for l in lines {
        let t = l.text.trim();
        let kind = classify(t, seen_node);
        match kind {
            Some(k) => {
                if let Kind::Node(_) = k {
                    seen_node = true;
                }
                out.push((
                    Logical {
                        no: l.no,
                        col: col_of(&l.text),
                        kind: k,
                    },
                    t.to_string(),
                ));
            }
            None => {
                let Some((last, raw)) = out.last_mut() else {
                    // before any plan line: psql prompts, "EXPLAIN ..." echoes
                    prev_len = l.text.len();
                    continue;
                };
                if prev_len >= widest && widest >= 60 {
                    raw.push_str(&l.text);
                } else {
                    raw.push(' ');
                    raw.push_str(t);
                }
                let joined = raw.trim().to_string();
                last.kind = match &last.kind {
                    Kind::Node(_) => Kind::Node(
                        joined
                            .strip_prefix("->")
                            .unwrap_or(&joined)
                            .trim()
                            .to_string(),
                    ),
                    Kind::Property(..) => match property(&joined) {
                        Some((k, v)) => Kind::Property(k, v),
                        None => last.kind.clone(),
                    },
                    Kind::Worker(..) => match worker(&joined) {
                        Some((n, rest)) => Kind::Worker(n, rest),
                        None => last.kind.clone(),
                    },
                    other => other.clone(),
                };
            }
        }
        prev_len = l.text.len();
    }
    Ok(out.into_iter().map(|(l, _)| l).collect())
}

/// An open entry on the column stack.
enum Open {
    /// Index into the arena.
    Node(usize),
    /// A subplan header waiting for its node: (its name, the node it belongs to).
    Header(String, Option<usize>),
    /// A worker's lines: (the node, the worker's index in its `workers`).
    Worker(usize, usize),
    /// A plan-level block (`JIT:`, `Planning:`).
    Block(String),
}

struct Arena {
    nodes: Vec<PlanNode>,
    parent: Vec<Option<usize>>,
    /// Children that are not InitPlans/SubPlans/CTEs, counted as they arrive.
    plain_kids: Vec<usize>,
    depth: Vec<usize>,
}

fn millis(line: usize, v: &str) -> Result<f64, ImportError> {
    let t = v.trim();
    let t = t.strip_suffix("ms").unwrap_or(t).trim();
    t.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .ok_or_else(|| ImportError::new(line, "a time such as 0.123 ms", v))
}

/// `work_mem = '64MB', random_page_cost = '1.1'`
fn settings(v: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = v.trim();
    while let Some((name, tail)) = rest.split_once(" = ") {
        let tail = tail.trim_start();
        let (value, after) = match tail.strip_prefix('\'') {
            Some(q) => {
                // '' inside a value is a quote
                let mut end = None;
                let b = q.as_bytes();
                let mut i = 0;
                while i < b.len() {
                    if b.get(i) == Some(&b'\'') {
                        if b.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        end = Some(i);
                        break;
                    }
                    i += 1;
                }
                match end {
                    Some(e) => (q[..e].replace("''", "'"), &q[e + 1..]),
                    None => (q.to_string(), ""),
                }
            }
            None => match tail.split_once(',') {
                Some((a, b)) => (a.trim().to_string(), b),
                None => (tail.trim().to_string(), ""),
            },
        };
        out.insert(
            name.trim().trim_start_matches(',').trim().to_string(),
            value,
        );
        rest = after.trim_start_matches(',').trim_start();
    }
    out
}

/// `Generation 1.2 ms (Deform 0.1 ms), Inlining 0.0 ms, ..., Total 4.5 ms`
fn jit_timing(jit: &mut Jit, v: &str) {
    for part in v.split(", ") {
        let mut w = part.split_whitespace();
        let (Some(name), Some(n)) = (w.next(), w.next()) else {
            continue;
        };
        let n = n.parse::<f64>().ok().filter(|f| f.is_finite());
        match name {
            "Generation" => jit.generation_ms = n,
            "Inlining" => jit.inlining_ms = n,
            "Optimization" => jit.optimization_ms = n,
            "Emission" => jit.emission_ms = n,
            "Total" => jit.total_ms = n,
            _ => {}
        }
    }
}

/// `Trigger name: time=0.123 calls=1` / `Trigger name for constraint fk on t: time=...`
fn trigger(key: &str, v: &str) -> TriggerTime {
    let name = key.strip_prefix("Trigger ").unwrap_or(key);
    let (name, relation) = match name.rsplit_once(" on ") {
        Some((n, rel)) => (n, Some(rel.to_string())),
        None => (name, None),
    };
    let (name, constraint) = match name.split_once(" for constraint ") {
        Some((n, c)) => (n, Some(c.to_string())),
        None => (name, None),
    };
    let mut t = TriggerTime {
        trigger_name: name.to_string(),
        constraint_name: constraint,
        relation,
        ..TriggerTime::default()
    };
    for kv in v.split_whitespace() {
        match kv.split_once('=') {
            Some(("time", x)) => t.time = x.parse().ok(),
            Some(("calls", x)) => t.calls = x.parse().ok(),
            _ => {}
        }
    }
    t
}

fn plan_level(
    r: &mut ExplainResult,
    block: Option<&str>,
    key: &str,
    v: &str,
    line: usize,
) -> Result<(), ImportError> {
    match (block, key) {
        (_, "Planning Time") => r.planning_time = Some(millis(line, v)?),
        (_, "Execution Time") | (_, "Total runtime") => r.execution_time = Some(millis(line, v)?),
        (_, "Settings") => r.settings = settings(v),
        (_, "Query Text") => r.query_text = Some(v.to_string()),
        (Some("Planning"), "Buffers") => {
            let mut n = PlanNode::default();
            apply_property(&mut n, "Buffers", v, line)?;
            r.planning_shared_hit = n.shared_hit;
            r.planning_shared_read = n.shared_read;
        }
        (Some("JIT"), "Functions") => {
            r.jit.get_or_insert_with(Jit::default).functions = v.trim().parse().ok()
        }
        (Some("JIT"), "Timing") => jit_timing(r.jit.get_or_insert_with(Jit::default), v),
        (_, k) if k.starts_with("Trigger ") => r.triggers.push(trigger(k, v)),
        _ => {}
    }
    Ok(())
}

/// Parent relationships as EXPLAIN (FORMAT JSON) names them, from the parent's type
/// and the child's place among its non-subplan siblings.
fn relationship(parent: &PlanNode, nth: usize) -> &'static str {
    match parent.node_type.as_str() {
        "Append" | "Merge Append" | "BitmapAnd" | "BitmapOr" => "Member",
        "Subquery Scan" => "Subquery",
        "Custom Scan" => "children",
        "Nested Loop" | "Hash Join" | "Merge Join" | "Recursive Union" | "SetOp" if nth == 1 => {
            "Inner"
        }
        _ => "Outer",
    }
}

/// Keys printed once per plan, after (or, for Query Text, before) the tree.
const PLAN_LEVEL: [&str; 10] = [
    "Planning Time",
    "Execution Time",
    "Total runtime",
    "Settings",
    "Planning",
    "JIT",
    "Query Text",
    "Query Identifier",
    "Serialization",
    "Memory",
];

/// Parse the text format from cleaned lines.
pub fn parse_text(lines: &[Line]) -> Result<ExplainResult, ImportError> {
    let logical = logical_lines(lines)?;
    let mut result = ExplainResult::default();
    let mut arena = Arena {
        nodes: Vec::new(),
        parent: Vec::new(),
        plain_kids: Vec::new(),
        depth: Vec::new(),
    };
    // (column, entry)
    let mut stack: Vec<(usize, Open)> = Vec::new();
    let mut any_buffers = false;
    let mut any_io = false;
    for l in &logical {
        // plan-level lines belong to no node wherever they start (a paste may have lost
        // the root's indentation)
        let plan_level_key = matches!(&l.kind, Kind::Property(k, _) if PLAN_LEVEL.contains(&k.as_str()) || k.starts_with("Trigger "));
        if plan_level_key && !arena.nodes.is_empty() {
            stack.clear();
        }
        while stack.last().is_some_and(|(c, _)| *c >= l.col) {
            stack.pop();
        }
        match &l.kind {
            Kind::Node(header) => {
                let mut node = parse_header(header, l.no)?;
                let (parent, name) = match stack.last() {
                    Some((_, Open::Node(p))) => (Some(*p), None),
                    Some((_, Open::Header(n, p))) => (*p, Some(n.clone())),
                    Some((_, Open::Worker(..) | Open::Block(_))) => {
                        return Err(ImportError::new(
                            l.no,
                            "a plan node under a plan node, not under a worker or plan-level block",
                            header,
                        ))
                    }
                    None if arena.nodes.is_empty() => (None, None),
                    None => {
                        return Err(ImportError::new(
                            l.no,
                            "one plan per text (this node starts left of the root node)",
                            header,
                        ))
                    }
                };
                let id = arena.nodes.len();
                let depth = parent.and_then(|p| arena.depth.get(p)).map_or(0, |d| d + 1);
                if depth > MAX_PLAN_DEPTH {
                    return Err(ImportError::new(
                        l.no,
                        &format!("a plan at most {MAX_PLAN_DEPTH} levels deep"),
                        "a deeper node",
                    ));
                }
                if let Some(p) = parent {
                    match name {
                        Some(n) => {
                            node.parent_relationship = Some(
                                if n.starts_with("SubPlan") {
                                    "SubPlan"
                                } else {
                                    "InitPlan"
                                }
                                .into(),
                            );
                            node.subplan_name = Some(n);
                        }
                        None => {
                            // children that are not InitPlans/SubPlans/CTEs, so far
                            let nth = arena.plain_kids.get(p).copied().unwrap_or(0);
                            if let Some(k) = arena.plain_kids.get_mut(p) {
                                *k += 1;
                            }
                            node.parent_relationship = arena
                                .nodes
                                .get(p)
                                .map(|pn| relationship(pn, nth).to_string());
                        }
                    }
                }
                arena.nodes.push(node);
                arena.parent.push(parent);
                arena.plain_kids.push(0);
                arena.depth.push(depth);
                stack.push((l.col, Open::Node(id)));
            }
            Kind::Subplan(name) => {
                let owner = match stack.last() {
                    Some((_, Open::Node(p))) => Some(*p),
                    _ => None,
                };
                if owner.is_none() {
                    return Err(ImportError::new(
                        l.no,
                        "an InitPlan/SubPlan/CTE header inside a plan node",
                        name,
                    ));
                }
                stack.push((l.col, Open::Header(name.clone(), owner)));
            }
            Kind::Worker(number, rest) => {
                let Some((_, Open::Node(id))) = stack.last() else {
                    return Err(ImportError::new(
                        l.no,
                        "a Worker line inside a plan node",
                        &format!("Worker {number}: {rest}"),
                    ));
                };
                let id = *id;
                let Some(node) = arena.nodes.get_mut(id) else {
                    continue;
                };
                // one block per worker and node, as EXPLAIN prints them; a repeat adds to it
                let at = match node.workers.iter().position(|w| w.worker_number == *number) {
                    Some(at) => at,
                    None => {
                        node.workers.push(WorkerStats {
                            worker_number: *number,
                            ..WorkerStats::default()
                        });
                        node.workers.len() - 1
                    }
                };
                if !rest.is_empty() {
                    any_buffers |= rest.starts_with("Buffers:");
                    let node_type = node.node_type.clone();
                    if let Some(w) = node.workers.get_mut(at) {
                        apply_worker_line(w, &node_type, rest, l.no)?;
                    }
                }
                stack.push((l.col, Open::Worker(id, at)));
            }
            Kind::Property(key, value) => match stack.last() {
                Some((_, Open::Node(id))) => {
                    if key == "Buffers" {
                        any_buffers = true;
                    }
                    any_io |= key == "I/O Timings";
                    if let Some(n) = arena.nodes.get_mut(*id) {
                        apply_property(n, key, value, l.no)?;
                    }
                }
                Some((_, Open::Worker(id, at))) => {
                    any_buffers |= key == "Buffers";
                    let (id, at) = (*id, *at);
                    if let Some(node) = arena.nodes.get_mut(id) {
                        let node_type = node.node_type.clone();
                        if let Some(w) = node.workers.get_mut(at) {
                            apply_worker_property(w, &node_type, key, value, l.no)?;
                        }
                    }
                }
                Some((_, Open::Header(..))) => any_buffers |= key == "Buffers",
                Some((_, Open::Block(b))) => {
                    let b = b.clone();
                    plan_level(&mut result, Some(&b), key, value, l.no)?;
                }
                _ => {
                    plan_level(&mut result, None, key, value, l.no)?;
                    if value.is_empty() {
                        stack.push((l.col, Open::Block(key.clone())));
                    }
                }
            },
        }
    }
    if arena.nodes.is_empty() {
        let (no, found) = lines
            .first()
            .map(|l| (l.no, l.text.trim().to_string()))
            .unwrap_or((1, String::new()));
        return Err(ImportError::new(
            no,
            "a plan node line such as 'Seq Scan on t  (cost=0.00..1.00 rows=1 width=4)'",
            &found,
        ));
    }
    // JSON prints every buffer counter, zeros too; text only those that are not zero.
    // Per worker, buffers come with the worker's actual figures (VERBOSE).
    // the same for I/O timings (track_io_timing): JSON prints them on every node
    if any_io {
        for n in arena.nodes.iter_mut() {
            n.io_read_time.get_or_insert(0.0);
            n.io_write_time.get_or_insert(0.0);
        }
    }
    if any_buffers {
        for n in arena.nodes.iter_mut() {
            for f in [
                &mut n.shared_hit,
                &mut n.shared_read,
                &mut n.shared_dirtied,
                &mut n.shared_written,
                &mut n.temp_read,
                &mut n.temp_written,
            ] {
                f.get_or_insert(0);
            }
            for w in n.workers.iter_mut().filter(|w| w.actual_loops.is_some()) {
                for f in [
                    &mut w.shared_hit,
                    &mut w.shared_read,
                    &mut w.shared_dirtied,
                    &mut w.shared_written,
                    &mut w.temp_read,
                    &mut w.temp_written,
                ] {
                    f.get_or_insert(0);
                }
            }
        }
    }
    result.root = assemble(arena);
    Ok(result)
}

/// Build the nested tree from the arena, children in plan order, without recursion.
fn assemble(arena: Arena) -> PlanNode {
    let Arena {
        mut nodes, parent, ..
    } = arena;
    // children follow their parents in the arena, so folding from the end moves each
    // finished subtree into its parent; kids arrive in reverse and are flipped once
    let mut done: Vec<Vec<PlanNode>> = vec![Vec::new(); nodes.len()];
    for id in (0..nodes.len()).rev() {
        let mut node = nodes.get_mut(id).map(std::mem::take).unwrap_or_default();
        let mut kids = done.get_mut(id).map(std::mem::take).unwrap_or_default();
        kids.reverse();
        node.children = kids;
        match parent.get(id).copied().flatten() {
            Some(p) => {
                if let Some(d) = done.get_mut(p) {
                    d.push(node);
                }
            }
            None => return node,
        }
    }
    PlanNode::default()
}
