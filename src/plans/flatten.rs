//! A plan as a pre-order listing ([`flatten`]) and the timing facts read off it: which
//! nodes a LIMIT cuts short, and a node's wall-clock time under a Gather. Pure logic
//! over [`super::tree`]; no SQL.

use serde::Serialize;

use super::tree::{ExplainResult, PlanNode};
use crate::infra::json::MAX_PLAN_DEPTH;

/// A node of [`flatten`]'s pre-order listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlatNode<'a> {
    /// 0-based pre-order position.
    pub id: usize,
    pub parent: Option<usize>,
    /// 0 for the root.
    pub depth: usize,
    /// Ids of the direct children, in plan order.
    pub children: Vec<usize>,
    pub node: &'a PlanNode,
}

impl FlatNode<'_> {
    /// See [`PlanNode::label`].
    pub fn label(&self) -> String {
        self.node.label()
    }
}

/// Pre-order listing of the plan (a node's descendants follow it contiguously).
pub fn flatten(plan: &ExplainResult) -> Vec<FlatNode<'_>> {
    let mut out: Vec<FlatNode<'_>> = Vec::new();
    let mut stack: Vec<(&PlanNode, Option<usize>, usize)> = vec![(&plan.root, None, 0)];
    while let Some((node, parent, depth)) = stack.pop() {
        let id = out.len();
        if let Some(p) = parent.and_then(|p| out.get_mut(p)) {
            p.children.push(id);
        }
        out.push(FlatNode {
            id,
            parent,
            depth,
            children: Vec::new(),
            node,
        });
        for child in node.children.iter().rev() {
            stack.push((child, Some(id), depth + 1));
        }
    }
    out
}

/// Does this node consume its whole input before returning a row? A LIMIT above
/// such a node does not cut the nodes below it short.
fn is_blocking(n: &PlanNode) -> bool {
    match n.node_type.as_str() {
        "Sort" | "Hash" | "Materialize" | "SetOp" | "WindowAgg" | "Memoize" => true,
        "Aggregate" => !matches!(n.strategy.as_deref(), Some("Sorted")),
        _ => false,
    }
}

/// For each node: is it read through a LIMIT with only streaming nodes in
/// between, so that it legitimately returns fewer rows than estimated?
pub fn cut_short_by_limit(flat: &[FlatNode<'_>]) -> Vec<bool> {
    let mut out = vec![false; flat.len()];
    for f in flat {
        let mut cur = f.parent;
        let mut hops = 0usize;
        while let Some(pid) = cur {
            hops += 1;
            let Some(p) = flat.get(pid) else { break };
            if p.node.node_type == "Limit" {
                if let Some(slot) = out.get_mut(f.id) {
                    *slot = true;
                }
                break;
            }
            if is_blocking(p.node) || hops > MAX_PLAN_DEPTH {
                break;
            }
            cur = p.parent;
        }
    }
    out
}

/// Wall-clock share of a node's time: under a Gather, PostgreSQL reports the
/// average per process and counts loops over all processes, so time × loops is
/// CPU time; divide by the number of processes (workers + leader).
pub fn parallel_divisor(flat: &[FlatNode<'_>], id: usize) -> f64 {
    let mut cur = flat.get(id).and_then(|f| f.parent);
    let mut hops = 0usize;
    while let Some(pid) = cur {
        hops += 1;
        let Some(p) = flat.get(pid) else { break };
        if matches!(p.node.node_type.as_str(), "Gather" | "Gather Merge") {
            let workers = p
                .node
                .workers_launched
                .or(p.node.workers_planned)
                .unwrap_or(0)
                .max(0);
            return (workers + 1) as f64;
        }
        if hops > MAX_PLAN_DEPTH {
            break;
        }
        cur = p.parent;
    }
    1.0
}

/// Inclusive wall-clock time of a flattened node in ms (see [`parallel_divisor`]).
pub fn wall_time_ms(flat: &[FlatNode<'_>], id: usize) -> Option<f64> {
    flat.get(id)
        .and_then(|f| f.node.total_time_ms())
        .map(|t| t / parallel_divisor(flat, id))
}

/// Subtree size (node included) for each id of a pre-order listing.
pub(super) fn subtree_sizes(flat: &[FlatNode<'_>]) -> Vec<usize> {
    let mut sizes = vec![1usize; flat.len()];
    for f in flat.iter().rev() {
        let own = sizes.get(f.id).copied().unwrap_or(1);
        if let Some(p) = f.parent.and_then(|p| sizes.get_mut(p)) {
            *p += own;
        }
    }
    sizes
}
