//! Shard-key scoring in plain Rust: no pgrx types, so `#[test]`s cover it without a
//! server. The SQL layer (`super`) reads the catalogs, `pg_stats` and
//! `pg_stat_statements` into a [`SchemaModel`]; [`advise`] ranks candidate keys and
//! [`plan`] turns the chosen one into steps and Citus DDL.
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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;

use super::workload::{self, Analyzed, StmtKind};
use crate::infra::format::pct;

/// Weights of the four components; they sum to 1.
pub const W_COLOCATION: f64 = 0.35;
pub const W_COVERAGE: f64 = 0.25;
pub const W_ACCESS: f64 = 0.20;
pub const W_BALANCE: f64 = 0.20;

/// A table at most this many rows (or 1% of the largest table, whichever is more)
/// is small enough to replicate to every node as a reference table.
pub const REFERENCE_MIN_ROWS: f64 = 10_000.0;

/// Monte Carlo trials per shard count for the hottest-shard estimate.
pub const TRIALS: u32 = 2000;

/// Value statistics of one column of one table, from `pg_stats`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnStats {
    /// Fraction of rows that are NULL.
    pub null_frac: f64,
    /// Distinct non-null values, as an absolute count (see [`absolute_n_distinct`]).
    pub n_distinct: f64,
    /// Most common values with their frequency as a fraction of all rows.
    pub mcv: Vec<(String, f64)>,
}

/// One table of the schema.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub name: String,
    /// Estimated rows (`reltuples`, summed over partitions for a partitioned table).
    pub rows: f64,
    pub bytes: i64,
    /// Columns in order, with their SQL type.
    pub columns: Vec<(String, String)>,
    /// Primary key columns in key order (empty without a primary key).
    pub pk: Vec<String>,
    /// Other unique constraints' columns.
    pub uniques: Vec<Vec<String>>,
    /// `pg_stats` per column name; a column without statistics is absent.
    pub stats: HashMap<String, ColumnStats>,
    /// Tuples read vs written since the statistics reset (`pg_stat_user_tables`).
    pub tuples_read: f64,
    pub tuples_written: f64,
}

impl Table {
    fn type_of(&self, col: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(c, _)| c == col)
            .map(|(_, t)| t.as_str())
    }
}

/// A foreign key `child (pairs.0, ...) REFERENCES parent (pairs.1, ...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKey {
    pub name: String,
    pub child: String,
    pub parent: String,
    pub pairs: Vec<(String, String)>,
}

/// One `pg_stat_statements` entry (top-level statements only).
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub query: String,
    pub calls: f64,
    pub total_ms: f64,
}

/// Everything the advisor knows about a schema.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchemaModel {
    pub schema: String,
    pub tables: Vec<Table>,
    pub fks: Vec<ForeignKey>,
    /// `None` when pg_stat_statements is not available in this database.
    pub workload: Option<Vec<Statement>>,
}

/// `pg_stats.n_distinct` as an absolute count: negative values are a fraction of the rows.
pub fn absolute_n_distinct(n_distinct: f64, rows: f64) -> f64 {
    if !n_distinct.is_finite() {
        0.0
    } else if n_distinct < 0.0 {
        (-n_distinct * rows.max(0.0)).round()
    } else {
        n_distinct
    }
}

/// The value distribution of a key over all the tables distributed by it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyDist {
    /// Most common values and their share of the non-null rows, hottest first.
    pub mcv: Vec<(String, f64)>,
    /// Share of the non-null rows not on an MCV value, spread evenly over `rest_values`.
    pub rest_mass: f64,
    pub rest_values: f64,
    /// Distinct values of the key (the largest count any table reports).
    pub distinct: f64,
    /// Share of rows whose key is NULL.
    pub null_share: f64,
    pub rows: f64,
}

/// Combine per-table statistics into one distribution, weighting each table by its
/// rows: a value's share is the rows it has across tables over all non-null rows.
/// A value outside a table's MCV list is assumed to hold that table's average
/// non-MCV frequency there.
pub fn combine(parts: &[(f64, &ColumnStats)]) -> KeyDist {
    let mut by_value: BTreeMap<String, f64> = BTreeMap::new();
    let mut total_nonnull = 0.0;
    let mut total = 0.0;
    let mut nulls = 0.0;
    let mut distinct: f64 = 0.0;
    for (rows, s) in parts {
        let rows = rows.max(0.0);
        total += rows;
        nulls += rows * s.null_frac.clamp(0.0, 1.0);
        total_nonnull += rows * (1.0 - s.null_frac.clamp(0.0, 1.0));
        distinct = distinct.max(s.n_distinct);
        for (v, _) in &s.mcv {
            by_value.entry(v.clone()).or_insert(0.0);
        }
    }
    for (rows, s) in parts {
        let rows = rows.max(0.0);
        let mcv_sum: f64 = s.mcv.iter().map(|(_, f)| f).sum();
        let rest_n = (s.n_distinct - s.mcv.len() as f64).max(1.0);
        let rest_each = rows * (1.0 - s.null_frac - mcv_sum).max(0.0) / rest_n;
        let own: HashMap<&str, f64> = s.mcv.iter().map(|(v, f)| (v.as_str(), *f)).collect();
        for (v, acc) in by_value.iter_mut() {
            *acc += match own.get(v.as_str()) {
                Some(f) => rows * f,
                // a value this table does not list: only if the table has that many values
                None if s.n_distinct > s.mcv.len() as f64 => rest_each,
                None => 0.0,
            };
        }
    }
    let mut mcv: Vec<(String, f64)> = if total_nonnull > 0.0 {
        by_value
            .into_iter()
            .map(|(v, r)| (v, r / total_nonnull))
            .collect()
    } else {
        Vec::new()
    };
    mcv.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let distinct = distinct.max(mcv.len() as f64);
    let listed: f64 = mcv.iter().map(|(_, s)| s).sum();
    let mut rest_values = (distinct - mcv.len() as f64).max(0.0);
    let mut rest_mass = (1.0 - listed).max(0.0);
    if rest_values < 1.0 {
        // the MCVs are every value: renormalize away the sampling error
        if listed > 0.0 {
            for m in mcv.iter_mut() {
                m.1 /= listed;
            }
        }
        rest_mass = 0.0;
        rest_values = 0.0;
    } else if listed > 1.0 {
        for m in mcv.iter_mut() {
            m.1 /= listed;
        }
        rest_mass = 0.0;
    }
    KeyDist {
        mcv,
        rest_mass,
        rest_values,
        distinct,
        null_share: if total > 0.0 { nulls / total } else { 0.0 },
        rows: total,
    }
}

