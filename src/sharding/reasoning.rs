//! A candidate explained in a few sentences: coverage, joins, the hottest values and
//! shard, NULLs, the workload and the score's terms. Text only, from an `Advice`.

use super::score::Advice;
use crate::infra::format::pct;
use std::fmt::Write;

/// The candidate explained in a few sentences.
pub fn reasoning(a: &Advice, n_tables: usize) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "{}: carried by {} of {} tables ({} of rows in tables that can be distributed by it)",
        a.key,
        a.distributed.len()
            + a.reference
                .iter()
                .filter(|t| a.columns.contains_key(*t))
                .count(),
        n_tables,
        pct(a.components.coverage)
    );
    if !a.local.is_empty() {
        let _ = write!(
            o,
            "; {} lack it and are too big to replicate",
            a.local.join(", ")
        );
    }
    let total_joins = a.colocated.len() + a.via_reference.len() + a.cross.len();
    let _ = write!(
        o,
        ". Joins: {} of {} foreign keys stay on one shard ({} co-located, {} through a reference table)",
        a.colocated.len() + a.via_reference.len(),
        total_joins,
        a.colocated.len(),
        a.via_reference.len()
    );
    if !a.cross.is_empty() {
        let _ = write!(o, "; cross-shard: {}", a.cross.join("; "));
    }
    if !a.reference.is_empty() {
        let _ = write!(o, ". Reference tables: {}", a.reference.join(", "));
    }
    let _ = write!(o, ". {:.0} distinct values", a.dist.distinct);
    match a.dist.mcv.first() {
        Some((v, s)) => {
            let _ = write!(o, "; the hottest, {v}, holds {} of rows", pct(*s));
        }
        None => {
            let _ = write!(o, "; no value is common enough to be listed in pg_stats");
        }
    }
    if let (Some(n), Some(h)) = (a.shards.last(), a.hottest.last()) {
        let _ = write!(
            o,
            "; at {n} shards the hottest shard is expected to hold {} ({:.1}x its fair share {})",
            pct(*h),
            h * *n as f64,
            pct(1.0 / *n as f64)
        );
    }
    if (a.dist.distinct as u32) < a.shards.iter().copied().max().unwrap_or(0) {
        let _ = write!(
            o,
            "; with only {:.0} values at most {:.0} shards can hold data",
            a.dist.distinct, a.dist.distinct
        );
    }
    if !a.hot.is_empty() {
        let _ = write!(
            o,
            ". Hot keys: {}",
            a.hot
                .iter()
                .map(|(v, s)| format!("{v} ({})", pct(*s)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if a.dist.null_share > 0.0 {
        let _ = write!(
            o,
            ". {} of rows have a NULL {}: a distribution column cannot be NULL",
            pct(a.dist.null_share),
            a.key
        );
    }
    match a.routable_share {
        Some(r) => {
            let _ = write!(
                o,
                ". Workload: {} of calls on these tables filter on {} by equality (one shard); {} fan out to every shard",
                pct(r),
                a.key,
                pct(1.0 - r)
            );
            if let Some(t) = a.routable_time_share {
                let _ = write!(o, " ({} of their execution time)", pct(1.0 - t));
            }
        }
        None => {
            let _ = write!(
                o,
                ". Workload: no pg_stat_statements data; the primary keys of {} of the rows lead with {}",
                pct(a.components.access),
                a.key
            );
        }
    }
    let _ = write!(
        o,
        ". Score {:.0} = 100 x (0.35 x co-location {:.2} + 0.25 x coverage {:.2} + 0.20 x access {:.2} + 0.20 x balance {:.2})",
        a.score,
        a.components.colocation,
        a.components.coverage,
        a.components.access,
        a.components.balance
    );
    if a.dist.null_share > 0.0 {
        let _ = write!(o, " x (1 - NULL share)");
    }
    if !a.unanalyzed.is_empty() {
        let _ = write!(
            o,
            ". Not analyzed (too small to matter): {}",
            a.unanalyzed.join(", ")
        );
    }
    o.push('.');
    o
}
