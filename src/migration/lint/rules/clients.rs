//! Changes that break clients without rewriting anything (squawk's ban-drop-* family,
//! ban-alter-identity, ban-set-schema): graded with what the catalog says the object is
//! (the kind of constraint and the foreign keys that reference it, whether a column whose
//! default goes away is NOT NULL).

use super::super::model::*;
use super::{Facts, Linter};

impl<F: Facts> Linter<'_, F> {
    pub(super) fn drop_constraint(&mut self, out: &mut Vec<Finding>, table: &Name, name: &str) {
        let t = table.sql();
        let n = ident(name);
        let (severity, why) = match self.facts.constraint_kind(table, name) {
            Some((k @ ('p' | 'u'), refs)) => (
                "high",
                format!(
                    "it is the table's {} key: clients that rely on it (ON CONFLICT, lookups that expect one row) break{}",
                    if k == 'p' { "primary" } else { "unique" },
                    if refs > 0 {
                        format!(", and {refs} foreign key(s) reference it: the DROP fails without CASCADE, which drops them too")
                    } else {
                        String::new()
                    }
                ),
            ),
            Some(('x', _)) => (
                "medium",
                "it is an exclusion constraint: clients that rely on it to keep rows apart break".to_string(),
            ),
            Some(('f' | 'c' | 'n', _)) => (
                "low",
                "a CHECK, NOT NULL or foreign key: clients keep working, the database stops enforcing it".to_string(),
            ),
            _ => (
                "medium",
                "it is not in the catalog now, so what relies on it is unknown".to_string(),
            ),
        };
        out.push(self.hazard(
            "ban-drop-constraint",
            severity,
            Lock::AccessExclusive,
            Effect::None,
            table,
            None,
            format!("DROP CONSTRAINT {n} on {t}: {why}"),
            format!("keep {n} until nothing relies on it; then ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {n};"),
        ));
    }

    pub(super) fn drop_default(&mut self, out: &mut Vec<Finding>, table: &Name, col: &str) {
        let t = table.sql();
        let c = ident(col);
        let cf = self.facts.column(table, col);
        let (severity, why) = if cf.not_null {
            (
                "high",
                "the column is NOT NULL, so every INSERT that omits it now fails (23502)",
            )
        } else {
            (
                "medium",
                "every INSERT that omits it now stores NULL instead of the default",
            )
        };
        out.push(self.hazard(
            "ban-drop-default",
            severity,
            Lock::AccessExclusive,
            Effect::None,
            table,
            None,
            format!("DROP DEFAULT on {t}.{c}: {why}"),
            "drop the default only after every writer sets the column itself".into(),
        ));
    }

    /// ban-alter-identity and ban-drop-generated-expression: how inserts get the value changes.
    pub(super) fn column_source(
        &mut self,
        out: &mut Vec<Finding>,
        table: &Name,
        col: &str,
        identity: bool,
    ) {
        let t = table.sql();
        let c = ident(col);
        let (rule, finding) = if identity {
            ("ban-alter-identity", format!("changing the identity of {t}.{c} changes how inserts get their values: writers that set it explicitly, or rely on it being filled, break"))
        } else {
            ("ban-drop-generated-expression", format!("DROP EXPRESSION makes {t}.{c} a plain column: it is no longer computed, so writers must set it and readers may see stale values"))
        };
        out.push(self.hazard(
            rule,
            "medium",
            Lock::AccessExclusive,
            Effect::None,
            table,
            None,
            finding,
            "add a new column with the new behaviour, move writers, drop the old one".into(),
        ));
    }

    pub(super) fn drop_object(
        out: &mut Vec<Finding>,
        rule: &'static str,
        what: &str,
        names: &[String],
        cascade: bool,
    ) {
        let severity = if cascade || matches!(what, "SCHEMA" | "EXTENSION") {
            "high"
        } else {
            "medium"
        };
        let also = if cascade {
            "; CASCADE also drops everything that depends on it"
        } else {
            ""
        };
        out.push(Self::plain(
            rule,
            severity,
            format!(
                "DROP {what} {}: clients, views and functions still using it break{also}",
                names.join(", ")
            ),
            format!(
                "stop every use of the {} first (revoke, rename aside in an earlier release), then drop it",
                what.to_lowercase()
            ),
        ));
    }

    pub(super) fn set_schema(out: &mut Vec<Finding>, what: &str, name: &str) {
        out.push(Self::plain(
            "ban-set-schema",
            "high",
            format!("{what} {name} moves to another schema: clients using its qualified name, or a search_path without the new schema, break"),
            "create the object in the new schema alongside (or a view), move clients, then drop the old one".into(),
        ));
    }
}