/// splitmix64: a small deterministic generator, so the same statistics always
/// give the same estimate.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u32) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Above this many non-MCV values their per-shard total is drawn from a normal
/// approximation instead of placing each value.
const EXPLICIT_REST_MAX: f64 = 4096.0;

/// Expected share of all rows on the hottest of `shards` hash shards. Hashing puts
/// each distinct value on a uniformly random shard: the MCV values are placed one
/// by one, the remaining `rest_values` values (each holding `rest_mass /
/// rest_values`) are placed one by one when few, or as a binomial count per shard
/// (normal approximation) when many. Averaged over [`TRIALS`] deterministic trials.
pub fn expected_hottest_share(mcv: &[f64], rest_mass: f64, rest_values: f64, shards: u32) -> f64 {
    if shards <= 1 {
        return 1.0;
    }
    let total: f64 = mcv.iter().sum::<f64>() + rest_mass.max(0.0);
    if total <= 0.0 {
        return 1.0 / shards as f64;
    }
    let n = shards as usize;
    let mut rng = Rng(0x5EED ^ ((shards as u64) << 32) ^ mcv.len() as u64);
    let mut load = vec![0.0f64; n];
    let rest_values = rest_values.max(0.0).round();
    let explicit = rest_values > 0.0 && rest_values <= EXPLICIT_REST_MAX;
    let rest_each = if rest_values > 0.0 {
        rest_mass / rest_values
    } else {
        0.0
    };
    // the per-shard binomial count of rest values: mean m/n, variance m (1/n)(1 - 1/n)
    let p = 1.0 / shards as f64;
    let rest_sd = rest_each * (rest_values * p * (1.0 - p)).sqrt();
    let mut sum_max = 0.0;
    for _ in 0..TRIALS {
        load.iter_mut().for_each(|l| *l = 0.0);
        for &m in mcv {
            load[rng.below(shards)] += m;
        }
        if explicit {
            for _ in 0..rest_values as u64 {
                load[rng.below(shards)] += rest_each;
            }
        } else if rest_values > 0.0 {
            for l in load.iter_mut() {
                *l += (rest_mass * p + rest_sd * rng.normal()).max(0.0);
            }
        }
        let t: f64 = load.iter().sum();
        let mx = load.iter().cloned().fold(0.0, f64::max);
        sum_max += if t > 0.0 { mx / t } else { p };
    }
    sum_max / TRIALS as f64
}

/// Where a table goes when the schema is distributed by a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Placement {
    /// Hash-distributed by the key, co-located with the other distributed tables.
    Distributed,
    /// Small: replicated to every node.
    Reference,
    /// Too big to replicate and without the key: stays on one node; joins with it
    /// cross shards.
    Local,
}

impl Placement {
    pub fn as_str(&self) -> &'static str {
        match self {
            Placement::Distributed => "distributed",
            Placement::Reference => "reference",
            Placement::Local => "local",
        }
    }
}

/// How a foreign-key join runs under a placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// Both sides distributed and the FK pairs the key with the key: one shard.
    Colocated,
    /// The parent is replicated (or both sides stay on one node): local everywhere.
    Local,
    /// Needs rows from other shards (or is not allowed, e.g. reference -> distributed).
    CrossShard,
    /// Both sides too big to replicate and without the key: the join is local only
    /// because neither table is sharded.
    Unsharded,
}

/// A candidate key: for each carrying table, the column that holds the key.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub key_type: String,
    /// table -> column
    pub columns: BTreeMap<String, String>,
}

