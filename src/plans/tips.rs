//! Plan tips: what in a plan is worth fixing, each finding scored by the time a fix could
//! save. A node's exclusive time (its wall time less its children's) is what a fix at that
//! node can at most remove; a misestimate is charged the exclusive time of the nodes above
//! it that inherit the bad estimate. Pure logic over the plan tree (captured or imported);
//! the rule for each finding is in docs/plans.md.

use super::flatten::{flatten, wall_time_ms, FlatNode};
use super::gaps::estimate_gaps;
use super::tree::{ExplainResult, PlanNode};

/// One finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Tip {
    /// Pre-order node id (as estimate_gap numbers them); None for plan-level findings.
    pub node_id: Option<usize>,
    pub node: String,
    pub finding: &'static str,
    pub evidence: String,
    pub first_fix: String,
    /// None when the plan has no timing (EXPLAIN without ANALYZE, TIMING OFF).
    pub est_saving_ms: Option<f64>,
}

/// Filters that throw away at least this share of the rows read, and at least this many.
const WASTE_SHARE: f64 = 0.9;
const WASTE_ROWS: f64 = 1000.0;
/// Heap fetches worth a VACUUM: this share of returned rows and at least this many.
const FETCH_SHARE: f64 = 0.1;
const FETCH_ROWS: f64 = 1000.0;
/// Inner sides of a nested loop run this often deserve a look.
const INNER_LOOPS: f64 = 1000.0;
/// JIT worth reporting: this share of the execution time.
const JIT_SHARE: f64 = 0.1;
/// A parallel node is skewed when one process returned more than this share of its rows
/// and at least this multiple of an even share, out of at least this many rows.
const SKEW_SHARE: f64 = 0.5;
const SKEW_OVER_EVEN: f64 = 1.5;
const SKEW_ROWS: f64 = 1000.0;

fn r1(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

fn pct(part: f64, whole: f64) -> String {
    if whole > 0.0 {
        format!("{}%", r1(100.0 * part / whole))
    } else {
        "0%".into()
    }
}

/// work_mem in whole MB that holds `kb` kilobytes.
fn mb_for(kb: f64) -> i64 {
    ((kb / 1024.0).ceil() as i64).max(1)
}

fn condition<'a>(n: &'a PlanNode, key: &str) -> Option<&'a str> {
    n.conditions
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

struct Times {
    wall: Vec<Option<f64>>,
    exclusive: Vec<Option<f64>>,
}

