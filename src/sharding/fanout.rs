//! The workload against a candidate: which pg_stat_statements calls a router sends to
//! one shard (equality on the key, or an INSERT whose key comes from a default) and
//! which fan out to every shard, the worst listed first. Pure logic over `workload`'s
//! analysis of each text.

use super::model::{SchemaModel, Statement};
use super::workload::{self, Analyzed, StmtKind};
use std::collections::BTreeSet;

/// Short one-line form of a query for lists.
pub fn short_query(q: &str, max: usize) -> String {
    let one: String = q.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= max {
        one
    } else {
        let cut: String = one.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// The top-level statements that read or write tables, analyzed; None without workload
/// statistics.
pub fn analyze_workload(model: &SchemaModel) -> Option<Vec<(Analyzed, &Statement)>> {
    let known: BTreeSet<String> = model
        .tables
        .iter()
        .flat_map(|t| t.columns.iter().map(|(c, _)| c.clone()))
        .collect();
    model.workload.as_ref().map(|w| {
        w.iter()
            .map(|s| (workload::analyze(&s.query, &model.schema, &known), s))
            .filter(|(a, _)| a.kind != StmtKind::Other && !a.tables.is_empty())
            .collect()
    })
}

/// Calls and execution time on a candidate's distributed tables, and the share a
/// router sends to one shard.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routing {
    pub routable: f64,
    pub total: f64,
    pub reads: f64,
    pub routable_ms: f64,
    pub total_ms: f64,
    /// (calls, total ms, query) of statements on the key's tables with no equality on
    /// it, at most five: repeated statements first, then by time.
    pub fan_out: Vec<(f64, f64, String)>,
}

/// Route the analyzed workload for a key held in `key_columns` by the tables
/// `distributed`.
pub fn route<'a>(
    analyzed: &Option<Vec<(Analyzed, &Statement)>>,
    key_columns: impl Iterator<Item = &'a String>,
    distributed: &[String],
) -> Routing {
    let key_names: BTreeSet<&str> = key_columns.map(|s| s.as_str()).collect();
    let dist_set: BTreeSet<&str> = distributed.iter().map(|s| s.as_str()).collect();
    let (mut routable, mut total, mut reads) = (0.0, 0.0, 0.0);
    let (mut routable_ms, mut total_ms) = (0.0, 0.0);
    let mut fan_out = Vec::new();
    if let Some(stmts) = &analyzed {
        for (a, s) in stmts {
            if !a.tables.iter().any(|t| dist_set.contains(t.as_str())) {
                continue;
            }
            total += s.calls;
            total_ms += s.total_ms;
            if a.kind == StmtKind::Read {
                reads += s.calls;
            }
            // an INSERT that leaves the key out gets it from the column default,
            // evaluated before the row is routed: still one shard per row
            let default_key = matches!(&a.insert, Some((t, Some(cols)))
                if dist_set.contains(t.as_str()) && !cols.iter().any(|c| key_names.contains(c.as_str())));
            if default_key
                || a.key_equality
                    .iter()
                    .any(|c| key_names.contains(c.as_str()))
            {
                routable += s.calls;
                routable_ms += s.total_ms;
            } else {
                fan_out.push((s.calls, s.total_ms, short_query(&s.query, 160)));
            }
        }
    }
    // repeated statements first (one-off loads and maintenance last), then by time
    fan_out.sort_by(|a, b| {
        (b.0 >= 2.0)
            .cmp(&(a.0 >= 2.0))
            .then(b.1.total_cmp(&a.1))
            .then(b.0.total_cmp(&a.0))
    });
    fan_out.truncate(5);
    Routing {
        routable,
        total,
        reads,
        routable_ms,
        total_ms,
        fan_out,
    }
}
