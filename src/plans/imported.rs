//! Storing imported plans: each plan read by [`super::import`] becomes one evidence row
//! owned by the caller, like a capture, but kept under `imported_source` (never `plan`)
//! and marked `imported`, so the report, triage and the gate never take it for something
//! capstone measured. The plan is stored as one JSON string (its text lines, or the tree's
//! compact EXPLAIN JSON): a 10,000-node plan as a jsonb tree costs more to write and read
//! than parsing it again. Reading them back is [`super::capture::load_plan`]'s job.

use super::import::{Imported, ImportedPlan};
use crate::infra::evidence::Gate;
use serde_json::{json, Value};

/// Store every plan of `imported`; returns the evidence ids in plan order.
pub fn store(imported: &Imported, label: Option<&str>) -> Vec<i64> {
    let of = imported.plans.len();
    imported
        .plans
        .iter()
        .enumerate()
        .map(|(i, p)| store_one(imported, p, i + 1, of, label))
        .collect()
}

fn store_one(
    imported: &Imported,
    p: &ImportedPlan,
    entry: usize,
    of: usize,
    label: Option<&str>,
) -> i64 {
    let settings = serde_json::to_value(&p.parsed.settings).unwrap_or(Value::Null);
    let payload = json!({
        "imported_source": p.stored,
        "imported": {
            "stored_as": p.stored_format.as_str(),
            "format": p.format.as_str(),
            "source_format": imported.format.as_str(),
            "entry": entry,
            "of": of,
            "line": p.line,
            "nodes": p.parsed.node_count(),
            "duration_ms": p.duration_ms,
        },
    });
    crate::infra::evidence::store(
        Gate::Plans,
        label,
        p.parsed.query_text.as_deref(),
        settings,
        payload,
    )
}
