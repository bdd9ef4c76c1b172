//! Rules about a statement's form rather than what it does to a table: a migration that
//! fails part way and is run again (prefer-robust-stmts), tables named without a schema
//! (require-table-schema) and identifiers PostgreSQL truncates (identifier-too-long).

use super::super::model::*;
use super::{Facts, Linter};

/// PostgreSQL keeps the first NAMEDATALEN - 1 bytes of an identifier.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Identifiers of `sql` longer than PostgreSQL keeps, with the name it keeps: unquoted
/// words (folded to lower case as the scanner folds them) and quoted identifiers, never
/// the insides of strings, dollar quotes or comments.
pub fn long_identifiers(sql: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for t in crate::infra::sql_lex::tokenize(sql) {
        let Some(name) = t.ident() else { continue };
        if name.len() <= MAX_IDENTIFIER_BYTES || out.iter().any(|(n, _)| n == name) {
            continue;
        }
        let mut cut = MAX_IDENTIFIER_BYTES;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push((name.to_string(), name[..cut].to_string()));
    }
    out
}

impl<F: Facts> Linter<'_, F> {
    /// The findings about a statement's form; feed it after the statement itself, so the
    /// transaction state is the one the statement ran in.
    pub fn form(&mut self, form: &Form, was_in_tx: bool) -> Vec<Finding> {
        let mut out = Vec::new();
        for r in &form.reruns {
            match r {
                Rerun::Unguarded {
                    what,
                    clause,
                    concurrent_index,
                } => {
                    if *concurrent_index {
                        out.push(Self::plain(
                            "prefer-robust-stmts",
                            "info",
                            format!("{what} without {clause}: a failed CREATE INDEX CONCURRENTLY leaves an INVALID index behind, and running the migration again fails on it"),
                            format!("DROP INDEX CONCURRENTLY IF EXISTS <the invalid index>; then CREATE INDEX CONCURRENTLY IF NOT EXISTS ... (use {clause})"),
                        ));
                    } else if !was_in_tx {
                        out.push(Self::plain(
                            "prefer-robust-stmts",
                            "info",
                            format!("{what} without {clause}, outside a transaction: if the migration fails after it, running it again fails here"),
                            format!("use {clause}, or run the migration in one transaction (BEGIN ... COMMIT)"),
                        ));
                    }
                }
                Rerun::DropConstraint { name, guarded } => {
                    self.dropped_constraints.insert(name.clone());
                    if !guarded && !was_in_tx {
                        out.push(Self::plain(
                            "prefer-robust-stmts",
                            "info",
                            format!("DROP CONSTRAINT {} without IF EXISTS, outside a transaction: if the migration fails after it, running it again fails here", ident(name)),
                            format!("DROP CONSTRAINT IF EXISTS {}", ident(name)),
                        ));
                    }
                }
                Rerun::AddConstraint { table, name } => {
                    let again = name
                        .as_ref()
                        .is_some_and(|n| self.dropped_constraints.contains(n));
                    if !again && !was_in_tx {
                        let (what, alt) = match name {
                            Some(n) => (
                                format!("ADD CONSTRAINT {} (constraints have no IF NOT EXISTS)", ident(n)),
                                format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {n}; ALTER TABLE {table} ADD CONSTRAINT {n} ...; -- or one transaction", n = ident(n)),
                            ),
                            None => (
                                "ADD of an unnamed constraint (a rerun adds a second one under a new name, or fails)".to_string(),
                                format!("name it, and drop it IF EXISTS first: ALTER TABLE {table} DROP CONSTRAINT IF EXISTS <name>; ALTER TABLE {table} ADD CONSTRAINT <name> ..."),
                            ),
                        };
                        out.push(Self::plain(
                            "prefer-robust-stmts",
                            "info",
                            format!("{what}, outside a transaction: if the migration fails after it, running it again fails here"),
                            alt,
                        ));
                    }
                }
            }
        }
        for u in &form.unqualified {
            if !self.unqualified_seen.insert(u.name.clone()) {
                continue;
            }
            let (finding, alt) = match &u.resolves_to {
                Some(s) if u.verb == "CREATE TABLE" => (
                    format!("{} {} names no schema: on this search_path it is created in {}; run with another search_path (another role, a pooler's session) it lands elsewhere", u.verb, u.name, ident(s)),
                    format!("{} {}.{}", u.verb, ident(s), u.name),
                ),
                Some(s) => (
                    format!("{} {} names no schema: on this search_path it is {}.{}; run with another search_path it can reach another table", u.verb, u.name, ident(s), u.name),
                    format!("{} {}.{}", u.verb, ident(s), u.name),
                ),
                None => (
                    format!("{} {} names no schema: which table it reaches depends on the search_path it runs with", u.verb, u.name),
                    format!("{} <schema>.{}", u.verb, u.name),
                ),
            };
            out.push(Self::plain("require-table-schema", "info", finding, alt));
        }
        out
    }

    /// identifier-too-long for one statement's text.
    pub fn identifiers(&self, sql: &str) -> Vec<Finding> {
        long_identifiers(sql)
            .into_iter()
            .map(|(name, kept)| {
                Self::plain(
                    "identifier-too-long",
                    "low",
                    format!(
                        "the identifier \"{}…\" is {} bytes; PostgreSQL keeps the first {MAX_IDENTIFIER_BYTES}, \"{kept}\", so two names that differ only after that byte are the same name",
                        kept.chars().take(24).collect::<String>(),
                        name.len()
                    ),
                    format!("a name of at most {MAX_IDENTIFIER_BYTES} bytes"),
                )
            })
            .collect()
    }
}
