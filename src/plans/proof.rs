//! The before/after proof behind `capstone.explain_diff(query, change)`: capture the
//! plan, apply the caller's change in a subtransaction (kept, or nothing of it when it
//! fails), capture again and store the diff as evidence of the gate the change proves.
//! Aligning the two plans is [`super::diff`]'s job.

use super::capture::{capture, Capture};
use super::diff::diff_plans;
use crate::infra::error::{CapstoneError, Result};
use crate::infra::evidence::Gate;
use crate::infra::subxact::{self, Outcome};
use pgrx::prelude::*;
use serde_json::json;

/// The two captures of one proof.
pub struct Proof {
    pub before: Capture,
    pub after: Capture,
}

/// The gate a change proves: a statistics fix (CREATE STATISTICS, ANALYZE alone) the
/// statistics gate, anything else the index gate.
pub fn change_gate(change: &str) -> Gate {
    let upper = change.to_uppercase();
    if upper.contains("STATISTICS") || (upper.contains("ANALYZE") && !upper.contains("INDEX")) {
        Gate::Statistics
    } else {
        Gate::Index
    }
}

/// Capture `query`, run `change` as the caller, capture again, and store the diff
/// labelled `base`. `query` is validated and `runs` checked by the caller.
pub fn prove(query: &str, change: &str, base: &str, runs: i32) -> Result<Proof> {
    let before = capture(
        Gate::Plans,
        query,
        Some(&format!("{base}: before")),
        runs,
        true,
    )?;
    match subxact::run(Outcome::Commit, || {
        crate::infra::search_path::as_caller(|| Spi::run(change))
    }) {
        Ok(Ok(())) => {}
        // SPI refused it without running it (COMMIT, ROLLBACK, COPY TO STDOUT, ...)
        Ok(Err(e)) => {
            return Err(CapstoneError::NotSupported(format!(
                "the change cannot run inside a function: {e}"
            ))
            .with_hint(
                "transaction control and client COPY cannot be part of a change; run them yourself",
            ))
        }
        // the subtransaction is rolled back: nothing of the change remains
        Err(e) => (*e).rethrow(),
    }
    let after = capture(
        Gate::Plans,
        query,
        Some(&format!("{base}: after")),
        runs,
        true,
    )?;
    crate::infra::evidence::store(
        change_gate(change),
        Some(base),
        Some(query),
        json!({}),
        json!({
            "before": before.evidence_id,
            "after": after.evidence_id,
            "change": change,
            "diff": diff_plans(&before.parsed, &after.parsed),
        }),
    );
    Ok(Proof { before, after })
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn statistics_fixes_prove_the_statistics_gate() {
        assert_eq!(
            change_gate("CREATE STATISTICS s ON a, b FROM t; ANALYZE t"),
            Gate::Statistics
        );
        assert_eq!(change_gate("analyze t"), Gate::Statistics);
        assert_eq!(change_gate("CREATE INDEX ON t (a); ANALYZE t"), Gate::Index);
        assert_eq!(change_gate("DROP INDEX t_a"), Gate::Index);
    }
}
