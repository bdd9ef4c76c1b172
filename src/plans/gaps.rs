//! Estimate gaps: q-error per plan node (estimated vs actual rows over all loops), the
//! nodes at or above a threshold, and the node where each misestimate starts. Pure
//! logic; the SQL rows are built in `mod.rs`.

use serde::Serialize;
use std::fmt;

use super::flatten::{cut_short_by_limit, flatten, subtree_sizes};
use super::tree::ExplainResult;

/// Which way the planner was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Direction {
    /// The planner estimated fewer rows than came out.
    Under,
    /// The planner estimated more rows than came out.
    Over,
    Exact,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Under => "under",
            Direction::Over => "over",
            Direction::Exact => "exact",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Row counts below one (0, fractions, negatives, NaN) count as one row, as
/// PostgreSQL clamps its estimates to at least one; infinities are capped.
fn clamp_rows(v: f64) -> f64 {
    if v.is_nan() || v < 1.0 {
        1.0
    } else if v > f64::MAX {
        f64::MAX
    } else {
        v
    }
}

/// q-error `max(est/act, act/est)` (always `>= 1` and finite) and direction.
pub fn q_error(estimated: f64, actual: f64) -> (f64, Direction) {
    let e = clamp_rows(estimated);
    let a = clamp_rows(actual);
    let (q, dir) = if e < a {
        (a / e, Direction::Under)
    } else if e > a {
        (e / a, Direction::Over)
    } else {
        (1.0, Direction::Exact)
    };
    (q.max(1.0), dir)
}

/// One row of [`estimate_gaps`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapRow {
    pub id: usize,
    pub parent: Option<usize>,
    pub depth: usize,
    /// [`PlanNode::label`].
    pub node: String,
    pub relation: Option<String>,
    /// `plan_rows × loops`.
    pub est_rows: f64,
    /// `actual_rows × loops`.
    pub actual_rows: Option<f64>,
    pub loops: Option<f64>,
    /// None when the node never ran (loops 0) or has no actuals.
    pub q_error: Option<f64>,
    pub direction: Option<Direction>,
    /// `q_error >= threshold`.
    pub flagged: bool,
    /// Flagged, with no flagged node below: the misestimate starts here.
    pub root_cause: bool,
    /// For flagged nodes that are not root causes: the root-cause ids below them.
    pub inherits_from: Vec<usize>,
    /// Read through a LIMIT (streaming nodes only in between): fewer actual rows
    /// than estimated is expected there, so an over-estimate is not flagged.
    pub cut_short: bool,
}

/// Per-node estimate vs actual rows (totals over loops), flagging nodes whose
/// q-error reaches `threshold` and marking where each misestimate originates.
pub fn estimate_gaps(plan: &ExplainResult, threshold: f64) -> Vec<GapRow> {
    let flat = flatten(plan);
    let cut = cut_short_by_limit(&flat);
    let mut rows: Vec<GapRow> = flat
        .iter()
        .map(|f| {
            let n = f.node;
            let cut_short = cut.get(f.id).copied().unwrap_or(false);
            let est = n.total_est_rows();
            let actual = n.total_actual_rows();
            let (q, dir) = if n.executed() {
                let (q, d) = q_error(est, actual.unwrap_or(0.0));
                (Some(q), Some(d))
            } else {
                (None, None)
            };
            GapRow {
                id: f.id,
                parent: f.parent,
                depth: f.depth,
                node: n.label(),
                relation: n.relation.clone(),
                est_rows: est,
                actual_rows: actual,
                loops: n.actual_loops,
                q_error: q,
                direction: dir,
                flagged: q.is_some_and(|q| q >= threshold)
                    && !(cut_short && dir == Some(Direction::Over)),
                root_cause: false,
                inherits_from: Vec::new(),
                cut_short,
            }
        })
        .collect();

    // Reverse pre-order visits children before parents.
    let mut flagged_below = vec![false; rows.len()];
    for f in flat.iter().rev() {
        let below = flagged_below.get(f.id).copied().unwrap_or(false);
        let own = rows.get(f.id).is_some_and(|r| r.flagged);
        if let Some(r) = rows.get_mut(f.id) {
            r.root_cause = own && !below;
        }
        if let Some(p) = f.parent.and_then(|p| flagged_below.get_mut(p)) {
            *p = *p || below || own;
        }
    }
    let sizes = subtree_sizes(&flat);
    let causes: Vec<usize> = rows.iter().filter(|r| r.root_cause).map(|r| r.id).collect();
    for r in rows.iter_mut() {
        if r.flagged && !r.root_cause {
            let end = r.id + sizes.get(r.id).copied().unwrap_or(1);
            r.inherits_from = causes
                .iter()
                .copied()
                .filter(|c| *c > r.id && *c < end)
                .collect();
        }
    }
    rows
}
