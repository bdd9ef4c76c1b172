//! Choosing a small set of indexes that covers the workload: greedy set cover over
//! the weighted cost (planner cost × calls). Each round takes the candidate that saves
//! the most weighted cost over what the indexes already chosen leave (preferring the
//! smaller index when two leave about the same cost), and keeps it only when the statements
//! it serves get at least `min_savings_pct` cheaper. Pure: costs arrive measured.

/// One statement of the workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// Calls in pg_stat_statements: the weight of its cost.
    pub calls: f64,
    /// Generic-plan total cost with no candidate.
    pub base: f64,
}

/// A candidate with its measured costs.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    /// (statement index, generic-plan cost with this candidate alone).
    pub costs: Vec<(usize, f64)>,
    pub size_bytes: f64,
    /// How many of its leading keys are columns the workload tests for equality: each is
    /// an index condition, where the same column in INCLUDE is only a filter on the
    /// entries the other keys found. When costs tie (a nearly unique leading column),
    /// the one with more such keys stays fast if that column's values turn out skewed.
    pub eq_keys: usize,
}

/// One chosen index.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    pub candidate: usize,
    /// The statements it makes cheaper: (statement, cost before, cost after).
    pub served: Vec<(usize, f64, f64)>,
    /// Weighted cost (Σ cost × calls) of those statements before and after.
    pub weighted_before: f64,
    pub weighted_after: f64,
    pub savings_pct: f64,
}

/// A statement counts as served when the candidate cuts its cost by at least this much.
pub const SERVED_FRACTION: f64 = 0.01;
/// Candidates that leave at most this multiple of the best candidate's remaining
/// weighted cost count as "about the same"; the smallest of them wins. Compared on what
/// is left, not on what is saved: an index that leaves 10× the cost of another is not
/// about as good even when both save 99%.
pub const NEAR_BEST_LEFT: f64 = 1.10;
/// ... and that save at least this fraction of what the best saves.
pub const NEAR_BEST: f64 = 0.95;
/// Among those, a candidate up to this multiple of the smallest one's size may win on
/// equality keys (`Evaluated::eq_keys`); beyond it, size decides.
pub const EQ_KEYS_SIZE_SLACK: f64 = 1.25;

fn served_by(c: &Evaluated, current: &[f64]) -> Vec<usize> {
    c.costs
        .iter()
        .filter(|(s, cost)| *cost < current[*s] * (1.0 - SERVED_FRACTION))
        .map(|(s, _)| *s)
        .collect()
}

fn gain(c: &Evaluated, current: &[f64], stmts: &[Statement]) -> f64 {
    c.costs
        .iter()
        .filter(|(s, cost)| *cost < current[*s] * (1.0 - SERVED_FRACTION))
        .map(|(s, cost)| (current[*s] - cost) * stmts[*s].calls)
        .sum()
}

/// Pick up to `top_n` candidates.
pub fn choose(
    stmts: &[Statement],
    cands: &[Evaluated],
    min_savings_pct: f64,
    top_n: usize,
) -> Vec<Pick> {
    let mut current: Vec<f64> = stmts.iter().map(|s| s.base).collect();
    let mut open: Vec<bool> = vec![true; cands.len()];
    let mut picks = Vec::new();
    while picks.len() < top_n {
        let gains: Vec<(usize, f64)> = cands
            .iter()
            .enumerate()
            .filter(|(i, _)| open[*i])
            .map(|(i, c)| (i, gain(c, &current, stmts)))
            .filter(|(_, g)| *g > 0.0)
            .collect();
        let Some(best) = gains.iter().map(|(_, g)| *g).reduce(f64::max) else {
            break;
        };
        // what the best candidate's statements would still cost with each candidate
        let Some(&(top, _)) = gains.iter().find(|(_, g)| *g == best) else {
            break;
        };
        let top_served: Vec<usize> = served_by(&cands[top], &current);
        let left = |c: &Evaluated| -> f64 {
            top_served
                .iter()
                .map(|&s| {
                    let cost = c
                        .costs
                        .iter()
                        .find(|(t, _)| *t == s)
                        .map_or(current[s], |(_, k)| k.min(current[s]));
                    cost * stmts[s].calls
                })
                .sum()
        };
        let best_left = left(&cands[top]);
        let near: Vec<(usize, f64)> = gains
            .iter()
            .copied()
            .filter(|(c, g)| {
                *g >= best * NEAR_BEST
                    && left(&cands[*c]) <= best_left * NEAR_BEST_LEFT + f64::EPSILON
            })
            .collect();
        let smallest = near
            .iter()
            .map(|(c, _)| cands[*c].size_bytes)
            .reduce(f64::min)
            .unwrap_or(0.0);
        let Some(&(i, _)) = near
            .iter()
            .filter(|(c, _)| cands[*c].size_bytes <= smallest * EQ_KEYS_SIZE_SLACK + f64::EPSILON)
            .min_by(|a, b| {
                cands[b.0]
                    .eq_keys
                    .cmp(&cands[a.0].eq_keys)
                    .then(cands[a.0].size_bytes.total_cmp(&cands[b.0].size_bytes))
                    .then(b.1.total_cmp(&a.1))
                    .then(a.0.cmp(&b.0))
            })
        else {
            break;
        };
        open[i] = false;
        let served: Vec<(usize, f64, f64)> = cands[i]
            .costs
            .iter()
            .filter(|(s, cost)| *cost < current[*s] * (1.0 - SERVED_FRACTION))
            .map(|(s, cost)| (*s, current[*s], *cost))
            .collect();
        let before: f64 = served.iter().map(|(s, b, _)| b * stmts[*s].calls).sum();
        let after: f64 = served.iter().map(|(s, _, a)| a * stmts[*s].calls).sum();
        let savings_pct = if before > 0.0 {
            (before - after) / before * 100.0
        } else {
            0.0
        };
        if savings_pct < min_savings_pct {
            continue;
        }
        for (s, _, a) in &served {
            current[*s] = *a;
        }
        picks.push(Pick {
            candidate: i,
            served,
            weighted_before: before,
            weighted_after: after,
            savings_pct,
        });
    }
    picks
}

