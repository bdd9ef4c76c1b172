//! A key's value distribution over the tables distributed by it, and the expected
//! share of rows on the hottest hash shard (a deterministic Monte Carlo). Pure
//! arithmetic over `pg_stats` figures; no pgrx types.

use super::model::ColumnStats;
use std::collections::{BTreeMap, HashMap};

/// Monte Carlo trials per shard count for the hottest-shard estimate.
pub const TRIALS: u32 = 2000;

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
