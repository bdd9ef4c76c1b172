//! One line of PostgreSQL's text EXPLAIN read into the plan tree: a node header
//! (`Hash Left Join  (cost=1.00..2.00 rows=10 width=4) (actual time=... rows=... loops=...)`)
//! into a [`PlanNode`] with the fields the JSON format would have given it, and a
//! property line (`Buffers: shared hit=3`, `Sort Method: external merge  Disk: 1024kB`)
//! onto its node. Hand-written scanning over the line; no regular expressions.

use super::ImportError;
use crate::plans::tree::PlanNode;

/// Node names as the text format prints them (after "Parallel", "Partial"/"Finalize"),
/// longest first where one is a prefix of another.
const METHODS: &[&str] = &[
    "Named Tuplestore Scan",
    "Table Function Scan",
    "Bitmap Index Scan",
    "Bitmap Heap Scan",
    "Index Only Scan",
    "Incremental Sort",
    "Recursive Union",
    "Tid Range Scan",
    "MixedAggregate",
    "GroupAggregate",
    "HashAggregate",
    "WorkTable Scan",
    "Subquery Scan",
    "Function Scan",
    "Foreign Scan",
    "Foreign Insert",
    "Foreign Update",
    "Foreign Delete",
    "Merge Append",
    "Gather Merge",
    "Values Scan",
    "Custom Scan",
    "Sample Scan",
    "Materialize",
    "Nested Loop",
    "Index Scan",
    "Merge Join",
    "Hash Join",
    "ProjectSet",
    "Aggregate",
    "HashSetOp",
    "WindowAgg",
    "BitmapAnd",
    "BitmapOr",
    "LockRows",
    "Seq Scan",
    "Tid Scan",
    "CTE Scan",
    "Memoize",
    "Append",
    "Result",
    "Gather",
    "Unique",
    "Insert",
    "Update",
    "Delete",
    "SetOp",
    "Limit",
    "Group",
    "Merge",
    "Sort",
    "Hash",
];

const JOIN_KINDS: &[&str] = &[
    "Right Semi",
    "Right Anti",
    "Left",
    "Full",
    "Right",
    "Semi",
    "Anti",
];

pub(super) fn bad(line: usize, expected: &str, found: &str) -> ImportError {
    ImportError::new(line, expected, found)
}

/// Does `content` (a line without its `->`) start the way a plan node does?
pub fn looks_like_node(content: &str) -> bool {
    let c = content.trim_start();
    if c.contains("(cost=") || c.contains("(actual ") || c.ends_with("(never executed)") {
        return !c.starts_with("Worker ") && split_method(c).is_some();
    }
    split_method(c).is_some_and(|(_, rest)| {
        rest.is_empty() || rest.starts_with(" on ") || rest.starts_with(" using ")
    })
}

/// The method (a known node name, with prefixes) and what follows it.
fn split_method(desc: &str) -> Option<(String, &str)> {
    let mut rest = desc;
    let mut prefix = String::new();
    for p in ["Parallel ", "Async ", "Partial ", "Finalize "] {
        if let Some(r) = rest.strip_prefix(p) {
            prefix.push_str(p);
            rest = r;
        }
    }
    let m = METHODS.iter().find(|m| {
        rest.strip_prefix(**m)
            .is_some_and(|r| r.is_empty() || r.starts_with(' '))
    })?;
    let mut after = &rest[m.len()..];
    let mut method = (*m).to_string();
    // "Hash Left Join", "Nested Loop Anti Join", "Merge Right Anti Join"
    if matches!(*m, "Hash" | "Merge" | "Nested Loop") {
        for k in JOIN_KINDS {
            let pat = format!(" {k} Join");
            if let Some(r) = after.strip_prefix(pat.as_str()) {
                if r.is_empty() || r.starts_with(' ') {
                    method = format!("{m}{pat}");
                    after = r;
                    break;
                }
            }
        }
    }
    // "Index Scan Backward using ...", "Custom Scan (Citus Adaptive)", "SetOp Except All"
    for tail in [
        " Backward",
        " Intersect All",
        " Intersect",
        " Except All",
        " Except",
    ] {
        if let Some(r) = after.strip_prefix(tail) {
            method.push_str(tail);
            after = r;
            break;
        }
    }
    if method == "Custom Scan" {
        if let Some(r) = after.strip_prefix(" (") {
            if let Some(end) = r.find(')') {
                after = &r[end + 1..];
            }
        }
    }
    Some((format!("{prefix}{method}"), after))
}