#[cfg(test)]
mod unit {
    use super::*;

    fn st(calls: f64, base: f64) -> Statement {
        Statement { calls, base }
    }

    fn ev(costs: &[(usize, f64)], size: f64) -> Evaluated {
        Evaluated {
            costs: costs.to_vec(),
            size_bytes: size,
            eq_keys: 1,
        }
    }

    #[test]
    fn on_a_tie_equality_columns_go_in_the_key() {
        // (order_id) INCLUDE (tenant_id, ...) vs (tenant_id, order_id) INCLUDE (...): the
        // same cost; the second is a little larger and tests both columns as keys
        let stmts = [st(1.0, 1000.0)];
        let mut keyed = ev(&[(0, 10.0)], 110.0);
        keyed.eq_keys = 2;
        let cands = [ev(&[(0, 10.0)], 100.0), keyed.clone()];
        assert_eq!(choose(&stmts, &cands, 50.0, 10)[0].candidate, 1);
        // ... but not at any size: beyond the slack the smaller one wins
        keyed.size_bytes = 200.0;
        let cands = [ev(&[(0, 10.0)], 100.0), keyed];
        assert_eq!(choose(&stmts, &cands, 50.0, 10)[0].candidate, 0);
    }

    #[test]
    fn one_index_serving_two_statements_beats_two() {
        let stmts = [st(10.0, 1000.0), st(10.0, 1000.0)];
        let cands = [
            ev(&[(0, 10.0)], 100.0),
            ev(&[(1, 10.0)], 100.0),
            ev(&[(0, 12.0), (1, 12.0)], 150.0),
        ];
        let p = choose(&stmts, &cands, 50.0, 10);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].candidate, 2);
        assert_eq!(p[0].served.len(), 2);
    }

    #[test]
    fn below_the_threshold_is_not_advised() {
        let stmts = [st(1.0, 100.0)];
        let cands = [ev(&[(0, 60.0)], 10.0)];
        assert!(choose(&stmts, &cands, 50.0, 10).is_empty());
        let p = choose(&stmts, &cands, 30.0, 10);
        assert_eq!(p.len(), 1);
        assert!((p[0].savings_pct - 40.0).abs() < 1e-9);
    }

    #[test]
    fn calls_weight_the_choice() {
        let stmts = [st(1000.0, 100.0), st(1.0, 10000.0)];
        let cands = [ev(&[(0, 1.0)], 10.0), ev(&[(1, 1.0)], 10.0)];
        let p = choose(&stmts, &cands, 50.0, 1);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].candidate, 0); // 99 × 1,000 calls saved beats 9,999 × 1 call
    }

    #[test]
    fn the_smaller_of_two_near_equal_candidates_wins() {
        let stmts = [st(1.0, 1000.0)];
        let cands = [ev(&[(0, 10.0)], 500.0), ev(&[(0, 10.5)], 100.0)];
        let p = choose(&stmts, &cands, 50.0, 10);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].candidate, 1);
    }

    #[test]
    fn a_smaller_index_that_leaves_far_more_cost_is_not_a_tie() {
        let stmts = [st(1.0, 1000.0)];
        // both save over 99%, but the small one leaves 10x the cost
        let cands = [ev(&[(0, 1.0)], 500.0), ev(&[(0, 10.0)], 100.0)];
        let p = choose(&stmts, &cands, 50.0, 10);
        assert_eq!(p[0].candidate, 0);
    }

    #[test]
    fn a_second_index_only_counts_what_the_first_left() {
        let stmts = [st(1.0, 1000.0), st(1.0, 1000.0)];
        let cands = [ev(&[(0, 10.0), (1, 500.0)], 100.0), ev(&[(1, 10.0)], 100.0)];
        let p = choose(&stmts, &cands, 40.0, 10);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].candidate, 0);
        assert_eq!(p[1].candidate, 1);
        assert_eq!(p[1].served, vec![(1, 500.0, 10.0)]);
    }

    #[test]
    fn top_n_and_empty_inputs() {
        assert!(choose(&[], &[], 50.0, 10).is_empty());
        let stmts = [st(1.0, 1000.0), st(1.0, 1000.0)];
        let cands = [ev(&[(0, 1.0)], 1.0), ev(&[(1, 1.0)], 1.0)];
        assert_eq!(choose(&stmts, &cands, 50.0, 1).len(), 1);
        // a candidate that makes nothing cheaper is never picked
        assert!(choose(&stmts, &[ev(&[(0, 1000.0)], 1.0)], 0.0, 10).is_empty());
    }
}