/// Candidates: union the columns that foreign keys pair, starting from every
/// primary-key, unique and foreign-key column; then attach same-named columns of
/// the same type in tables the class does not reach yet.
pub fn candidates(model: &SchemaModel) -> Vec<Candidate> {
    let mut idx: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut parent: Vec<usize> = Vec::new();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    let mut id = |t: &str, c: &str, parent: &mut Vec<usize>| -> usize {
        let key = (t.to_string(), c.to_string());
        if let Some(i) = idx.get(&key) {
            return *i;
        }
        let i = parent.len();
        parent.push(i);
        idx.insert(key, i);
        i
    };
    let tables: HashMap<&str, &Table> = model.tables.iter().map(|t| (t.name.as_str(), t)).collect();
    let fk_cols: BTreeSet<(String, String)> = model
        .fks
        .iter()
        .flat_map(|fk| {
            fk.pairs.iter().flat_map(move |(c, p)| {
                [
                    (fk.child.clone(), c.clone()),
                    (fk.parent.clone(), p.clone()),
                ]
            })
        })
        .collect();
    for t in &model.tables {
        for c in t.pk.iter().chain(t.uniques.iter().flatten()) {
            id(&t.name, c, &mut parent);
        }
    }
    for fk in &model.fks {
        if !tables.contains_key(fk.child.as_str()) || !tables.contains_key(fk.parent.as_str()) {
            continue;
        }
        for (c, p) in &fk.pairs {
            let a = id(&fk.child, c, &mut parent);
            let b = id(&fk.parent, p, &mut parent);
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra != rb {
                parent[ra] = rb;
            }
        }
    }
    let mut classes: BTreeMap<usize, BTreeMap<String, String>> = BTreeMap::new();
    let members: Vec<((String, String), usize)> =
        idx.iter().map(|(k, v)| (k.clone(), *v)).collect();
    for ((t, c), i) in members {
        let r = find(&mut parent, i);
        let cls = classes.entry(r).or_default();
        // a table with two columns in one class (a self-reference): keep its key column
        match cls.get(&t) {
            Some(existing)
                if tables
                    .get(t.as_str())
                    .is_some_and(|tb| tb.pk.contains(existing)) => {}
            _ => {
                cls.insert(t, c);
            }
        }
    }
    let mut out = Vec::new();
    for (_, mut cols) in classes {
        // the most common column name names the candidate
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for c in cols.values() {
            *counts.entry(c.as_str()).or_default() += 1;
        }
        let name = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(n, _)| n.to_string())
            .unwrap_or_default();
        let key_type = cols
            .iter()
            .find(|(_, c)| **c == name)
            .and_then(|(t, c)| tables.get(t.as_str()).and_then(|tb| tb.type_of(c)))
            .unwrap_or("")
            .to_string();
        for t in &model.tables {
            if !cols.contains_key(&t.name) && t.type_of(&name) == Some(key_type.as_str()) {
                // a column no foreign key pairs with anything joins by name
                let free = !fk_cols.contains(&(t.name.clone(), name.clone()));
                if free {
                    cols.insert(t.name.clone(), name.clone());
                }
            }
        }
        out.push(Candidate {
            name,
            key_type,
            columns: cols,
        });
    }
    // a class whose every column joined a bigger one by name is that one
    let all = out.clone();
    out.retain(|c| {
        !all.iter().any(|o| {
            o.columns.len() > c.columns.len()
                && c.columns
                    .iter()
                    .all(|(t, col)| o.columns.get(t) == Some(col))
        })
    });
    // two classes may share a name (e.g. "id" of different entities): keep them apart
    out.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then(b.columns.len().cmp(&a.columns.len()))
    });
    out
}

/// Placement of every table for a candidate.
pub fn placements(model: &SchemaModel, cand: &Candidate) -> BTreeMap<String, Placement> {
    let max_rows = model.tables.iter().map(|t| t.rows).fold(0.0, f64::max);
    let small = REFERENCE_MIN_ROWS.max(0.01 * max_rows);
    let mut inbound: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for fk in &model.fks {
        if fk.child != fk.parent {
            inbound
                .entry(fk.parent.as_str())
                .or_default()
                .insert(fk.child.as_str());
        }
    }
    model
        .tables
        .iter()
        .map(|t| {
            let col = cand.columns.get(&t.name);
            let referenced_by = inbound.get(t.name.as_str()).map_or(0, |s| s.len());
            let p = match col {
                // the key's own dimension table (one row per key value), small and
                // referenced by many: replicate it, so joins to it are local everywhere
                Some(c)
                    if t.pk.len() == 1
                        && &t.pk[0] == c
                        && t.rows <= small
                        && referenced_by >= 2 =>
                {
                    Placement::Reference
                }
                Some(_) => Placement::Distributed,
                None if t.rows <= small => Placement::Reference,
                None => Placement::Local,
            };
            (t.name.clone(), p)
        })
        .collect()
}

/// Classify one foreign key under a placement.
pub fn classify_join(
    fk: &ForeignKey,
    cand: &Candidate,
    place: &BTreeMap<String, Placement>,
) -> JoinKind {
    use Placement::*;
    let (Some(c), Some(p)) = (place.get(&fk.child), place.get(&fk.parent)) else {
        return JoinKind::CrossShard;
    };
    match (c, p) {
        (Distributed, Distributed) => {
            let pairs_key = match (cand.columns.get(&fk.child), cand.columns.get(&fk.parent)) {
                (Some(kc), Some(kp)) => fk.pairs.iter().any(|(a, b)| a == kc && b == kp),
                _ => false,
            };
            if pairs_key {
                JoinKind::Colocated
            } else {
                JoinKind::CrossShard
            }
        }
        (_, Reference) => JoinKind::Local,
        (Local, Local) => JoinKind::Unsharded,
        _ => JoinKind::CrossShard,
    }
}

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

/// Values that alone hold more than a fair shard at the largest shard count.
pub fn hot_values(dist: &KeyDist, max_shards: u32) -> Vec<(String, f64)> {
    let fair = 1.0 / max_shards.max(2) as f64;
    dist.mcv
        .iter()
        .filter(|(_, s)| *s >= fair)
        .take(5)
        .cloned()
        .collect()
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

/// Rank every candidate key of the schema.
pub fn advise(model: &SchemaModel, shards: &[u32], unanalyzed: &[String]) -> Vec<Advice> {
    let known: BTreeSet<String> = model
        .tables
        .iter()
        .flat_map(|t| t.columns.iter().map(|(c, _)| c.clone()))
        .collect();
    let analyzed: Option<Vec<(Analyzed, &Statement)>> = model.workload.as_ref().map(|w| {
        w.iter()
            .map(|s| (workload::analyze(&s.query, &model.schema, &known), s))
            .filter(|(a, _)| a.kind != StmtKind::Other && !a.tables.is_empty())
            .collect()
    });
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
        let key_names: BTreeSet<&str> = cand.columns.values().map(|s| s.as_str()).collect();
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

/// One step of the plan: what to do, to which object, the DDL, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub action: String,
    pub object: String,
    pub ddl: String,
    pub why: String,
}

/// A SQL literal for a key value: numbers as they are, everything else quoted.
pub fn sql_literal(v: &str) -> String {
    let numeric = !v.is_empty()
        && v.trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
        && v.trim_start_matches('-')
            .chars()
            .any(|c| c.is_ascii_digit());
    if numeric {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "''"))
    }
}