/// Split an identifier list (`public.orders o`, `"Odd ""name"""`) into words,
/// honouring double quotes. Dots stay inside words.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `schema.name` into its parts; dots inside quotes were kept by [`words`], so this
/// looks at the raw text to tell a quoted dot from a separator.
fn qualified(raw: &str, word: &str) -> (Option<String>, String) {
    // a quoted word with a dot inside ("a.b") is one name
    if raw.contains('"') && !raw.contains("\".") && !raw.contains(".\"") {
        return (None, word.to_string());
    }
    match word.split_once('.') {
        Some((s, n)) if !s.is_empty() && !n.is_empty() => (Some(s.to_string()), n.to_string()),
        _ => (None, word.to_string()),
    }
}

/// The target part of a header: `using IDX on REL ALIAS`, `on REL ALIAS`, `on IDX`.
fn read_target(node: &mut PlanNode, rest: &str) {
    let mut rest = rest.trim();
    if let Some(r) = rest.strip_prefix("using ") {
        let (idx, tail) = match r.find(" on ") {
            Some(at) => (&r[..at], &r[at + 1..]),
            None => (r, ""),
        };
        node.index_name = words(idx).into_iter().next();
        rest = tail.trim();
    }
    let Some(target) = rest.strip_prefix("on ") else {
        return;
    };
    let w = words(target);
    let raw_first = target.split(' ').next().unwrap_or("");
    let Some(first) = w.first() else { return };
    let alias = w.get(1).cloned();
    match node.node_type.as_str() {
        "Bitmap Index Scan" => node.index_name = Some(first.clone()),
        "Subquery Scan" | "Values Scan" | "Result" => node.alias = Some(first.clone()),
        "CTE Scan" | "WorkTable Scan" | "Named Tuplestore Scan" => {
            node.cte_name = Some(first.clone());
            node.alias = alias.or_else(|| Some(first.clone()));
        }
        "Function Scan" | "Table Function Scan" => {
            let (schema, name) = qualified(raw_first, first);
            node.schema = schema;
            node.function_name = Some(name.clone());
            node.alias = alias.or(Some(name));
        }
        _ => {
            let (schema, name) = qualified(raw_first, first);
            node.relation = Some(match &schema {
                Some(s) => format!("{s}.{name}"),
                None => name.clone(),
            });
            node.schema = schema;
            node.relation_name = Some(name.clone());
            node.alias = alias.or(Some(name));
        }
    }
}

/// Fill node type, strategy, join type, ... from the printed method.
fn read_method(node: &mut PlanNode, method: &str) {
    let mut m = method;
    if let Some(r) = m.strip_prefix("Parallel ") {
        node.parallel_aware = true;
        m = r;
    }
    m = m.strip_prefix("Async ").unwrap_or(m);
    if let Some(r) = m.strip_prefix("Partial ") {
        node.partial_mode = Some("Partial".into());
        m = r;
    } else if let Some(r) = m.strip_prefix("Finalize ") {
        node.partial_mode = Some("Finalize".into());
        m = r;
    }
    let m = m.strip_suffix(" Backward").unwrap_or(m);
    let (nt, strategy) = match m {
        "Aggregate" => ("Aggregate", Some("Plain")),
        "HashAggregate" => ("Aggregate", Some("Hashed")),
        "GroupAggregate" => ("Aggregate", Some("Sorted")),
        "MixedAggregate" => ("Aggregate", Some("Mixed")),
        s if s.starts_with("HashSetOp") => ("SetOp", Some("Hashed")),
        s if s.starts_with("SetOp") => ("SetOp", Some("Sorted")),
        _ => (m, None),
    };
    if nt == "Aggregate" && node.partial_mode.is_none() {
        node.partial_mode = Some("Simple".into());
    }
    node.strategy = strategy.map(str::to_string);
    for op in ["Insert", "Update", "Delete", "Merge"] {
        if nt == op {
            node.node_type = "ModifyTable".into();
            node.operation = Some(op.into());
            return;
        }
        if nt.strip_prefix("Foreign ") == Some(op) {
            node.node_type = "Foreign Scan".into();
            node.operation = Some(op.into());
            return;
        }
    }
    for base in ["Nested Loop", "Hash", "Merge"] {
        if let Some(kind) = nt
            .strip_prefix(base)
            .and_then(|r| r.strip_prefix(' '))
            .and_then(|r| r.strip_suffix("Join"))
        {
            let kind = kind.trim();
            node.node_type = match base {
                "Nested Loop" => "Nested Loop".into(),
                "Hash" => "Hash Join".into(),
                _ => "Merge Join".into(),
            };
            node.join_type = Some(if kind.is_empty() { "Inner" } else { kind }.into());
            return;
        }
    }
    if nt == "Nested Loop" {
        node.join_type = Some("Inner".into());
    }
    node.node_type = nt.to_string();
}

