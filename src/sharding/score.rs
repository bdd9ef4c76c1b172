//! Shard-key scoring in plain Rust: no pgrx types, so `#[test]`s cover it without a
//! server. `catalog` reads the catalogs, `pg_stats` and `pg_stat_statements` into a
//! [`SchemaModel`]; [`advise`] ranks the candidate keys of `candidates`, judged by
//! `distribution` and `fanout` and explained by `reasoning`; `plan` turns the
//! chosen one into steps and Citus DDL.
//!
//! A candidate key is a set of columns joined by foreign keys (`orders.tenant_id`
//! and `customers.tenant_id` are one candidate because an FK pairs them), plus
//! same-named columns of tables no FK reaches. Each candidate is judged on four
//! things, each in [0, 1]:
//! - co-location: the share of foreign-key joins (weighted by the child's rows)
//!   that stay on one shard, directly or through a reference table;
//! - coverage: the share of rows in tables that carry the key (tables that cannot
//!   be distributed by it and are too big to replicate are the rest);
//! - access: the share of workload calls that filter on the key by equality (so a
//!   router sends them to one shard), or without workload statistics the share of
//!   rows whose primary key leads with the key;
//! - balance: the fair share 1/N over the expected hottest shard's share, averaged
//!   over the shard counts asked for.

use super::candidates::{candidates, classify_join, placements, JoinKind, Placement};
use super::distribution::{combine, expected_hottest_share, hot_values, KeyDist};
use super::fanout;
use super::model::{ColumnStats, SchemaModel, Table};
use super::reasoning::reasoning;
use std::collections::{BTreeMap, HashMap};

/// Weights of the four components; they sum to 1.
pub const W_COLOCATION: f64 = 0.35;
pub const W_COVERAGE: f64 = 0.25;
pub const W_ACCESS: f64 = 0.20;
pub const W_BALANCE: f64 = 0.20;

/// The four components of a candidate's score, each in [0, 1].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Components {
    pub colocation: f64,
    pub coverage: f64,
    pub access: f64,
    pub balance: f64,
    /// true when `access` comes from pg_stat_statements, false for the primary-key proxy
    pub access_from_workload: bool,
}

/// Score in [0, 100]: the weighted components, scaled down by the share of NULL
/// keys (a distributed table cannot hold a NULL distribution key).
pub fn score(c: &Components, null_share: f64) -> f64 {
    let s = W_COLOCATION * c.colocation
        + W_COVERAGE * c.coverage
        + W_ACCESS * c.access
        + W_BALANCE * c.balance;
    100.0 * s.clamp(0.0, 1.0) * (1.0 - null_share.clamp(0.0, 1.0))
}

/// Balance: fair share 1/N over the hottest share, averaged over the shard counts.
pub fn balance(shards: &[u32], hottest: &[f64]) -> f64 {
    let v: Vec<f64> = shards
        .iter()
        .zip(hottest)
        .filter(|(_, h)| **h > 0.0)
        .map(|(n, h)| ((1.0 / *n as f64) / h).min(1.0))
        .collect();
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// What the advisor says about one candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Advice {
    pub rank: usize,
    pub key: String,
    pub key_type: String,
    pub columns: BTreeMap<String, String>,
    pub placement: BTreeMap<String, Placement>,
    pub distributed: Vec<String>,
    pub reference: Vec<String>,
    pub local: Vec<String>,
    pub dist: KeyDist,
    pub hot: Vec<(String, f64)>,
    pub shards: Vec<u32>,
    pub hottest: Vec<f64>,
    pub colocated: Vec<String>,
    pub via_reference: Vec<String>,
    pub cross: Vec<String>,
    pub routable_share: Option<f64>,
    /// The same share weighted by execution time instead of calls.
    pub routable_time_share: Option<f64>,
    pub read_share: Option<f64>,
    /// (calls, total ms, query) of statements on the key's tables with no equality on it
    pub fan_out: Vec<(f64, f64, String)>,
    pub components: Components,
    pub score: f64,
    pub reasoning: String,
    /// Tables without statistics (too small to matter), named in the reasoning.
    pub unanalyzed: Vec<String>,
}