/// A SQL string literal holding a (qualified, quoted) identifier.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Distributed tables in foreign-key order: a parent before its children, so each
/// `create_distributed_table` finds its referenced tables already distributed.
pub fn creation_order(model: &SchemaModel, a: &Advice) -> Vec<String> {
    let set: BTreeSet<&str> = a.distributed.iter().map(|s| s.as_str()).collect();
    let mut deps: BTreeMap<&str, BTreeSet<&str>> =
        set.iter().map(|t| (*t, BTreeSet::new())).collect();
    for fk in &model.fks {
        if fk.child != fk.parent
            && set.contains(fk.child.as_str())
            && set.contains(fk.parent.as_str())
        {
            if let Some(d) = deps.get_mut(fk.child.as_str()) {
                d.insert(fk.parent.as_str());
            }
        }
    }
    // how many tables depend on each, directly or through others: the root of the
    // biggest subtree goes first and anchors the co-location group
    let descendants = |t: &str| -> usize {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut stack = vec![t];
        while let Some(x) = stack.pop() {
            for (child, parents) in &deps {
                if parents.contains(x) && seen.insert(child) {
                    stack.push(child);
                }
            }
        }
        seen.len()
    };
    let mut done: Vec<String> = Vec::new();
    while done.len() < set.len() {
        let ready: Option<&str> = deps
            .iter()
            .filter(|(t, _)| !done.iter().any(|d| d == *t))
            .filter(|(_, d)| d.iter().all(|p| done.iter().any(|x| x == p)))
            .map(|(t, _)| *t)
            .max_by(|a, b| descendants(a).cmp(&descendants(b)).then_with(|| b.cmp(a)));
        match ready {
            Some(t) => done.push(t.to_string()),
            None => {
                // a cycle: take the rest alphabetically
                for t in &set {
                    if !done.iter().any(|d| d == t) {
                        done.push(t.to_string());
                    }
                }
            }
        }
    }
    done
}

