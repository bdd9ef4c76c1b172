//! What the report reads from the server: the evidence rows (the reader's own, or the
//! named roles'), the server's name and version, the estimate-gap threshold and the
//! live triage findings. SPI only; it renders nothing (`render.rs` does).

use super::render::{Row, Server, TriageRow};
use pgrx::prelude::*;
use serde_json::Value;

/// The evidence a report reads: the reader's own captures, or those of the named roles
/// (row-level security still limits a role that does not bypass it to its own).
pub fn rows(roles: Option<Vec<String>>) -> Vec<Row> {
    Spi::connect(|c| {
        let mut out = Vec::new();
        for r in c.select(
            "SELECT id, gate, label, query, to_char(captured_at, 'YYYY-MM-DD HH24:MI:SS TZ'), pg_version, payload::text,
                    captured_by::text
               FROM capstone.evidence
              WHERE CASE WHEN $1::text[] IS NULL THEN captured_by = current_user
                         ELSE captured_by::text = ANY ($1::text[]) END
              ORDER BY id",
            None,
            &[roles.into()],
        )? {
            out.push(Row {
                id: r.get::<i64>(1)?.unwrap_or(0),
                gate: r.get::<String>(2)?.unwrap_or_default(),
                label: r.get::<String>(3)?,
                query: r.get::<String>(4)?,
                captured_at: r.get::<String>(5)?.unwrap_or_default(),
                pg_version: r.get::<String>(6)?.unwrap_or_default(),
                payload: match r.get::<String>(7)? {
                    None => Value::Null,
                    // one unreadable row is reported as such, never takes the report down
                    Some(t) => crate::infra::json::parse_deep(&t).unwrap_or_else(|e| {
                        serde_json::json!({"summary": format!("(payload not readable: {e})")})
                    }),
                },
                captured_by: r.get::<String>(8)?.unwrap_or_default(),
            });
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_default()
}

/// The server the report describes, and the settings it renders with.
pub fn server() -> Server {
    let version = Spi::get_one::<String>("SELECT current_setting('server_version')")
        .ok()
        .flatten()
        .unwrap_or_default();
    let database = Spi::get_one::<String>("SELECT current_database()::text")
        .ok()
        .flatten()
        .unwrap_or_default();
    Server {
        database,
        version,
        gap_threshold: crate::infra::gucs::gap_threshold(),
    }
}

/// The live on-call view that closes the report.
pub fn triage() -> Vec<TriageRow> {
    crate::triage::run_triage(500)
        .into_iter()
        .map(|f| TriageRow {
            mode: f.mode,
            severity: f.severity.as_str().to_string(),
            finding: f.finding,
            first_fix: f.first_fix,
        })
        .collect()
}
