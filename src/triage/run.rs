//! Running the probes: each in its own rolled-back subtransaction with a lock timeout
//! and a statement timeout, so triage never hangs behind the incident it diagnoses (a
//! probe that times out becomes a row that says so), plus the worst estimate gap among
//! the caller's stored plan captures. SPI lives here; the SQL surface is `mod.rs`.

use super::finding::{most_severe_first, Finding, Severity};
use super::probes::{Probe, PROBES};
use super::timeout;
use crate::infra::subxact::{self, Outcome};
use pgrx::prelude::*;
use std::time::Instant;

fn run_probe(p: &Probe, timeout_ms: i32) -> Finding {
    let started = Instant::now();
    let out = subxact::run(Outcome::Rollback, || {
        // never queue behind the lock an incident is about
        Spi::run("SET LOCAL lock_timeout = '200ms'")?;
        timeout::arm(timeout_ms);
        let r = crate::infra::spi::optional_row(p.sql, &[], |r| {
            Ok((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
                r.get::<String>(3)?.unwrap_or_default(),
            ))
        });
        // a timer that fired just after the probe finished raises here, inside the
        // subtransaction, as this probe's timeout, not later as a cancel of triage()
        timeout::disarm();
        pgrx::check_for_interrupts!();
        r
    });
    timeout::restore();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut f = Finding {
        mode: p.mode.to_string(),
        severity: Severity::Ok,
        finding: String::new(),
        first_fix: String::new(),
        probe: p.sql.to_string(),
        ms,
        status: "ok".into(),
    };
    match out {
        Ok(Ok(Some((finding, sev, fix)))) => {
            f.finding = finding;
            f.severity = Severity::parse(&sev);
            f.first_fix = fix;
        }
        Ok(Ok(None)) => f.finding = "probe returned nothing".into(),
        Ok(Err(e)) => {
            f.status = "error".into();
            f.severity = Severity::Info;
            f.finding = format!("probe failed: {e}");
        }
        Err(e) => {
            let (code, msg) = subxact::describe(&e);
            f.severity = Severity::Info;
            f.status = match code.as_str() {
                "57014" => "timeout".into(),
                "55P03" => "lock timeout".into(),
                _ => "error".into(),
            };
            f.finding = match code.as_str() {
                "57014" => format!("probe timed out after {timeout_ms} ms: the catalog or statistics views are slow to answer"),
                "55P03" => "probe could not get a lock within 200 ms: something holds a strong lock on a catalog or table (see the migration row)".into(),
                _ => format!("probe failed with {code}: {msg}"),
            };
            f.first_fix =
                "re-run capstone.triage(); check pg_locks and pg_stat_activity by hand".into();
        }
    }
    f
}

/// Worst q-error among the latest stored plan captures, from the statistics gate.
fn latest_gap() -> Option<(i64, f64, String)> {
    let rows: Vec<(i64, serde_json::Value)> = Spi::connect(|c| {
        let mut v = Vec::new();
        for r in c.select(
            "SELECT id, (payload->'plan')::text FROM capstone.evidence
              WHERE gate IN ('plans', 'statistics') AND payload ? 'plan' AND captured_by = current_user
              ORDER BY id DESC LIMIT 20",
            None,
            &[],
        )? {
            if let (Some(id), Some(p)) = (r.get::<i64>(1)?, r.get::<String>(2)?) {
                if let Ok(p) = crate::infra::json::parse_deep(&p) {
                    v.push((id, p));
                }
            }
        }
        Ok::<_, pgrx::spi::Error>(v)
    })
    .unwrap_or_default();
    let threshold = crate::infra::gucs::gap_threshold();
    rows.into_iter()
        .filter_map(|(id, p)| {
            let parsed = crate::plans::parse::parse_explain_value(&p).ok()?;
            let worst = crate::plans::gaps::estimate_gaps(&parsed, threshold)
                .into_iter()
                .filter(|g| g.flagged)
                .max_by(|a, b| {
                    a.q_error
                        .unwrap_or(0.0)
                        .total_cmp(&b.q_error.unwrap_or(0.0))
                })?;
            Some((id, worst.q_error.unwrap_or(0.0), worst.node))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Every probe, most severe finding first (failure-mode order among equals), with the
/// statistics row extended by the worst estimate gap among the caller's captured plans.
pub fn run_triage(timeout_ms: i32) -> Vec<Finding> {
    let mut out: Vec<Finding> = PROBES.iter().map(|p| run_probe(p, timeout_ms)).collect();
    // the statistics row also reports the worst estimate gap capstone has captured
    if let Some((id, q, node)) = latest_gap() {
        if let Some(f) = out.iter_mut().find(|f| f.mode == "statistics") {
            f.finding.push_str(&format!(
                "; captured plans: q-error {q:.0} at {node} (evidence {id})"
            ));
            if f.severity < Severity::Warn {
                f.severity = Severity::Warn;
                f.first_fix = format!(
                    "SELECT * FROM capstone.estimate_gap({id}::bigint);  -- then CREATE STATISTICS on the columns of the flagged filter, ANALYZE"
                );
            }
        }
    }
    most_severe_first(&mut out);
    out
}
