//! One property line of PostgreSQL's text EXPLAIN applied to its node: `Buffers: shared
//! hit=3`, `Sort Method: external merge  Disk: 1024kB`, `Hash Buckets: ...`, and the
//! per-worker lines (`Worker 0:  actual time=... rows=... loops=...`) with the properties
//! that follow them, as the JSON format would give them.

use super::text_node::{bad, integer, number, pairs, range};
use super::ImportError;
use crate::plans::tree::{PlanNode, WorkerStats};

/// `Buffers: shared hit=1 read=2, temp read=3 written=4`
fn buffers(node: &mut PlanNode, v: &str, line: usize) -> Result<(), ImportError> {
    for part in v.split(',') {
        let part = part.trim();
        let (scope, kv) = part.split_once(' ').unwrap_or((part, ""));
        for (k, val) in pairs(kv) {
            let n = Some(integer(line, "a block count", val)?);
            match (scope, k) {
                ("shared", "hit") => node.shared_hit = n,
                ("shared", "read") => node.shared_read = n,
                ("shared", "dirtied") => node.shared_dirtied = n,
                ("shared", "written") => node.shared_written = n,
                ("temp", "read") => node.temp_read = n,
                ("temp", "written") => node.temp_written = n,
                _ => {}
            }
        }
    }
    Ok(())
}

/// `25kB`
fn kb(line: usize, v: &str) -> Result<i64, ImportError> {
    let t = v.trim();
    integer(
        line,
        "a size in kB such as 25kB",
        t.strip_suffix("kB").unwrap_or(t),
    )
}

/// Several `Key: value` items on one line, two spaces apart
/// (`Buckets: 1024 (originally 512)  Batches: 1  Memory Usage: 9kB`).
fn items(v: &str) -> Vec<(&str, &str)> {
    v.split("  ")
        .filter_map(|p| p.trim().split_once(": "))
        .collect()
}

/// The first number in `1024 (originally 512)`, and the original when given.
fn with_original(line: usize, v: &str) -> Result<(i64, Option<i64>), ImportError> {
    let (now, orig) = match v.split_once(" (originally ") {
        Some((n, o)) => (n, Some(o.trim_end_matches(')'))),
        None => (v, None),
    };
    let orig = match orig {
        Some(o) => Some(integer(line, "a count", o)?),
        None => None,
    };
    Ok((integer(line, "a count", now)?, orig))
}