fn times(flat: &[FlatNode<'_>]) -> Times {
    let wall: Vec<Option<f64>> = (0..flat.len()).map(|i| wall_time_ms(flat, i)).collect();
    let exclusive = flat
        .iter()
        .map(|f| {
            let own = wall.get(f.id).copied().flatten()?;
            let kids: f64 = f
                .children
                .iter()
                .filter_map(|c| wall.get(*c).copied().flatten())
                .sum();
            Some((own - kids).max(0.0))
        })
        .collect();
    Times { wall, exclusive }
}

fn at(v: &[Option<f64>], id: usize) -> Option<f64> {
    v.get(id).copied().flatten()
}

fn scaled(t: Option<f64>, share: f64) -> Option<f64> {
    t.map(|t| t * share.clamp(0.0, 1.0))
}

/// Every finding of the plan, highest saving first (findings without timing last).
pub fn plan_tips(plan: &ExplainResult, threshold: f64) -> Vec<Tip> {
    let flat = flatten(plan);
    let t = times(&flat);
    let gaps = estimate_gaps(plan, threshold);
    let mut tips = Vec::new();

    // for each root cause, the flagged nodes above that inherit its misestimate
    let mut inheritors: Vec<Vec<usize>> = vec![Vec::new(); gaps.len()];
    for r in &gaps {
        for c in &r.inherits_from {
            if let Some(v) = inheritors.get_mut(*c) {
                v.push(r.id);
            }
        }
    }
    for g in gaps.iter().filter(|g| g.root_cause) {
        let drives = inheritors.get(g.id).cloned().unwrap_or_default();
        let charged: Vec<usize> = if drives.is_empty() {
            g.parent.into_iter().collect()
        } else {
            drives
        };
        let saving = charged
            .iter()
            .map(|c| at(&t.exclusive, *c))
            .sum::<Option<f64>>();
        let n = flat.get(g.id).map(|f| f.node);
        let filter = n.and_then(|n| condition(n, "Filter").or(condition(n, "Index Cond")));
        let rel = g
            .relation
            .clone()
            .unwrap_or_else(|| "the tables below".into());
        let fix = match filter {
            Some(f) if f.contains(" AND ") => format!(
                "ANALYZE {rel}; the predicates in {f} look correlated: CREATE STATISTICS (dependencies, mcv) on their columns"
            ),
            Some(f) => format!(
                "ANALYZE {rel}; if it stays off, raise the statistics target of the column in {f}"
            ),
            None => format!("ANALYZE {rel}; then look at the join or grouping columns this node estimates"),
        };
        tips.push(Tip {
            node_id: Some(g.id),
            node: g.node.clone(),
            finding: "row estimate",
            evidence: format!(
                "estimated {} rows, got {} (q-error {}, {}); {} node(s) above inherit it",
                r1(g.est_rows),
                r1(g.actual_rows.unwrap_or(0.0)),
                r1(g.q_error.unwrap_or(1.0)),
                g.direction.map(|d| d.as_str()).unwrap_or("exact"),
                charged.len()
            ),
            first_fix: fix,
            est_saving_ms: saving,
        });
    }

    for f in &flat {
        node_tips(f, &flat, &t, threshold, &mut tips);
    }

    if let (Some(j), Some(exec)) = (&plan.jit, plan.execution_time) {
        if let Some(total) = j.total_ms {
            if exec > 0.0 && total >= JIT_SHARE * exec {
                tips.push(Tip {
                    node_id: None,
                    node: "JIT (whole plan)".into(),
                    finding: "JIT share",
                    evidence: format!(
                        "JIT took {} ms of {} ms execution ({}), {} functions",
                        r1(total),
                        r1(exec),
                        pct(total, exec),
                        j.functions.unwrap_or(0)
                    ),
                    first_fix:
                        "SET jit = off for this query, or raise jit_above_cost above its total cost"
                            .into(),
                    est_saving_ms: Some(total),
                });
            }
        }
    }

    tips.sort_by(|a, b| {
        let key = |t: &Tip| t.est_saving_ms.unwrap_or(-1.0);
        key(b)
            .total_cmp(&key(a))
            .then(a.node_id.cmp(&b.node_id))
            .then(a.finding.cmp(b.finding))
    });
    tips
}

fn node_tips(
    f: &FlatNode<'_>,
    flat: &[FlatNode<'_>],
    t: &Times,
    threshold: f64,
    tips: &mut Vec<Tip>,
) {
    let n = f.node;
    let excl = at(&t.exclusive, f.id);
    let loops = n.actual_loops.unwrap_or(0.0).max(0.0);
    let returned = n.total_actual_rows().unwrap_or(0.0);
    let mut push =
        |finding: &'static str, evidence: String, first_fix: String, saving: Option<f64>| {
            tips.push(Tip {
                node_id: Some(f.id),
                node: n.label(),
                finding,
                evidence,
                first_fix,
                est_saving_ms: saving,
            })
        };
    let rel = n.relation.clone().unwrap_or_else(|| "the table".into());

    // filters and rechecks that throw most rows away
    let removed = (n.rows_removed_by_filter.unwrap_or(0.0)
        + n.rows_removed_by_index_recheck.unwrap_or(0.0))
        * loops;
    if removed >= WASTE_ROWS && removed >= WASTE_SHARE * (removed + returned) {
        let share = removed / (removed + returned);
        let buffers = n.shared_hit.unwrap_or(0) + n.shared_read.unwrap_or(0);
        let per_row = if buffers > 0 {
            format!(
                ", {} buffers per returned row",
                r1(buffers as f64 / returned.max(1.0))
            )
        } else {
            String::new()
        };
        let filter = condition(n, "Filter").unwrap_or("its filter");
        let evidence = format!(
            "read {} rows to return {} ({} removed{per_row})",
            r1(removed + returned),
            r1(returned),
            pct(removed, removed + returned)
        );
        if n.node_type == "Seq Scan" {
            push(
                "missing index",
                evidence,
                format!("CREATE INDEX ON {rel} on the columns of {filter} (most selective first)"),
                scaled(excl, share),
            );
        } else {
            push(
                "read efficiency",
                evidence,
                format!("an index that also covers {filter}, so rows are filtered in the index, not after reading them"),
                scaled(excl, share),
            );
        }
    }

    if let Some((method, kb, suffix)) = disk_sort(n) {
        push(
            "sort on disk",
            format!("{method} wrote {} kB to disk{suffix}", r1(kb)),
            format!(
                "SET work_mem = '{}MB' for this query (an in-memory sort needs about 3x the {} kB it wrote)",
                mb_for(kb * 3.0),
                r1(kb)
            ),
            excl,
        );
    }

    if let Some(b) = n.hash_batches.filter(|b| *b > 1) {
        let mem = n.peak_memory_kb.unwrap_or(0) as f64;
        let need = mem * b as f64;
        let parent_excl = f.parent.and_then(|p| at(&t.exclusive, p));
        push(
            "hash batches",
            format!(
                "hash split into {b} batches (planned {}), {} kB each",
                n.original_hash_batches.unwrap_or(b),
                r1(mem)
            ),
            format!(
                "SET work_mem = '{}MB' (or raise hash_mem_multiplier) so the hash table of about {} kB fits in one batch",
                mb_for(need),
                r1(need)
            ),
            match (excl, parent_excl) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            },
        );
    }

    if let Some((batches, disk, mem, suffix)) = hashagg_spill(n) {
        let need = (mem + disk) as f64;
        push(
            "hash aggregate spill",
            format!(
                "HashAggregate spilled: {batches} batches, {disk} kB on disk, {mem} kB in memory{suffix}"
            ),
            format!(
                "SET work_mem = '{}MB' (or raise hash_mem_multiplier) so the {} kB of groups stay in memory",
                mb_for(need),
                r1(need)
            ),
            excl,
        );
    }

    if n.node_type == "Index Only Scan" {
        let fetches = n.heap_fetches.unwrap_or(0) as f64;
        if fetches >= FETCH_ROWS && fetches >= FETCH_SHARE * returned {
            push(
                "heap fetches",
                format!(
                    "{} heap fetches for {} rows returned ({}): the visibility map is stale",
                    r1(fetches),
                    r1(returned),
                    pct(fetches, returned.max(fetches))
                ),
                format!("VACUUM {rel}, and lower its autovacuum_vacuum_insert_scale_factor so it stays all-visible"),
                scaled(excl, fetches / returned.max(fetches)),
            );
        }
    }

    if let Some(lossy) = n.lossy_heap_blocks.filter(|l| *l > 0) {
        let total = (lossy + n.exact_heap_blocks.unwrap_or(0)) as f64;
        push(
            "lossy bitmap",
            format!(
                "{lossy} of {} heap blocks lossy, {} rows removed by recheck",
                r1(total),
                r1(n.rows_removed_by_index_recheck.unwrap_or(0.0) * loops)
            ),
            "raise work_mem so the bitmap stays exact (one bit per row, not per page)".into(),
            scaled(excl, lossy as f64 / total.max(1.0)),
        );
    }

    if let (Some(p), Some(l)) = (n.workers_planned, n.workers_launched) {
        if l < p {
            push(
                "workers not launched",
                format!("{p} workers planned, {l} launched"),
                "raise max_parallel_workers and max_worker_processes, or run fewer parallel queries at once".into(),
                scaled(at(&t.wall, f.id), 1.0 - (l + 1) as f64 / (p + 1) as f64),
            );
        }
    }

    if let Some(s) = skew(n) {
        let who = match s.busiest {
            Some(w) => format!("worker {w}"),
            None => "the leader".to_string(),
        };
        let fix = match s.busiest {
            None => "the workers joined late or found little left to do: for a node this short, parallel startup costs more than it spreads; raise parallel_setup_cost (or SET max_parallel_workers_per_gather = 0) for the query and compare with explain_diff",
            Some(_) => "one worker got most of the rows: look for a Parallel Append over non-partial children or a parallel index scan over few pages, and compare another max_parallel_workers_per_gather with explain_diff",
        };
        push(
            "parallel skew",
            format!(
                "{who} returned {} of {} rows ({}); an even share over {} processes is {}",
                r1(s.rows),
                r1(s.total),
                pct(s.rows, s.total),
                s.processes,
                pct(1.0, s.processes as f64)
            ),
            fix.into(),
            scaled(excl, 1.0 - 1.0 / (s.processes as f64 * s.rows / s.total)),
        );
    }

    if n.node_type == "Nested Loop" {
        let outer = f.children.first().and_then(|c| flat.get(*c));
        let inner = f.children.get(1).and_then(|c| flat.get(*c));
        if let Some(inner) = inner {
            let inner_loops = inner.node.actual_loops.unwrap_or(0.0);
            if inner_loops >= INNER_LOOPS {
                let inner_ms = at(&t.wall, inner.id);
                let fix = match outer.map(|o| o.node) {
                    Some(o) if o.executed() && super::gaps::q_error(o.total_est_rows(), o.total_actual_rows().unwrap_or(0.0)).0 >= threshold => format!(
                        "fix the outer estimate first ({} estimated {} rows, got {}): with it the planner picks a hash join",
                        o.label(),
                        r1(o.total_est_rows()),
                        r1(o.total_actual_rows().unwrap_or(0.0))
                    ),
                    _ => "an index on the inner side's join key makes each loop an index probe; compare a hash join with explain_diff (SET enable_nestloop = off)".into(),
                };
                push(
                    "nested loop",
                    format!(
                        "inner side {} ran {} times{}",
                        inner.node.label(),
                        r1(inner_loops),
                        inner_ms
                            .map(|m| format!(" ({} ms in all)", r1(m)))
                            .unwrap_or_default()
                    ),
                    fix,
                    inner_ms.map(|m| m - m / inner_loops),
                );
            }
        }
    }
}