pub(super) fn number(line: usize, what: &str, s: &str) -> Result<f64, ImportError> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .ok_or_else(|| bad(line, what, s))
}

pub(super) fn integer(line: usize, what: &str, s: &str) -> Result<i64, ImportError> {
    let t = s.trim();
    t.parse::<i64>().map_err(|_| bad(line, what, s))
}

/// `a..b`
pub(super) fn range(line: usize, what: &str, s: &str) -> Result<(f64, f64), ImportError> {
    let (a, b) = s.split_once("..").ok_or_else(|| bad(line, what, s))?;
    Ok((number(line, what, a)?, number(line, what, b)?))
}

/// `key=value key=value` pairs.
pub(super) fn pairs(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split_whitespace().filter_map(|kv| kv.split_once('='))
}

/// Read a node header (without its `->`).
pub fn parse_header(desc: &str, line: usize) -> Result<PlanNode, ImportError> {
    let desc = desc.trim();
    let groups_at = [
        desc.find("(cost="),
        desc.find("(actual "),
        desc.find("(never executed)"),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(desc.len());
    let (head, groups) = desc.split_at(groups_at);
    let Some((method, target)) = split_method(head.trim_end()) else {
        return Err(bad(
            line,
            "a plan node type such as Seq Scan, Hash Join or Aggregate",
            head,
        ));
    };
    let mut node = PlanNode::default();
    read_method(&mut node, &method);
    read_target(&mut node, target);
    let mut rest = groups;
    while let Some(open) = rest.find('(') {
        let close = rest[open..]
            .find(')')
            .map(|c| open + c)
            .ok_or_else(|| bad(line, "a closing ')' after the cost or actual figures", rest))?;
        let inner = &rest[open + 1..close];
        if let Some(c) = inner.strip_prefix("cost=") {
            let (range_s, tail) = c.split_once(' ').unwrap_or((c, ""));
            let (s, t) = range(line, "cost=STARTUP..TOTAL", range_s)?;
            node.startup_cost = s;
            node.total_cost = t;
            for (k, v) in pairs(tail) {
                if k == "rows" {
                    node.plan_rows = number(line, "rows=N", v)?;
                }
            }
        } else if let Some(a) = inner.strip_prefix("actual ") {
            for (k, v) in pairs(a) {
                match k {
                    "time" => {
                        let (s, t) = range(line, "actual time=STARTUP..TOTAL", v)?;
                        node.actual_startup_time = Some(s);
                        node.actual_total_time = Some(t);
                    }
                    "rows" => node.actual_rows = Some(number(line, "actual rows=N", v)?),
                    "loops" => node.actual_loops = Some(number(line, "loops=N", v)?),
                    _ => {}
                }
            }
            if node.actual_rows.is_none() || node.actual_loops.is_none() {
                return Err(bad(line, "(actual ... rows=N loops=N)", inner));
            }
        } else if inner == "never executed" {
            node.actual_rows = Some(0.0);
            node.actual_loops = Some(0.0);
        }
        rest = &rest[close + 1..];
    }
    Ok(node)
}

#[cfg(test)]
mod unit {
    use super::*;
    use crate::plans::import::text_prop::apply_property;

    fn h(s: &str) -> PlanNode {
        let r = parse_header(s, 1);
        assert!(r.is_ok(), "{s}: {r:?}");
        r.unwrap_or_default()
    }

    #[test]
    fn headers_give_the_fields_json_would() {
        let n = h("Index Only Scan Backward using orders_pkey on public.orders o  (cost=0.29..8.31 rows=1 width=4) (actual time=0.010..0.011 rows=1.00 loops=3)");
        assert_eq!(n.node_type, "Index Only Scan");
        assert_eq!(n.index_name.as_deref(), Some("orders_pkey"));
        assert_eq!(n.relation.as_deref(), Some("public.orders"));
        assert_eq!(n.alias.as_deref(), Some("o"));
        assert_eq!(
            (n.plan_rows, n.actual_rows, n.actual_loops),
            (1.0, Some(1.0), Some(3.0))
        );
        let j = h("Hash Right Anti Join  (cost=1.00..2.00 rows=5 width=8)");
        assert_eq!(
            (j.node_type.as_str(), j.join_type.as_deref()),
            ("Hash Join", Some("Right Anti"))
        );
        assert_eq!(j.label(), "Hash Right Anti Join");
        let a = h("Partial HashAggregate  (cost=1.00..2.00 rows=5 width=8) (never executed)");
        assert_eq!(a.label(), "Partial HashAggregate");
        assert_eq!(a.actual_loops, Some(0.0));
        let p = h("Parallel Seq Scan on orders_p1 orders_1  (actual rows=10 loops=3)");
        assert_eq!(p.label(), "Parallel Seq Scan on orders_p1 orders_1");
        let v = h("Values Scan on \"*VALUES*\"  (cost=0.00..0.03 rows=2 width=4)");
        assert_eq!(v.alias.as_deref(), Some("*VALUES*"));
        let b = h("Bitmap Index Scan on t_a_idx  (cost=0.00..4.30 rows=10 width=0)");
        assert_eq!(b.label(), "Bitmap Index Scan on t_a_idx");
        let m = h("Merge on target t  (cost=1.00..2.00 rows=0 width=0)");
        assert_eq!(m.label(), "Merge on target t");
        let c = h("Custom Scan (Citus Adaptive)  (cost=0.00..0.00 rows=0 width=0)");
        assert_eq!(c.node_type, "Custom Scan");
        assert!(looks_like_node("Seq Scan on t"));
        assert!(!looks_like_node("Filter: (a = 1)"));
    }

    #[test]
    fn bad_figures_are_coded_errors() {
        for s in [
            "Seq Scan on t  (cost=abc..1.00 rows=1 width=4)",
            "Seq Scan on t  (cost=0.00..1.00 rows=x width=4)",
            "Seq Scan on t  (actual time=0.1..0.2 rows=1",
            "Frobnicate  (cost=0.00..1.00 rows=1 width=4)",
        ] {
            assert!(parse_header(s, 7).is_err_and(|e| e.line == 7), "{s}");
        }
    }

    #[test]
    fn properties_land_on_their_fields() {
        let mut n = h("Hash  (cost=1.00..2.00 rows=5 width=8)");
        let props = [
            (
                "Buckets",
                "1024 (originally 512)  Batches: 4 (originally 1)  Memory Usage: 9kB",
            ),
            ("Buffers", "shared hit=3 read=2, temp read=5 written=6"),
            ("I/O Timings", "shared read=1.5 write=0.25"),
        ];
        for (k, v) in props {
            assert!(apply_property(&mut n, k, v, 1).is_ok());
        }
        assert_eq!(
            (n.hash_buckets, n.hash_batches, n.original_hash_batches),
            (Some(1024), Some(4), Some(1))
        );
        assert_eq!(
            (n.peak_memory_kb, n.shared_hit, n.temp_written),
            (Some(9), Some(3), Some(6))
        );
        assert_eq!(n.io_read_time, Some(1.5));
        let mut s = h("Sort  (cost=1.00..2.00 rows=5 width=8)");
        assert!(apply_property(&mut s, "Sort Method", "external merge  Disk: 1024kB", 1).is_ok());
        assert_eq!(
            (s.sort_space_type.as_deref(), s.sort_space_kb),
            (Some("Disk"), Some(1024))
        );
        let mut a = h("HashAggregate  (cost=1.00..2.00 rows=5 width=8)");
        assert!(apply_property(
            &mut a,
            "Planned Partitions",
            "4  Batches: 5  Memory Usage: 4145kB  Disk Usage: 1200kB",
            1
        )
        .is_ok());
        assert_eq!((a.hashagg_batches, a.disk_usage_kb), (Some(5), Some(1200)));
        let mut m = h("Memoize  (cost=1.00..2.00 rows=5 width=8)");
        assert!(apply_property(
            &mut m,
            "Hits",
            "5  Misses: 3  Evictions: 0  Overflows: 0  Memory Usage: 1kB",
            1
        )
        .is_ok());
        assert_eq!((m.cache_hits, m.cache_misses), (Some(5), Some(3)));
        assert!(apply_property(&mut m, "Heap Fetches", "many", 9).is_err_and(|e| e.line == 9));
    }
}