/// The plan for one candidate: shard count, reference tables, distributed tables
/// with their co-location, cross-shard work, hot-key mitigation, fan-out queries and
/// a check. `qualify` turns a table name into its quoted, schema-qualified form.
pub fn plan(
    model: &SchemaModel,
    a: &Advice,
    shards: u32,
    qualify: &dyn Fn(&str) -> String,
) -> Vec<Step> {
    let tables: HashMap<&str, &Table> = model.tables.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut steps = Vec::new();
    let hottest = expected_hottest_share(
        &a.dist.mcv.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        a.dist.rest_mass,
        a.dist.rest_values,
        shards,
    );
    steps.push(Step {
        action: "shard count".into(),
        object: format!("{shards} shards"),
        ddl: format!("SET citus.shard_count = {shards};"),
        why: format!(
            "hash-distributing by {} over {shards} shards: the hottest shard is expected to hold {} of rows (fair share {}); more shards than values ({:.0}) leave shards empty",
            a.key,
            pct(hottest),
            pct(1.0 / shards as f64),
            a.dist.distinct
        ),
    });
    let mut inbound: HashMap<&str, usize> = HashMap::new();
    for fk in &model.fks {
        if fk.child != fk.parent {
            *inbound.entry(fk.parent.as_str()).or_default() += 1;
        }
    }
    for r in &a.reference {
        let t = tables.get(r.as_str());
        let rows = t.map_or(0.0, |t| t.rows);
        let n_in = inbound.get(r.as_str()).copied().unwrap_or(0);
        let why = if a.columns.contains_key(r) {
            format!(
                "the key's own table ({:.0} rows, one per {} value), referenced by {n_in} foreign key(s): replicated to every node, so joins and FK checks against it stay local and cross-{} reports can join it anywhere",
                rows, a.key, a.key
            )
        } else {
            format!(
                "lacks {} and is small ({:.0} rows{}): a copy on every node keeps joins with it local",
                a.key,
                rows,
                if n_in > 0 {
                    format!(", referenced by {n_in} foreign key(s)")
                } else {
                    String::new()
                }
            )
        };
        steps.push(Step {
            action: "reference table".into(),
            object: qualify(r),
            ddl: format!("SELECT create_reference_table({});", lit(&qualify(r))),
            why,
        });
    }
    let order = creation_order(model, a);
    let anchor = order.first().cloned().unwrap_or_default();
    for (i, t) in order.iter().enumerate() {
        let col = a.columns.get(t).cloned().unwrap_or_else(|| a.key.clone());
        let rows = tables.get(t.as_str()).map_or(0.0, |t| t.rows);
        let joins: Vec<&str> = model
            .fks
            .iter()
            .filter(|fk| &fk.child == t && a.distributed.contains(&fk.parent))
            .map(|fk| fk.parent.as_str())
            .collect();
        let (ddl, why) = if i == 0 {
            (
                format!(
                    "SELECT create_distributed_table({}, {}, colocate_with => 'none');",
                    lit(&qualify(t)),
                    lit(&col)
                ),
                format!(
                    "{:.0} rows; first table of the co-location group (no foreign key to another distributed table)",
                    rows
                ),
            )
        } else {
            (
                format!(
                    "SELECT create_distributed_table({}, {}, colocate_with => {});",
                    lit(&qualify(t)),
                    lit(&col),
                    lit(&qualify(&anchor))
                ),
                if joins.is_empty() {
                    format!(
                        "{:.0} rows; co-located with {anchor}: same {} on the same shard",
                        rows, a.key
                    )
                } else {
                    format!(
                        "{:.0} rows; co-located with {anchor}: its joins to {} stay on one shard",
                        rows,
                        joins.join(", ")
                    )
                },
            )
        };
        steps.push(Step {
            action: "distributed table".into(),
            object: qualify(t),
            ddl,
            why,
        });
    }
    for l in &a.local {
        let rows = tables.get(l.as_str()).map_or(0.0, |t| t.rows);
        steps.push(Step {
            action: "add the key".into(),
            object: qualify(l),
            ddl: format!(
                "ALTER TABLE {} ADD COLUMN {} {};  -- backfill from its parent, then distribute it with the others",
                qualify(l),
                a.key,
                a.key_type
            ),
            why: format!(
                "{:.0} rows without {}: too big to replicate, so every join with it crosses shards until it carries the key",
                rows, a.key
            ),
        });
    }
    for c in &a.cross {
        steps.push(Step {
            action: "cross-shard join".into(),
            object: c.clone(),
            ddl: format!("-- no DDL: this foreign key does not pair {} with {}; Citus cannot enforce it across shards", a.key, a.key),
            why: "joins along this foreign key need rows from other shards (repartition), and the constraint must be dropped or the key added".into(),
        });
    }
    let largest = a
        .distributed
        .iter()
        .max_by(|x, y| {
            let rx = tables.get(x.as_str()).map_or(0.0, |t| t.rows);
            let ry = tables.get(y.as_str()).map_or(0.0, |t| t.rows);
            rx.total_cmp(&ry).then_with(|| y.cmp(x))
        })
        .cloned()
        .unwrap_or_default();
    let fair = 1.0 / shards as f64;
    for (i, (v, s)) in a.hot.iter().enumerate().take(3) {
        let lv = sql_literal(v);
        let times = s / fair;
        steps.push(Step {
            action: "isolate hot key".into(),
            object: format!("{} = {v}", a.key),
            ddl: format!(
                "SELECT isolate_tenant_to_new_shard({}, {lv}, cascade_option => 'CASCADE');",
                lit(&qualify(&largest))
            ),
            why: format!(
                "{v} alone holds {} of rows, {:.1}x a fair shard at {shards} shards: give it a shard of its own (with every co-located table)",
                pct(*s),
                times
            ),
        });
        steps.push(Step {
            action: "move hot shard".into(),
            object: format!("{} = {v}", a.key),
            ddl: format!(
                "SELECT citus_move_shard_placement(get_shard_id_for_distribution_column({}, {lv}), 'worker-1', 5432, 'worker-hot-{}', 5432);",
                lit(&qualify(&largest)),
                i + 1
            ),
            why: format!(
                "then move the isolated shard to a node with room (names are placeholders): the node holding {v} should carry little else"
            ),
        });
        if i == 0 {
            let split_needed = *s >= 2.0 * fair;
            steps.push(Step {
                action: "split hot key".into(),
                object: format!("{} = {v}", a.key),
                ddl: if split_needed {
                    format!(
                        "-- no single DDL: when {v} outgrows one node, move it to a cluster (or schema) of its own and distribute its tables there by a second key, such as the order id"
                    )
                } else {
                    "-- not needed: it fits within a fair shard".into()
                },
                why: format!(
                    "isolation gives {v} one whole shard, but one shard lives on one node: at {} of rows it stays {:.1}x a fair shard; splitting a single key value is an application change, not a rebalance",
                    pct(*s),
                    times
                ),
            });
            let (ddl, why) = match a.read_share {
                Some(r) if r >= 0.5 => (
                    "SELECT citus_add_secondary_node('worker-hot-1-replica', 5432, 'worker-hot-1', 5432);  -- read-only sessions connect with options='-c citus.use_secondary_nodes=always'".to_string(),
                    format!("reads are {} of the calls on these tables: a streaming replica of the hot node takes {v}'s reads off its primary", pct(r)),
                ),
                Some(r) => (
                    "-- not recommended: replicas do not take writes".to_string(),
                    format!("reads are only {} of the calls on these tables; a replica would not relieve the writes that make {v} hot", pct(r)),
                ),
                None => (
                    "-- undecided: no read/write statistics".to_string(),
                    "no pg_stat_statements or table counters: measure the read share before adding replicas".into(),
                ),
            };
            steps.push(Step {
                action: "read replicas".into(),
                object: format!("{} = {v}", a.key),
                ddl,
                why,
            });
        }
    }
    for (calls, ms, q) in &a.fan_out {
        steps.push(Step {
            action: "fan-out query".into(),
            object: q.clone(),
            ddl: format!(
                "-- add WHERE {} = $n if the query is about one {}; otherwise it runs on all {shards} shards",
                a.key, a.key
            ),
            why: format!(
                "{calls:.0} call{}, {ms:.0} ms in total: no equality filter on {}",
                if *calls == 1.0 { "" } else { "s" },
                a.key
            ),
        });
    }
    steps.push(Step {
        action: "check".into(),
        object: "citus_shards".into(),
        ddl: "SELECT nodename, count(*) AS shards, pg_size_pretty(sum(shard_size)) AS size FROM citus_shards GROUP BY nodename ORDER BY sum(shard_size) DESC;".into(),
        why: format!(
            "after loading, the biggest node should hold about {} of the data (the hottest-shard estimate) plus its share of the rest",
            pct(hottest)
        ),
    });
    steps
}

#[cfg(test)]
mod unit {
    use super::*;