/// Apply one property line of a node. Unknown keys are accepted and ignored: every
/// major adds some, and none of them changes the tree.
pub fn apply_property(
    node: &mut PlanNode,
    key: &str,
    value: &str,
    line: usize,
) -> Result<(), ImportError> {
    let v = value.trim();
    match key {
        "Index Cond" | "Recheck Cond" | "TID Cond" | "Merge Cond" | "Hash Cond" | "Join Filter"
        | "Filter" | "One-Time Filter" | "Run Condition" | "Order By" => {
            node.conditions.push((key.to_string(), v.to_string()));
        }
        "Rows Removed by Filter" => {
            node.rows_removed_by_filter = Some(number(line, "a row count", v)?)
        }
        "Rows Removed by Join Filter" => {
            node.rows_removed_by_join_filter = Some(number(line, "a row count", v)?)
        }
        "Rows Removed by Index Recheck" => {
            node.rows_removed_by_index_recheck = Some(number(line, "a row count", v)?)
        }
        "Heap Fetches" => node.heap_fetches = Some(integer(line, "a count", v)?),
        "Index Searches" => node.index_searches = Some(integer(line, "a count", v)?),
        "Workers Planned" => node.workers_planned = Some(integer(line, "a count", v)?),
        "Workers Launched" => node.workers_launched = Some(integer(line, "a count", v)?),
        "Disabled" => node.disabled = Some(v == "true"),
        "Buffers" => buffers(node, v, line)?,
        "Heap Blocks" => {
            for (k, val) in pairs(v) {
                let n = Some(integer(line, "a block count", val)?);
                match k {
                    "exact" => node.exact_heap_blocks = n,
                    "lossy" => node.lossy_heap_blocks = n,
                    _ => {}
                }
            }
        }
        "I/O Timings" => {
            for part in v.split(',') {
                let part = part.trim();
                // PG15 prints "read=1.2 write=0.3"; PG16+ "shared read=1.2 write=0.3, temp ..."
                let (scope, kv) = match part.split_once(' ') {
                    Some((s, kv)) if !s.contains('=') => (s, kv),
                    _ => ("shared", part),
                };
                for (k, val) in pairs(kv) {
                    let n = Some(number(line, "a time in ms", val)?);
                    match (scope, k) {
                        ("shared", "read") => node.io_read_time = n,
                        ("shared", "write") => node.io_write_time = n,
                        _ => {}
                    }
                }
            }
        }
        "WAL" => {
            for (k, val) in pairs(v) {
                let n = integer(line, "a count", val).ok();
                match k {
                    "records" => node.wal_records = n,
                    "fpi" => node.wal_fpi = n,
                    "bytes" => node.wal_bytes = n,
                    _ => {}
                }
            }
        }
        "Sort Method" => {
            // "quicksort  Memory: 25kB" / "external merge  Disk: 1024kB"
            let (method, tail) = v.split_once("  ").unwrap_or((v, ""));
            node.sort_method = Some(method.trim().to_string());
            for (k, val) in items(tail) {
                if k == "Memory" || k == "Disk" {
                    node.sort_space_type = Some(k.to_string());
                    node.sort_space_kb = Some(kb(line, val)?);
                }
            }
        }
        "Buckets" | "Batches" | "Hits" | "Planned Partitions" => {
            // the first item is this key's; the rest follow two spaces apart
            let line_items = std::iter::once((key, v.split("  ").next().unwrap_or("")))
                .chain(items(v).into_iter().filter(|(k, _)| *k != key));
            for (k, val) in line_items {
                let val = val.trim();
                match k {
                    "Buckets" => node.hash_buckets = Some(with_original(line, val)?.0),
                    "Batches" => {
                        let (b, orig) = with_original(line, val)?;
                        if node.node_type == "Hash" {
                            node.hash_batches = Some(b);
                            node.original_hash_batches = orig.or(Some(b));
                        } else {
                            node.hashagg_batches = Some(b);
                        }
                    }
                    "Memory Usage" => node.peak_memory_kb = Some(kb(line, val)?),
                    "Disk Usage" => node.disk_usage_kb = Some(kb(line, val)?),
                    "Hits" => node.cache_hits = Some(integer(line, "a count", val)?),
                    "Misses" => node.cache_misses = Some(integer(line, "a count", val)?),
                    "Evictions" => node.cache_evictions = Some(integer(line, "a count", val)?),
                    "Overflows" => node.cache_overflows = Some(integer(line, "a count", val)?),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// What follows `Worker N:` on its own line: the worker's `actual ...` figures, or its
/// first property (`Sort Method: quicksort  Memory: 25kB`).
pub fn apply_worker_line(
    w: &mut WorkerStats,
    node_type: &str,
    rest: &str,
    line: usize,
) -> Result<(), ImportError> {
    if let Some(a) = rest.strip_prefix("actual ") {
        for (k, v) in pairs(a) {
            match k {
                "time" => {
                    let (s, t) = range(line, "actual time=STARTUP..TOTAL", v)?;
                    w.actual_startup_time = Some(s);
                    w.actual_total_time = Some(t);
                }
                "rows" => w.actual_rows = Some(number(line, "actual rows=N", v)?),
                "loops" => w.actual_loops = Some(number(line, "loops=N", v)?),
                _ => {}
            }
        }
        if w.actual_rows.is_none() || w.actual_loops.is_none() {
            return Err(bad(line, "Worker N:  actual ... rows=N loops=N", rest));
        }
        return Ok(());
    }
    match rest.find(": ") {
        Some(at) => apply_worker_property(w, node_type, &rest[..at], &rest[at + 2..], line),
        None => Ok(()),
    }
}

/// A property line of a worker (`Sort Method: ...`, `Batches: ...`, `Buffers: ...`): read
/// as the node's own line would be, keeping the fields a worker has.
pub fn apply_worker_property(
    w: &mut WorkerStats,
    node_type: &str,
    key: &str,
    value: &str,
    line: usize,
) -> Result<(), ImportError> {
    let mut n = PlanNode {
        node_type: node_type.to_string(),
        ..PlanNode::default()
    };
    apply_property(&mut n, key, value, line)?;
    let keep = |to: &mut Option<i64>, from: Option<i64>| {
        if from.is_some() {
            *to = from;
        }
    };
    if n.sort_method.is_some() {
        w.sort_method = n.sort_method;
        w.sort_space_type = n.sort_space_type;
        w.sort_space_kb = n.sort_space_kb;
    }
    if n.hashagg_batches.is_some() {
        // text prints Disk Usage only once it spilled; JSON always
        w.hashagg_batches = n.hashagg_batches;
        w.peak_memory_kb = n.peak_memory_kb;
        w.disk_usage_kb = n.disk_usage_kb.or(Some(0));
    }
    keep(&mut w.shared_hit, n.shared_hit);
    keep(&mut w.shared_read, n.shared_read);
    keep(&mut w.shared_dirtied, n.shared_dirtied);
    keep(&mut w.shared_written, n.shared_written);
    keep(&mut w.temp_read, n.temp_read);
    keep(&mut w.temp_written, n.temp_written);
    Ok(())
}
