//! The plan tree written as PostgreSQL's text EXPLAIN, in the form [`super::text`] reads
//! back to an equal tree. Imported JSON, YAML and XML plans are stored this way when the
//! round trip holds (checked at import): a 10,000-node plan stored as text reads back
//! several times faster than the same plan as JSON.

use crate::plans::tree::{ExplainResult, PlanNode, WorkerStats};
use std::fmt::Write;

fn ident(s: &str) -> String {
    if s.is_empty() || s.contains([' ', '"', '.']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn method(n: &PlanNode) -> String {
    match (n.node_type.as_str(), n.operation.as_deref()) {
        ("Foreign Scan", Some(op)) => format!("Foreign {op}"),
        _ => n.method(),
    }
}

fn target(n: &PlanNode) -> String {
    let mut s = String::new();
    let qualified = |name: &str| match &n.schema {
        Some(sc) => format!("{}.{}", ident(sc), ident(name)),
        None => ident(name),
    };
    let base = if let Some(r) = &n.relation_name {
        Some((qualified(r), r.as_str()))
    } else if let Some(c) = &n.cte_name {
        Some((ident(c), c.as_str()))
    } else {
        n.function_name.as_ref().map(|f| (qualified(f), f.as_str()))
    };
    if let Some(idx) = &n.index_name {
        s.push_str(if base.is_some() { " using " } else { " on " });
        s.push_str(&ident(idx));
    }
    match base {
        Some((t, b)) => {
            s.push_str(" on ");
            s.push_str(&t);
            if let Some(a) = n.alias.as_deref().filter(|a| *a != b) {
                s.push(' ');
                s.push_str(&ident(a));
            }
        }
        None if n.index_name.is_none() => {
            if let Some(a) = &n.alias {
                s.push_str(" on ");
                s.push_str(&ident(a));
            }
        }
        None => {}
    }
    s
}

/// `Buffers: shared hit=1 read=2, temp read=3` from the counters given (None when none is).
fn buffers(shared: [Option<i64>; 4], temp: [Option<i64>; 2]) -> Option<String> {
    let mut sh = String::new();
    for (k, v) in ["hit", "read", "dirtied", "written"].iter().zip(shared) {
        if let Some(v) = v {
            let _ = write!(sh, " {k}={v}");
        }
    }
    let mut tp = String::new();
    for (k, v) in ["read", "written"].iter().zip(temp) {
        if let Some(v) = v {
            let _ = write!(tp, " {k}={v}");
        }
    }
    if sh.is_empty() && tp.is_empty() {
        return None;
    }
    let mut s = String::from("Buffers:");
    if !sh.is_empty() {
        s.push_str(" shared");
        s.push_str(&sh);
    }
    if !tp.is_empty() {
        s.push_str(if sh.is_empty() { " temp" } else { ", temp" });
        s.push_str(&tp);
    }
    Some(s)
}

/// A worker's block as EXPLAIN prints it: `Worker N:` with its first item on the same
/// line, the others indented under it.
fn worker_lines(line: &mut impl FnMut(String), w: &WorkerStats) {
    let mut items = Vec::new();
    if let (Some(r), Some(l)) = (w.actual_rows, w.actual_loops) {
        items.push(match (w.actual_startup_time, w.actual_total_time) {
            (Some(s), Some(t)) => format!("actual time={s}..{t} rows={r} loops={l}"),
            _ => format!("actual rows={r} loops={l}"),
        });
    }
    if let Some(m) = &w.sort_method {
        let space = match (&w.sort_space_type, w.sort_space_kb) {
            (Some(t), Some(kb)) => format!("  {t}: {kb}kB"),
            _ => String::new(),
        };
        items.push(format!("Sort Method: {m}{space}"));
    }
    if let Some(b) = w.hashagg_batches {
        let mut s = format!("Batches: {b}");
        if let Some(m) = w.peak_memory_kb {
            let _ = write!(s, "  Memory Usage: {m}kB");
        }
        if let Some(d) = w.disk_usage_kb {
            let _ = write!(s, "  Disk Usage: {d}kB");
        }
        items.push(s);
    }
    if let Some(s) = buffers(
        [
            w.shared_hit,
            w.shared_read,
            w.shared_dirtied,
            w.shared_written,
        ],
        [w.temp_read, w.temp_written],
    ) {
        items.push(s);
    }
    let mut items = items.into_iter();
    match items.next() {
        Some(first) => line(format!("Worker {}:  {first}", w.worker_number)),
        None => line(format!("Worker {}:", w.worker_number)),
    }
    for rest in items {
        line(format!("  {rest}"));
    }
}

fn node_lines(out: &mut String, n: &PlanNode, arrow: Option<usize>) -> usize {
    let (lead, props) = match arrow {
        Some(c) => (format!("{}->  ", " ".repeat(c)), c + 6),
        None => (String::new(), 2),
    };
    let _ = write!(
        out,
        "{lead}{}{}  (cost={}..{} rows={} width=0)",
        method(n),
        target(n),
        n.startup_cost,
        n.total_cost,
        n.plan_rows
    );
    if let (Some(r), Some(l)) = (n.actual_rows, n.actual_loops) {
        match (n.actual_startup_time, n.actual_total_time) {
            (Some(s), Some(t)) => {
                let _ = write!(out, " (actual time={s}..{t} rows={r} loops={l})");
            }
            _ => {
                let _ = write!(out, " (actual rows={r} loops={l})");
            }
        }
    }
    out.push('\n');
    let pad = " ".repeat(props);
    let mut line = |text: String| {
        out.push_str(&pad);
        out.push_str(&text);
        out.push('\n');
    };
    for (k, v) in &n.conditions {
        line(format!("{k}: {v}"));
    }
    if let Some(v) = n.rows_removed_by_filter {
        line(format!("Rows Removed by Filter: {v}"));
    }
    if let Some(v) = n.rows_removed_by_join_filter {
        line(format!("Rows Removed by Join Filter: {v}"));
    }
    if let Some(v) = n.rows_removed_by_index_recheck {
        line(format!("Rows Removed by Index Recheck: {v}"));
    }
    for (k, v) in [
        ("Index Searches", n.index_searches),
        ("Heap Fetches", n.heap_fetches),
        ("Workers Planned", n.workers_planned),
        ("Workers Launched", n.workers_launched),
    ] {
        if let Some(v) = v {
            line(format!("{k}: {v}"));
        }
    }
    if let Some(d) = n.disabled {
        line(format!("Disabled: {d}"));
    }
    if let Some(m) = &n.sort_method {
        let space = match (&n.sort_space_type, n.sort_space_kb) {
            (Some(t), Some(kb)) => format!("  {t}: {kb}kB"),
            _ => String::new(),
        };
        line(format!("Sort Method: {m}{space}"));
    }
    let mem = n
        .peak_memory_kb
        .map(|m| format!("  Memory Usage: {m}kB"))
        .unwrap_or_default();
    if let Some(b) = n.hash_buckets {
        let batches = match (n.hash_batches, n.original_hash_batches) {
            (Some(b), Some(o)) if o != b => format!("  Batches: {b} (originally {o})"),
            (Some(b), _) => format!("  Batches: {b}"),
            _ => String::new(),
        };
        line(format!("Buckets: {b}{batches}{mem}"));
    } else if let Some(h) = n.cache_hits {
        let mut s = format!("Hits: {h}");
        for (k, v) in [
            ("Misses", n.cache_misses),
            ("Evictions", n.cache_evictions),
            ("Overflows", n.cache_overflows),
        ] {
            if let Some(v) = v {
                let _ = write!(s, "  {k}: {v}");
            }
        }
        line(format!("{s}{mem}"));
    } else if let Some(b) = n.hashagg_batches {
        let disk = n
            .disk_usage_kb
            .map(|d| format!("  Disk Usage: {d}kB"))
            .unwrap_or_default();
        line(format!("Batches: {b}{mem}{disk}"));
    }
    if n.exact_heap_blocks.is_some() || n.lossy_heap_blocks.is_some() {
        let mut s = String::from("Heap Blocks:");
        if let Some(e) = n.exact_heap_blocks {
            let _ = write!(s, " exact={e}");
        }
        if let Some(l) = n.lossy_heap_blocks {
            let _ = write!(s, " lossy={l}");
        }
        line(s);
    }
    // as EXPLAIN prints them: counters that are zero only on the root, whose line makes
    // the reader fill in the zeros everywhere else (see text::parse_text)
    let root = arrow.is_none();
    let shown = |v: Option<i64>| v.filter(|v| root || *v != 0);
    if let Some(s) = buffers(
        [
            shown(n.shared_hit),
            shown(n.shared_read),
            shown(n.shared_dirtied),
            shown(n.shared_written),
        ],
        [shown(n.temp_read), shown(n.temp_written)],
    ) {
        line(s);
    }
    let shown_ms = |v: Option<f64>| v.filter(|v| root || *v != 0.0);
    let (io_read, io_write) = (shown_ms(n.io_read_time), shown_ms(n.io_write_time));
    if io_read.is_some() || io_write.is_some() {
        let mut s = String::from("I/O Timings: shared");
        if let Some(r) = io_read {
            let _ = write!(s, " read={r}");
        }
        if let Some(w) = io_write {
            let _ = write!(s, " write={w}");
        }
        line(s);
    }
    for w in &n.workers {
        worker_lines(&mut line, w);
    }
    if n.wal_records.is_some() || n.wal_fpi.is_some() || n.wal_bytes.is_some() {
        let mut s = String::from("WAL:");
        for (k, v) in [
            ("records", n.wal_records),
            ("fpi", n.wal_fpi),
            ("bytes", n.wal_bytes),
        ] {
            if let Some(v) = v {
                let _ = write!(s, " {k}={v}");
            }
        }
        line(s);
    }
    props
}

/// The whole plan as text, without recursion.
pub fn to_explain_text(r: &ExplainResult) -> String {
    let mut out = String::new();
    if let Some(q) = &r.query_text {
        let _ = writeln!(out, "Query Text: {q}");
    }
    // (node, column its arrow starts at: None for the root)
    let mut stack: Vec<(&PlanNode, Option<usize>)> = vec![(&r.root, None)];
    while let Some((n, arrow)) = stack.pop() {
        // a named subplan (InitPlan, SubPlan, CTE) gets its header line, the node under it
        let arrow = match (arrow, &n.subplan_name) {
            (Some(col), Some(name)) => {
                let _ = writeln!(out, "{}{name}", " ".repeat(col));
                Some(col + 2)
            }
            (a, _) => a,
        };
        let props = node_lines(&mut out, n, arrow);
        for c in n.children.iter().rev() {
            stack.push((c, Some(props)));
        }
    }
    if r.planning_shared_hit.is_some() || r.planning_shared_read.is_some() {
        let mut s = String::from("Planning:\n  Buffers: shared");
        if let Some(h) = r.planning_shared_hit {
            let _ = write!(s, " hit={h}");
        }
        if let Some(rd) = r.planning_shared_read {
            let _ = write!(s, " read={rd}");
        }
        out.push_str(&s);
        out.push('\n');
    }
    if !r.settings.is_empty() {
        let s: Vec<String> = r
            .settings
            .iter()
            .map(|(k, v)| format!("{k} = '{}'", v.replace('\'', "''")))
            .collect();
        let _ = writeln!(out, "Settings: {}", s.join(", "));
    }
    for t in &r.triggers {
        let mut s = format!("Trigger {}", t.trigger_name);
        if let Some(c) = &t.constraint_name {
            let _ = write!(s, " for constraint {c}");
        }
        if let Some(rel) = &t.relation {
            let _ = write!(s, " on {rel}");
        }
        s.push(':');
        if let Some(x) = t.time {
            let _ = write!(s, " time={x}");
        }
        if let Some(x) = t.calls {
            let _ = write!(s, " calls={x}");
        }
        let _ = writeln!(out, "{s}");
    }
    if let Some(j) = &r.jit {
        out.push_str("JIT:\n");
        if let Some(f) = j.functions {
            let _ = writeln!(out, "  Functions: {f}");
        }
        let parts: Vec<String> = [
            ("Generation", j.generation_ms),
            ("Inlining", j.inlining_ms),
            ("Optimization", j.optimization_ms),
            ("Emission", j.emission_ms),
            ("Total", j.total_ms),
        ]
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k} {v} ms")))
        .collect();
        if !parts.is_empty() {
            let _ = writeln!(out, "  Timing: {}", parts.join(", "));
        }
    }
    if let Some(t) = r.planning_time {
        let _ = writeln!(out, "Planning Time: {t} ms");
    }
    if let Some(t) = r.execution_time {
        let _ = writeln!(out, "Execution Time: {t} ms");
    }
    out
}
