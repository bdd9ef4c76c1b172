//! The report's charts: the index proofs' before/after times, drawn from the
//! explain_diff rows, plus every chart a gate stored in its payload. Pure: rows in,
//! named charts out (drawing them is `infra::chart`).

use super::render::{num, text, Row};
use crate::infra::chart::{Chart, Kind, Series};
use serde_json::Value;

/// Charts: the index proofs' before/after times, plus any chart a gate stored.
pub fn charts(rows: &[Row]) -> Vec<(String, Chart)> {
    let mut out = Vec::new();
    let diffs: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            matches!(r.gate.as_str(), "index" | "statistics") && r.payload.get("diff").is_some()
        })
        .collect();
    if !diffs.is_empty() {
        let mut cats = Vec::new();
        let mut before = Vec::new();
        let mut after = Vec::new();
        for (i, r) in diffs.iter().enumerate() {
            let stmt = r
                .payload
                .get("diff")
                .and_then(|d| d.as_array())
                .and_then(|d| d.iter().find(|x| text(x, "kind") == "statement").cloned());
            cats.push(r.label.clone().unwrap_or_else(|| format!("proof {}", r.id)));
            before.push((
                i as f64,
                stmt.as_ref()
                    .and_then(|s| num(s, "before_ms"))
                    .unwrap_or(f64::NAN),
            ));
            after.push((
                i as f64,
                stmt.as_ref()
                    .and_then(|s| num(s, "after_ms"))
                    .unwrap_or(f64::NAN),
            ));
        }
        out.push((
            "index_proofs".to_string(),
            Chart {
                title: "Each proof: query time before and after the change".into(),
                kind: Kind::Bar,
                x_label: "proof (explain_diff label)".into(),
                y_label: "actual time (ms)".into(),
                categories: cats,
                series: vec![
                    Series {
                        name: "before".into(),
                        points: before,
                    },
                    Series {
                        name: "after".into(),
                        points: after,
                    },
                ],
                log_y: true,
            },
        ));
    }
    for r in rows {
        if let Some(c) = r
            .payload
            .get("chart")
            .and_then(|c| serde_json::from_value::<Chart>(c.clone()).ok())
        {
            let name = format!("{}_{}", r.gate, r.id);
            out.push((name, c));
        }
        // a capture with more than one chart lists the others under "charts"
        for (k, c) in r
            .payload
            .get("charts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Ok(c) = serde_json::from_value::<Chart>(c.clone()) {
                out.push((format!("{}_{}_{}", r.gate, r.id, k + 2), c));
            }
        }
    }
    out
}