/// The largest sort that went to disk, the leader's or a worker's: (method, kB, and
/// which process it was when workers sorted too).
fn disk_sort(n: &PlanNode) -> Option<(String, f64, String)> {
    let on_disk = |t: &Option<String>| t.as_deref() == Some("Disk");
    let mut spills: Vec<(Option<i64>, &str, i64)> = Vec::new();
    if on_disk(&n.sort_space_type) {
        spills.push((
            None,
            n.sort_method.as_deref().unwrap_or("sort"),
            n.sort_space_kb.unwrap_or(0),
        ));
    }
    for w in n.workers.iter().filter(|w| on_disk(&w.sort_space_type)) {
        spills.push((
            Some(w.worker_number),
            w.sort_method.as_deref().unwrap_or("sort"),
            w.sort_space_kb.unwrap_or(0),
        ));
    }
    let (who, method, kb) = spills.iter().max_by_key(|s| s.2).copied()?;
    let sorted = usize::from(n.sort_method.is_some())
        + n.workers.iter().filter(|w| w.sort_method.is_some()).count();
    let suffix = if spills.len() == 1 && who.is_none() {
        String::new()
    } else {
        format!(
            " ({}; {} of {} processes sorted on disk)",
            who.map_or("the leader".to_string(), |w| format!("worker {w}")),
            spills.len(),
            sorted.max(spills.len())
        )
    };
    Some((method.to_string(), kb as f64, suffix))
}