    fn stats(nd: f64, mcv: &[(&str, f64)]) -> ColumnStats {
        ColumnStats {
            null_frac: 0.0,
            n_distinct: nd,
            mcv: mcv.iter().map(|(v, f)| (v.to_string(), *f)).collect(),
        }
    }

    #[test]
    fn n_distinct_is_made_absolute() {
        assert_eq!(absolute_n_distinct(-1.0, 1000.0), 1000.0);
        assert_eq!(absolute_n_distinct(-0.5, 1000.0), 500.0);
        assert_eq!(absolute_n_distinct(42.0, 1000.0), 42.0);
        assert_eq!(absolute_n_distinct(f64::NAN, 1000.0), 0.0);
    }

    #[test]
    fn one_shard_holds_everything() {
        assert_eq!(expected_hottest_share(&[0.5, 0.5], 0.0, 0.0, 1), 1.0);
    }

    #[test]
    fn two_equal_values_on_two_shards() {
        // same shard with probability 1/2 (share 1), else 1/2 each: expectation 0.75
        let h = expected_hottest_share(&[0.5, 0.5], 0.0, 0.0, 2);
        assert!((h - 0.75).abs() < 0.03, "got {h}");
    }

    #[test]
    fn one_value_is_one_shard() {
        let h = expected_hottest_share(&[1.0], 0.0, 0.0, 8);
        assert!((h - 1.0).abs() < 1e-9);
    }

    #[test]
    fn many_uniform_values_approach_the_fair_share() {
        for n in [2u32, 8, 32] {
            let h = expected_hottest_share(&[], 1.0, 1_000_000.0, n);
            let fair = 1.0 / n as f64;
            assert!(h >= fair * 0.999 && h < fair * 1.05, "n={n}: {h}");
        }
    }

    #[test]
    fn few_uniform_values_are_lumpy() {
        // 10 equal values on 8 shards: some shard gets at least 2 of them
        let h = expected_hottest_share(&[], 1.0, 10.0, 8);
        assert!((0.2..0.45).contains(&h), "got {h}");
        // and on 32 shards the hottest still holds at least one value's 10%
        assert!(expected_hottest_share(&[], 1.0, 10.0, 32) >= 0.1);
    }

    #[test]
    fn explicit_and_approximate_remainders_agree() {
        // 4000 values are placed one by one, 5000 through the normal approximation
        let a = expected_hottest_share(&[0.2], 0.8, 4000.0, 16);
        let b = expected_hottest_share(&[0.2], 0.8, 5000.0, 16);
        assert!((a - b).abs() < 0.01, "{a} vs {b}");
    }

    #[test]
    fn a_whale_sets_the_floor() {
        // a value with 23% of rows: no shard count takes the hottest below it
        for n in [2u32, 4, 8, 16, 32, 4096] {
            let h = expected_hottest_share(&[0.234], 0.766, 99.0, n);
            assert!(h >= 0.234, "n={n}: {h}");
            assert!(h <= 1.0);
        }
        let h32 = expected_hottest_share(&[0.234], 0.766, 99.0, 32);
        assert!(h32 < 0.32, "{h32}");
    }

    #[test]
    fn the_estimate_is_deterministic_and_monotone() {
        let a = expected_hottest_share(&[0.1, 0.05], 0.85, 300.0, 8);
        let b = expected_hottest_share(&[0.1, 0.05], 0.85, 300.0, 8);
        assert_eq!(a, b);
        let mut prev = 1.0;
        for n in [2u32, 4, 8, 16, 32] {
            let h = expected_hottest_share(&[0.1, 0.05], 0.85, 300.0, n);
            assert!(h < prev, "{n}: {h} >= {prev}");
            prev = h;
        }
    }

    #[test]
    fn combine_weights_tables_by_rows() {
        let big = stats(100.0, &[("1", 0.3), ("2", 0.1)]);
        let small = stats(100.0, &[("2", 0.5)]);
        let d = combine(&[(900.0, &big), (100.0, &small)]);
        assert_eq!(d.mcv[0].0, "1");
        // value 1: 270 rows in big + small's average non-MCV frequency (50/99 rows)
        assert!((d.mcv[0].1 - (270.0 + 50.0 / 99.0) / 1000.0).abs() < 1e-9);
        // value 2: 90 + 50
        assert!((d.mcv[1].1 - 0.14).abs() < 0.001);
        assert_eq!(d.distinct, 100.0);
        assert!((d.mcv.iter().map(|m| m.1).sum::<f64>() + d.rest_mass - 1.0).abs() < 1e-9);
        assert_eq!(d.rest_values, 98.0);
    }

    #[test]
    fn combine_counts_nulls() {
        let s = ColumnStats {
            null_frac: 0.25,
            n_distinct: 1000.0,
            mcv: vec![],
        };
        let d = combine(&[(400.0, &s)]);
        assert!((d.null_share - 0.25).abs() < 1e-9);
        assert!((d.rest_mass - 1.0).abs() < 1e-9);
    }

