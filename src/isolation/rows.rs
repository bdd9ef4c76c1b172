//! What anomaly_demo and isolation_matrix show and record: the result row of one
//! statement, the session names, and the evidence payloads. Formatting only.

use super::catalogue;
use serde_json::{json, Value};

/// A result row of the demo.
pub struct Row {
    pub step: i32,
    pub session: String,
    pub statement: String,
    pub result: Option<String>,
    pub sqlstate: Option<String>,
    pub wait_ms: f64,
}

/// A session's name in the rows: A, B, C.
pub fn session_label(s: usize) -> String {
    catalogue::label(s).to_string()
}

/// wait_ms as shown and recorded: 2 decimals.
pub fn wait_ms(ms: f64) -> f64 {
    crate::infra::format::round(ms, 2)
}

/// The sessions and the roles they ran as.
fn sessions(roles: &[String]) -> Vec<Value> {
    roles
        .iter()
        .enumerate()
        .map(|(i, r)| json!({"session": session_label(i), "role": r}))
        .collect()
}

/// anomaly_demo's evidence payload.
pub fn demo_payload(anomaly: &str, mode: &str, rows: &[Row], roles: &[String]) -> Value {
    json!({
        "anomaly": anomaly,
        "mode": mode,
        "sessions": sessions(roles),
        "verdict": rows.last().and_then(|r| r.result.clone()),
        "table": rows.iter().map(|r| json!({
            "step": r.step, "session": r.session, "statement": r.statement,
            "result": r.result, "sqlstate": r.sqlstate, "wait_ms": wait_ms(r.wait_ms),
        })).collect::<Vec<_>>(),
    })
}

/// A matrix row's cells, one per level.
pub fn cells(vs: &[catalogue::Verdict]) -> Vec<String> {
    vs.iter().map(|v| v.cell()).collect()
}

/// isolation_matrix's evidence payload.
pub fn matrix_payload(
    m: &[(&'static catalogue::Case, Vec<catalogue::Verdict>)],
    roles: &[String],
) -> Value {
    let observed: usize = m
        .iter()
        .map(|(_, vs)| vs.iter().filter(|v| v.observed).count())
        .sum();
    json!({
        "levels": catalogue::LEVELS,
        "sessions": sessions(roles),
        "matrix": m.iter().map(|(c, vs)| json!({
            "anomaly": c.name, "alias": c.alias, "cells": cells(vs),
        })).collect::<Vec<_>>(),
        "summary": format!("{} anomalies x {} levels: {observed} observed, {} prevented",
                           m.len(), catalogue::LEVELS.len(), m.len() * catalogue::LEVELS.len() - observed),
    })
}