/// A hash aggregation that spilled, the leader's or a worker's (the one that needed the
/// most memory): (batches, disk kB, memory kB, and which process when workers spilled).
fn hashagg_spill(n: &PlanNode) -> Option<(i64, i64, i64, String)> {
    if n.node_type != "Aggregate" {
        return None;
    }
    let spilled =
        |b: Option<i64>, d: Option<i64>| b.is_some_and(|b| b > 1) || d.is_some_and(|d| d > 0);
    let mut spills: Vec<(Option<i64>, i64, i64, i64)> = Vec::new();
    if spilled(n.hashagg_batches, n.disk_usage_kb) {
        spills.push((
            None,
            n.hashagg_batches.unwrap_or(1),
            n.disk_usage_kb.unwrap_or(0),
            n.peak_memory_kb.unwrap_or(0),
        ));
    }
    for w in &n.workers {
        if spilled(w.hashagg_batches, w.disk_usage_kb) {
            spills.push((
                Some(w.worker_number),
                w.hashagg_batches.unwrap_or(1),
                w.disk_usage_kb.unwrap_or(0),
                w.peak_memory_kb.unwrap_or(0),
            ));
        }
    }
    let (who, batches, disk, mem) = spills.iter().max_by_key(|s| s.2 + s.3).copied()?;
    let suffix = if spills.len() == 1 && who.is_none() {
        String::new()
    } else {
        format!(
            " ({}; {} of {} processes spilled)",
            who.map_or("the leader".to_string(), |w| format!("worker {w}")),
            spills.len(),
            (n.workers.len() + usize::from(n.hashagg_batches.is_some())).max(spills.len())
        )
    };
    Some((batches, disk, mem, suffix))
}

/// How unevenly a parallel node's rows fell on its processes.
struct Skew {
    /// The process with the most rows: a worker's number, or None for the leader.
    busiest: Option<i64>,
    rows: f64,
    total: f64,
    processes: usize,
}

/// A parallel-aware node whose per-worker figures (VERBOSE) show one process returning
/// most of the rows: more than [`SKEW_SHARE`] of them and at least [`SKEW_OVER_EVEN`]
/// times an even share, out of at least [`SKEW_ROWS`]. The leader's part is what the
/// workers do not account for (its loops: the node's loops less the workers').
fn skew(n: &PlanNode) -> Option<Skew> {
    if !n.parallel_aware || n.workers.is_empty() {
        return None;
    }
    let total = n.total_actual_rows()?;
    let mut procs: Vec<(Option<i64>, f64)> = Vec::new();
    let (mut worker_rows, mut worker_loops) = (0.0, 0.0);
    for w in &n.workers {
        let rows = w.total_actual_rows()?;
        worker_rows += rows;
        worker_loops += w.actual_loops.unwrap_or(0.0);
        procs.push((Some(w.worker_number), rows));
    }
    if n.actual_loops.unwrap_or(0.0) - worker_loops >= 1.0 {
        procs.push((None, (total - worker_rows).max(0.0)));
    }
    let processes = procs.len();
    if processes < 2 || total < SKEW_ROWS {
        return None;
    }
    let (busiest, rows) = procs
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))?;
    let share = rows / total;
    (share > SKEW_SHARE && share * processes as f64 >= SKEW_OVER_EVEN).then_some(Skew {
        busiest,
        rows,
        total,
        processes,
    })
}