/// Rank every candidate key of the schema.
pub fn advise(model: &SchemaModel, shards: &[u32], unanalyzed: &[String]) -> Vec<Advice> {
    let analyzed = fanout::analyze_workload(model);
    let max_n = shards.iter().copied().max().unwrap_or(2);
    let tables: HashMap<&str, &Table> = model.tables.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut out = Vec::new();
    for cand in candidates(model) {
        let place = placements(model, &cand);
        let of = |p: Placement| -> Vec<String> {
            place
                .iter()
                .filter(|(_, v)| **v == p)
                .map(|(k, _)| k.clone())
                .collect()
        };
        let (distributed, reference, local) = (
            of(Placement::Distributed),
            of(Placement::Reference),
            of(Placement::Local),
        );
        if distributed.is_empty() {
            continue;
        }
        // distribution of the key over the distributed tables
        let empty = ColumnStats::default();
        let parts: Vec<(f64, &ColumnStats)> = distributed
            .iter()
            .filter_map(|t| {
                let tb = tables.get(t.as_str())?;
                let col = cand.columns.get(t)?;
                Some((tb.rows, tb.stats.get(col).unwrap_or(&empty)))
            })
            .collect();
        let dist = combine(&parts);
        let mcv_shares: Vec<f64> = dist.mcv.iter().map(|(_, s)| *s).collect();
        let hottest: Vec<f64> = shards
            .iter()
            .map(|n| expected_hottest_share(&mcv_shares, dist.rest_mass, dist.rest_values, *n))
            .collect();
        let hot = hot_values(&dist, max_n);

        // joins
        let (mut colocated, mut via_reference, mut cross) = (Vec::new(), Vec::new(), Vec::new());
        let (mut w_local, mut w_all) = (0.0, 0.0);
        for fk in &model.fks {
            if !tables.contains_key(fk.child.as_str()) || !tables.contains_key(fk.parent.as_str()) {
                continue;
            }
            let w = 1.0
                + tables
                    .get(fk.child.as_str())
                    .map_or(0.0, |t| t.rows.max(0.0));
            let label = format!(
                "{} -> {} ({})",
                fk.child,
                fk.parent,
                fk.pairs
                    .iter()
                    .map(|(a, _)| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            w_all += w;
            match classify_join(fk, &cand, &place) {
                JoinKind::Colocated => {
                    w_local += w;
                    colocated.push(label);
                }
                JoinKind::Local => {
                    w_local += w;
                    via_reference.push(label);
                }
                JoinKind::CrossShard => cross.push(label),
                JoinKind::Unsharded => cross.push(format!("{label}, neither side distributed")),
            }
        }
        let rows_of = |names: &[String]| -> f64 {
            names
                .iter()
                .filter_map(|n| tables.get(n.as_str()))
                .map(|t| t.rows.max(0.0))
                .sum()
        };
        let (r_dist, r_local) = (rows_of(&distributed), rows_of(&local));
        let coverage = if r_dist + r_local > 0.0 {
            r_dist / (r_dist + r_local)
        } else {
            0.0
        };
        let colocation = if w_all > 0.0 {
            w_local / w_all
        } else {
            coverage
        };

        // workload: statements that touch the key's tables
        let fanout::Routing {
            routable,
            total,
            reads,
            routable_ms,
            total_ms,
            fan_out,
        } = fanout::route(&analyzed, cand.columns.values(), &distributed);
        let routable_share = (total > 0.0).then(|| routable / total);
        let routable_time_share = (total_ms > 0.0).then(|| routable_ms / total_ms);
        let read_share = if total > 0.0 {
            Some(reads / total)
        } else {
            let (r, w): (f64, f64) = distributed
                .iter()
                .filter_map(|n| tables.get(n.as_str()))
                .fold((0.0, 0.0), |acc, t| {
                    (acc.0 + t.tuples_read, acc.1 + t.tuples_written)
                });
            (r + w > 0.0).then(|| r / (r + w))
        };
        let pk_leads: f64 = distributed
            .iter()
            .filter_map(|n| tables.get(n.as_str()).map(|t| (n, t)))
            .filter(|(n, t)| t.pk.first() == cand.columns.get(*n))
            .map(|(_, t)| t.rows.max(0.0))
            .sum();
        let (access, access_from_workload) = match routable_share {
            Some(r) => (r, true),
            None if r_dist > 0.0 => (pk_leads / r_dist + 0.0, false),
            None => (0.0, false),
        };
        let components = Components {
            colocation,
            coverage,
            access,
            balance: balance(shards, &hottest),
            access_from_workload,
        };
        let s = score(&components, dist.null_share);
        let mut a = Advice {
            rank: 0,
            key: cand.name.clone(),
            key_type: cand.key_type.clone(),
            columns: cand.columns.clone(),
            placement: place,
            distributed,
            reference,
            local,
            dist,
            hot,
            shards: shards.to_vec(),
            hottest,
            colocated,
            via_reference,
            cross,
            routable_share,
            routable_time_share,
            read_share,
            fan_out,
            components,
            score: s,
            reasoning: String::new(),
            unanalyzed: unanalyzed.to_vec(),
        };
        a.reasoning = reasoning(&a, model.tables.len());
        out.push(a);
    }
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.components.coverage.total_cmp(&a.components.coverage))
            .then_with(|| a.key.cmp(&b.key))
    });
    for (i, a) in out.iter_mut().enumerate() {
        a.rank = i + 1;
    }
    out
}

#[cfg(test)]
#[path = "score_tests.rs"]
mod unit;