    #[test]
    fn complete_mcv_lists_are_renormalized() {
        let s = stats(2.0, &[("a", 0.61), ("b", 0.40)]);
        let d = combine(&[(100.0, &s)]);
        assert_eq!(d.rest_values, 0.0);
        assert!((d.mcv.iter().map(|m| m.1).sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn literals() {
        assert_eq!(sql_literal("42"), "42");
        assert_eq!(sql_literal("-3"), "-3");
        assert_eq!(sql_literal("acme"), "'acme'");
        assert_eq!(sql_literal("o'neil"), "'o''neil'");
        assert_eq!(sql_literal(""), "''");
        assert_eq!(sql_literal("1.5"), "1.5");
    }

    /// A small model of the lab: tenants -> customers -> orders -> order_lines,
    /// products -> order_lines, orders -> payments, and a big log table without the key.
    pub(super) fn lab_like(with_log: bool) -> SchemaModel {
        let zipf: Vec<(String, f64)> = {
            let h: f64 = (1..=100).map(|i| (i as f64).powf(-1.1)).sum();
            (1..=100)
                .map(|i| (i.to_string(), (i as f64).powf(-1.1) / h))
                .collect()
        };
        let tenant = ColumnStats {
            null_frac: 0.0,
            n_distinct: 100.0,
            mcv: zipf,
        };
        let uniq = |rows: f64| ColumnStats {
            null_frac: 0.0,
            n_distinct: rows,
            mcv: vec![],
        };
        let t =
            |name: &str, rows: f64, cols: &[&str], pk: &[&str], stats: Vec<(&str, ColumnStats)>| {
                Table {
                    name: name.into(),
                    rows,
                    bytes: (rows * 100.0) as i64,
                    columns: cols
                        .iter()
                        .map(|c| (c.to_string(), "bigint".to_string()))
                        .collect(),
                    pk: pk.iter().map(|c| c.to_string()).collect(),
                    uniques: vec![],
                    stats: stats.into_iter().map(|(c, s)| (c.to_string(), s)).collect(),
                    tuples_read: 0.0,
                    tuples_written: 0.0,
                }
            };
        let mut tables = vec![
            t(
                "tenants",
                100.0,
                &["tenant_id", "name"],
                &["tenant_id"],
                vec![("tenant_id", uniq(100.0))],
            ),
            t(
                "customers",
                100_000.0,
                &["tenant_id", "customer_id"],
                &["tenant_id", "customer_id"],
                vec![
                    ("tenant_id", tenant.clone()),
                    ("customer_id", uniq(100_000.0)),
                ],
            ),
            t(
                "products",
                20_000.0,
                &["tenant_id", "product_id"],
                &["tenant_id", "product_id"],
                vec![
                    ("tenant_id", tenant.clone()),
                    ("product_id", uniq(20_000.0)),
                ],
            ),
            t(
                "orders",
                1_000_000.0,
                &["tenant_id", "order_id", "customer_id"],
                &["tenant_id", "order_id"],
                vec![
                    ("tenant_id", tenant.clone()),
                    ("order_id", uniq(1e6)),
                    ("customer_id", uniq(90_000.0)),
                ],
            ),
            t(
                "order_lines",
                2_500_000.0,
                &["tenant_id", "order_id", "line_no", "product_id"],
                &["tenant_id", "order_id", "line_no"],
                vec![
                    ("tenant_id", tenant.clone()),
                    ("order_id", uniq(1e6)),
                    ("product_id", uniq(20_000.0)),
                    (
                        "line_no",
                        stats(5.0, &[("1", 0.4), ("2", 0.3), ("3", 0.2), ("4", 0.1)]),
                    ),
                ],
            ),
            t(
                "payments",
                970_000.0,
                &["tenant_id", "payment_id", "order_id"],
                &["tenant_id", "payment_id"],
                vec![
                    ("tenant_id", tenant.clone()),
                    ("order_id", uniq(970_000.0)),
                    ("payment_id", uniq(970_000.0)),
                ],
            ),
        ];
        if with_log {
            tables.push(t(
                "audit_log",
                3_000_000.0,
                &["id", "msg"],
                &["id"],
                vec![("id", uniq(3e6))],
            ));
        }
        let fk = |name: &str, child: &str, parent: &str, pairs: &[(&str, &str)]| ForeignKey {
            name: name.into(),
            child: child.into(),
            parent: parent.into(),
            pairs: pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        };
        SchemaModel {
            schema: "shop".into(),
            tables,
            fks: vec![
                fk("c_t", "customers", "tenants", &[("tenant_id", "tenant_id")]),
                fk("p_t", "products", "tenants", &[("tenant_id", "tenant_id")]),
                fk(
                    "o_c",
                    "orders",
                    "customers",
                    &[("tenant_id", "tenant_id"), ("customer_id", "customer_id")],
                ),
                fk(
                    "l_o",
                    "order_lines",
                    "orders",
                    &[("tenant_id", "tenant_id"), ("order_id", "order_id")],
                ),
                fk(
                    "l_p",
                    "order_lines",
                    "products",
                    &[("tenant_id", "tenant_id"), ("product_id", "product_id")],
                ),
                fk(
                    "pay_o",
                    "payments",
                    "orders",
                    &[("tenant_id", "tenant_id"), ("order_id", "order_id")],
                ),
            ],
            workload: None,
        }
    }

    #[test]
    fn candidates_follow_foreign_keys() {
        let m = lab_like(false);
        let c = candidates(&m);
        let tenant = c.iter().find(|c| c.name == "tenant_id").unwrap();
        assert_eq!(tenant.columns.len(), 6);
        let order = c.iter().find(|c| c.name == "order_id").unwrap();
        let tabs: Vec<&str> = order.columns.keys().map(|s| s.as_str()).collect();
        assert_eq!(tabs, vec!["order_lines", "orders", "payments"]);
        // line_no is only in one primary key: a candidate of one table
        assert!(c
            .iter()
            .any(|c| c.name == "line_no" && c.columns.len() == 1));
    }

    #[test]
    fn same_named_columns_without_fk_join_the_candidate() {
        let mut m = lab_like(false);
        m.tables.push(Table {
            name: "tenant_ranges".into(),
            rows: 100.0,
            columns: vec![("tenant_id".into(), "bigint".into())],
            // its own primary key, but no foreign key: it joins by name
            pk: vec!["tenant_id".into()],
            ..Default::default()
        });
        let c = candidates(&m);
        let tenant: Vec<&Candidate> = c.iter().filter(|c| c.name == "tenant_id").collect();
        assert_eq!(tenant.len(), 1, "{tenant:?}");
        assert!(tenant[0].columns.contains_key("tenant_ranges"));
    }

    #[test]
    fn the_tenant_key_ranks_first_and_names_the_whale() {
        let m = lab_like(true);
        let adv = advise(&m, &[2, 4, 8, 16, 32], &[]);
        assert_eq!(
            adv[0].key,
            "tenant_id",
            "{:#?}",
            adv.iter().map(|a| (&a.key, a.score)).collect::<Vec<_>>()
        );
        assert_eq!(adv[0].rank, 1);
        assert_eq!(adv[0].hot[0].0, "1");
        assert!(adv[0].reference.contains(&"tenants".to_string()));
        assert!(adv[0].reference.iter().all(|r| r != "orders"));
        assert_eq!(adv[0].local, vec!["audit_log".to_string()]);
        assert!(adv[0].cross.is_empty());
        // order_id co-locates lines and payments with orders, but not customers or products
        let order = adv.iter().find(|a| a.key == "order_id").unwrap();
        assert!(order.score < adv[0].score);
        assert!(order
            .cross
            .iter()
            .any(|c| c.starts_with("orders -> customers")));
        // the whale caps balance: the hottest shard never drops below its share
        assert!(adv[0].hottest.iter().all(|h| *h >= adv[0].hot[0].1));
        assert!(adv[0].reasoning.contains("Hot keys: 1 ("));
        // ranks are 1..n without gaps
        assert!(adv.iter().enumerate().all(|(i, a)| a.rank == i + 1));
    }

    #[test]
    fn a_uniform_key_balances_better_but_loses_on_colocation() {
        let m = lab_like(false);
        let adv = advise(&m, &[8], &[]);
        let t = adv.iter().find(|a| a.key == "tenant_id").unwrap();
        let o = adv.iter().find(|a| a.key == "order_id").unwrap();
        assert!(o.components.balance > t.components.balance);
        assert!(t.components.colocation > o.components.colocation);
        assert!(t.score > o.score);
    }

    #[test]
    fn workload_routability_is_counted() {
        let mut m = lab_like(false);
        m.workload = Some(vec![
            Statement {
                query: "SELECT * FROM shop.orders WHERE tenant_id = $1 AND order_id = $2".into(),
                calls: 900.0,
                total_ms: 90.0,
            },
            Statement {
                query: "SELECT date_trunc('day', created_at), sum(total_cents) FROM shop.orders GROUP BY 1".into(),
                calls: 100.0,
                total_ms: 5000.0,
            },
            Statement {
                query: "BEGIN".into(),
                calls: 1000.0,
                total_ms: 1.0,
            },
        ]);
        let adv = advise(&m, &[8], &[]);
        let t = adv.iter().find(|a| a.key == "tenant_id").unwrap();
        assert!((t.routable_share.unwrap() - 0.9).abs() < 1e-9);
        // by time the fan-out dominates: 5000 of 5090 ms
        assert!((t.routable_time_share.unwrap() - 90.0 / 5090.0).abs() < 1e-9);
        assert!(t
            .reasoning
            .contains("fan out to every shard (98% of their execution time)"));
        assert!(t.components.access_from_workload);
        assert_eq!(t.fan_out.len(), 1);
        assert!(t.fan_out[0].2.starts_with("SELECT date_trunc"));
        assert_eq!(t.read_share, Some(1.0));
        // order_id: only the first statement filters on it as well
        let o = adv.iter().find(|a| a.key == "order_id").unwrap();
        assert!((o.routable_share.unwrap() - 0.9).abs() < 1e-9);
    }

    #[test]
    fn the_plan_orders_parents_first_and_isolates_the_whale() {
        let m = lab_like(false);
        let adv = advise(&m, &[32], &[]);
        let q = |t: &str| format!("shop.{t}");
        let steps = plan(&m, &adv[0], 32, &q);
        let ddl: Vec<&str> = steps.iter().map(|s| s.ddl.as_str()).collect();
        assert_eq!(ddl[0], "SET citus.shard_count = 32;");
        assert!(ddl.contains(&"SELECT create_reference_table('shop.tenants');"));
        let pos = |needle: &str| steps.iter().position(|s| s.ddl.contains(needle)).unwrap();
        assert!(pos("create_reference_table('shop.tenants')") < pos("create_distributed_table("));
        assert!(pos("'shop.customers', 'tenant_id'") < pos("'shop.orders', 'tenant_id'"));
        assert!(pos("'shop.orders', 'tenant_id'") < pos("'shop.order_lines', 'tenant_id'"));
        assert!(steps[pos("create_distributed_table(")]
            .ddl
            .contains("colocate_with => 'none'"));
        assert!(steps.iter().any(|s| s.action == "isolate hot key"
            && s.ddl == "SELECT isolate_tenant_to_new_shard('shop.order_lines', 1, cascade_option => 'CASCADE');"));
        assert!(steps.iter().any(|s| s.action == "split hot key"));
        assert!(steps.iter().any(|s| s.action == "read replicas"));
        assert_eq!(steps.last().unwrap().action, "check");
    }

    #[test]
    fn balance_and_score_bounds() {
        assert!((balance(&[2, 4], &[0.5, 0.25]) - 1.0).abs() < 1e-12);
        assert!((balance(&[4], &[0.5]) - 0.5).abs() < 1e-12);
        let c = Components {
            colocation: 1.0,
            coverage: 1.0,
            access: 1.0,
            balance: 1.0,
            access_from_workload: false,
        };
        assert!((score(&c, 0.0) - 100.0).abs() < 1e-9);
        assert!((score(&c, 0.5) - 50.0).abs() < 1e-9);
    }
}
