//! The timeouts a migration sets, statement by statement: lock_timeout (the lock-queue
//! hazard), statement_timeout and, on PostgreSQL 17+, transaction_timeout (what bounds a
//! rewrite or scan that runs longer than its estimate). SET, SET LOCAL (until the end of
//! the transaction), RESET and RESET ALL.

use super::super::model::*;
use super::{Facts, Linter};

/// One timeout setting as the migration leaves it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeout {
    session: bool,
    local: Option<bool>,
}

impl Timeout {
    pub fn session(on: bool) -> Self {
        Timeout {
            session: on,
            local: None,
        }
    }
    pub fn on(&self) -> bool {
        self.local.unwrap_or(self.session)
    }
    pub fn end_transaction(&mut self) {
        self.local = None;
    }
    fn set(&mut self, local: bool, on: bool) {
        if local {
            self.local = Some(on);
        } else {
            self.session = on;
            // a plain SET inside a transaction also overrides an earlier SET LOCAL
            self.local = None;
        }
    }
}

/// Seconds for a statement_timeout: about three times the estimate, at least 1 s, so a
/// statement that runs as estimated finishes and one that runs far longer is stopped.
pub fn suggested_seconds(estimated_ms: f64) -> u64 {
    ((estimated_ms * 3.0 / 1000.0).ceil() as u64).max(1)
}

impl<F: Facts> Linter<'_, F> {
    /// `SET [LOCAL] name`, `RESET name`, `RESET ALL` (name "*").
    pub(super) fn set(&mut self, out: &mut Vec<Finding>, name: &str, local: bool, on: bool) {
        if name == "*" {
            self.lock_timeout = Timeout::default();
            self.statement_timeout = Timeout::default();
            self.transaction_timeout = Timeout::default();
            return;
        }
        let target = match name {
            "lock_timeout" => &mut self.lock_timeout,
            "statement_timeout" => &mut self.statement_timeout,
            "transaction_timeout" if self.settings.pg_major >= 17 => &mut self.transaction_timeout,
            _ => return,
        };
        if local && !self.in_tx {
            out.push(Self::plain(
                "set-local-outside-transaction",
                "medium",
                format!("SET LOCAL {name} outside a transaction block has no effect"),
                format!("BEGIN; SET LOCAL {name} = '2s'; ...; COMMIT;"),
            ));
            return;
        }
        target.set(local, on);
    }

    /// A statement bound by a timeout: statement_timeout, or transaction_timeout on 17+.
    fn statement_bounded(&self) -> bool {
        self.statement_timeout.on() || self.transaction_timeout.on()
    }

    /// require-statement-timeout: the longest rewrite or scan of this statement under a
    /// lock that blocks writes, with nothing to stop it if it runs far past its estimate.
    pub(super) fn require_statement_timeout(&self, out: &mut Vec<Finding>) {
        if self.statement_bounded() {
            return;
        }
        let longest = out
            .iter()
            .filter(|f| {
                matches!(f.effect, Effect::Rewrite | Effect::Scan)
                    && f.lock.blocks_writes()
                    && f.estimated_ms.is_some()
            })
            .max_by(|a, b| {
                a.estimated_ms
                    .unwrap_or(0.0)
                    .total_cmp(&b.estimated_ms.unwrap_or(0.0))
            });
        let Some(f) = longest else {
            return;
        };
        let ms = f.estimated_ms.unwrap_or(0.0);
        let severity = if f.severity == "low" { "low" } else { "medium" };
        let finding = Finding {
            rule: "require-statement-timeout",
            severity,
            lock: f.lock,
            effect: Effect::None,
            table: f.table.clone(),
            table_bytes: f.table_bytes,
            estimated_ms: f.estimated_ms,
            finding: format!(
                "the {} ({}) holds {} on {} for about {ms:.0} ms with no statement_timeout in force: if it runs far past the estimate (a slower disk, a TOAST-heavy table, I/O contention), nothing stops it and {} wait the whole time",
                f.effect.name(),
                f.rule,
                f.lock.name(),
                f.table,
                f.lock.blocks()
            ),
            safe_alternative: format!(
                "SET statement_timeout = '{}s'; -- about 3x the estimate, before the statement",
                suggested_seconds(ms)
            ),
        };
        out.push(finding);
    }
}
