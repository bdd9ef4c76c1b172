//! What the bloat scenario returns and records: its result rows (step, metric, value,
//! detail) and the verdict, summary and chart of a finished run. Pure: no SPI, no pgrx.

use serde_json::{json, Value};

/// Result rows: (step, metric, value, detail).
#[derive(Default)]
pub struct Steps(pub Vec<(String, String, Option<f64>, Option<String>)>);

impl Steps {
    pub fn add(&mut self, step: &str, metric: &str, value: Option<f64>, detail: Option<String>) {
        self.0.push((step.into(), metric.into(), value, detail));
    }

    pub fn num(&mut self, step: &str, metric: &str, value: f64) {
        self.add(step, metric, Some(value), None);
    }

    pub fn flag(&mut self, step: &str, metric: &str, value: bool) {
        self.add(step, metric, Some(if value { 1.0 } else { 0.0 }), None);
    }

    pub fn json(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|(s, m, v, d)| json!({"step": s, "metric": m, "value": v, "detail": d}))
                .collect(),
        )
    }

    pub fn rows(
        self,
        id: i64,
    ) -> impl Iterator<Item = (i64, String, String, Option<f64>, Option<String>)> {
        self.0.into_iter().map(move |(s, m, v, d)| (id, s, m, v, d))
    }
}

/// The scenario's result in one sentence each, for the evidence report.
pub struct ScenarioResult {
    pub held_not_removable: i64,
    pub removed_after_release: i64,
    pub fsm_free: u64,
    pub named_while_held: bool,
    pub removable_after: bool,
}

impl ScenarioResult {
    pub fn proven(&self) -> bool {
        self.named_while_held
            && self.held_not_removable > 0
            && self.removed_after_release > 0
            && self.removable_after
    }

    pub fn verdict(&self) -> String {
        if self.proven() {
            format!(
                "VACUUM could not remove {} dead row versions while a snapshot held in another session was named by xmin_holders; once it ended VACUUM removed {} and {} bytes became free for reuse",
                self.held_not_removable, self.removed_after_release, self.fsm_free
            )
        } else {
            format!(
                "scenario inconclusive: {} dead row versions kept while held, {} removed after release",
                self.held_not_removable, self.removed_after_release
            )
        }
    }

    pub fn chart(&self) -> Value {
        json!({
            "title": "Dead row versions VACUUM kept and removed",
            "kind": "bar",
            "x_label": "VACUUM (VERBOSE) run",
            "y_label": "dead row versions",
            "categories": ["while the snapshot is held", "after the holder ended"],
            "series": [
                {"name": "dead but not yet removable", "points": [[0.0, self.held_not_removable as f64], [1.0, 0.0]]},
                {"name": "removed", "points": [[0.0, 0.0], [1.0, self.removed_after_release as f64]]}
            ]
        })
    }
}
