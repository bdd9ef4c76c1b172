//! The lint rules: for each statement of a migration, which lock it takes on which table,
//! whether it rewrites or scans, how long that holds the lock at the table's live size, and
//! the safe alternative as SQL. State carried across statements: BEGIN/COMMIT, lock_timeout
//! (SET, SET LOCAL, RESET), tables created earlier in the migration (exempt), NOT NULL
//! checks added and validated earlier. Pure: catalog answers come through `Facts`.

use super::model::*;
use super::types;
use crate::infra::format::bytes as pretty;
use std::collections::{HashMap, HashSet};

/// What the rules ask the catalog.
pub trait Facts {
    fn table(&mut self, t: &Name) -> TableFacts;
    fn column(&mut self, t: &Name, col: &str) -> ColumnFacts;
    /// does the expression call a volatile function (pg_proc.provolatile = 'v')?
    fn volatile(&mut self, e: &Expr) -> bool;
    fn coercible(&mut self, from: u32, to: u32) -> bool;
    /// the table an index is on
    fn index_table(&mut self, index: &Name) -> Option<Name>;
    /// a constraint's pg_constraint.contype, and how many foreign keys reference it
    fn constraint_kind(&mut self, t: &Name, name: &str) -> Option<(char, i64)>;
    /// pg_type.typcategory of a type ('N' numeric, 'S' string, ...)
    fn category(&mut self, oid: u32) -> char;
    /// how many non-NULL values of the column change when cast to the type (None: unknown);
    /// asked only for tables below the small-table threshold, where reading them is cheap
    fn misfits(&mut self, t: &Name, col: &str, ty: &TypeSpec) -> Option<i64>;
}

/// The linter over one migration: feed it the statements in order.
pub struct Linter<'f, F: Facts> {
    pub facts: &'f mut F,
    pub settings: Settings,
    in_tx: bool,
    lock_timeout: Timeout,
    statement_timeout: Timeout,
    /// transaction_timeout (PostgreSQL 17+) bounds a statement as well
    transaction_timeout: Timeout,
    created: HashSet<String>,
    /// constraint name -> (table, column) for `CHECK (col IS NOT NULL)` added in the migration
    nn_checks: HashMap<String, (String, String)>,
    /// (table, column) proven NOT NULL by a check validated in the migration
    proven: HashSet<(String, String)>,
    /// constraints added NOT VALID in the open transaction
    tx_not_valid: HashSet<String>,
    /// constraint names dropped earlier in the migration (a rerun can add them again)
    dropped_constraints: HashSet<String>,
    /// tables already reported as named without a schema
    unqualified_seen: HashSet<String>,
}

fn key(t: &Name) -> String {
    t.name.clone()
}

impl<'f, F: Facts> Linter<'f, F> {
    pub fn new(facts: &'f mut F, settings: Settings) -> Self {
        let statement_timeout = Timeout::session(settings.statement_timeout);
        Linter {
            facts,
            settings,
            in_tx: false,
            lock_timeout: Timeout::default(),
            statement_timeout,
            transaction_timeout: Timeout::default(),
            created: HashSet::new(),
            nn_checks: HashMap::new(),
            proven: HashSet::new(),
            tx_not_valid: HashSet::new(),
            dropped_constraints: HashSet::new(),
            unqualified_seen: HashSet::new(),
        }
    }

    /// Is a transaction block open (after the statements fed so far)?
    pub fn in_transaction(&self) -> bool {
        self.in_tx
    }

    fn is_new(&self, t: &Name) -> bool {
        self.created.contains(&key(t))
    }

    /// A finding about `table`, its severity lowered (with the reason) when the table is
    /// small or empty and the hazard is the time the lock is held.
    #[allow(clippy::too_many_arguments)]
    fn hazard(
        &mut self,
        rule: &'static str,
        severity: &'static str,
        lock: Lock,
        effect: Effect,
        table: &Name,
        also: Option<&Name>,
        finding: String,
        alt: String,
    ) -> Finding {
        let f = self.facts.table(table);
        let extra = also.map(|t| self.facts.table(t)).unwrap_or_default();
        let (bytes, ms) = if !f.exists {
            (None, None)
        } else {
            let b = match effect {
                Effect::Rewrite => f.total_bytes,
                Effect::Scan => f.heap_bytes + extra.heap_bytes,
                Effect::None => f.heap_bytes,
            };
            let ms = match effect {
                Effect::None => None,
                _ => {
                    Some(b as f64 / (self.settings.throughput_mb_s.max(0.001) * 1048576.0) * 1000.0)
                }
            };
            (Some(b), ms)
        };
        let mut severity = severity;
        let mut finding = finding;
        if f.exists && effect != Effect::None && severity != "error" {
            let b = bytes.unwrap_or(0);
            if f.empty() && extra.empty() {
                severity = "low";
                finding.push_str(" (lowered: the table is empty now)");
            } else if b < self.settings.small_table_bytes {
                severity = "low";
                finding.push_str(&format!(
                    " (lowered: {} is below the small-table threshold of {}, about {:.0} ms)",
                    pretty(b),
                    pretty(self.settings.small_table_bytes),
                    ms.unwrap_or(0.0)
                ));
            }
        } else if !f.exists && !self.is_new(table) {
            finding.push_str(" (the table does not exist yet: size unknown)");
        }
        let tables = match also {
            Some(o) => format!("{}, {}", table.sql(), o.sql()),
            None => table.sql(),
        };
        Finding {
            rule,
            severity,
            lock,
            effect,
            table: tables,
            table_bytes: bytes,
            estimated_ms: ms,
            finding,
            safe_alternative: alt,
        }
    }

    /// `<what> CONCURRENTLY` inside BEGIN/COMMIT fails at run time (25001).
    fn concurrent_in_tx(&self, out: &mut Vec<Finding>, concurrent: bool, what: &str) {
        if concurrent && self.in_tx {
            out.push(Self::plain(
                "ban-concurrent-index-creation-in-transaction",
                "error",
                format!("{what} CONCURRENTLY cannot run inside a transaction block (25001)"),
                "run it on its own, outside BEGIN/COMMIT".into(),
            ));
        }
    }

    fn plain(rule: &'static str, severity: &'static str, finding: String, alt: String) -> Finding {
        Finding {
            rule,
            severity,
            lock: Lock::None,
            effect: Effect::None,
            table: String::new(),
            table_bytes: None,
            estimated_ms: None,
            finding,
            safe_alternative: alt,
        }
    }

    /// Type hygiene for a column type (squawk's prefer-* and ban-char-field rules).
    fn type_hygiene(out: &mut Vec<Finding>, table: &Name, col: &str, ty: &TypeSpec) {
        let t = table.sql();
        let c = ident(col);
        let mut push = |rule: &'static str, what: &str, alt: String| {
            out.push(Self::plain(
                rule,
                "info",
                format!("{t}.{c} is {}: {what}", ty.display),
                alt,
            ))
        };
        match (ty.base.as_str(), ty.oid) {
            ("serial" | "serial4" | "bigserial" | "serial8" | "smallserial" | "serial2", _) => {
                push(
                    "prefer-identity",
                    "serial columns own a sequence with loose permissions and dump semantics",
                    format!("{c} bigint GENERATED BY DEFAULT AS IDENTITY"),
                )
            }
            (_, types::INT4) if !ty.array => push(
                "prefer-bigint-over-int",
                "int4 keys run out at 2^31; changing the type later rewrites the table",
                format!("{c} bigint"),
            ),
            (_, types::INT2) if !ty.array => push(
                "prefer-bigint-over-smallint",
                "int2 runs out at 32767; changing the type later rewrites the table",
                format!("{c} bigint"),
            ),
            _ => {}
        }
        match ty.oid {
            types::VARCHAR if ty.typmod >= 0 => push(
                "prefer-text-field",
                "raising the limit later is cheap, but lowering it rewrites; a CHECK (length(...)) can be changed NOT VALID",
                format!("{c} text CHECK (length({c}) <= {})", ty.typmod - 4),
            ),
            types::TIMESTAMP => push(
                "prefer-timestamptz",
                "timestamp without time zone loses the offset",
                format!("{c} timestamptz"),
            ),
            types::BPCHAR => push(
                "ban-char-field",
                "char(n) pads with blanks and is never faster than text",
                format!("{c} text"),
            ),
            types::JSON => push(
                "prefer-jsonb",
                "json has no equality operator (DISTINCT, GROUP BY, UNION fail)",
                format!("{c} jsonb"),
            ),
            _ => {}
        }
    }

    /// The findings of one statement.
    pub fn statement(&mut self, a: &Action) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut exclusive_on: Vec<Name> = Vec::new();
        match a {
            Action::Begin => {
                if self.in_tx {
                    out.push(Self::plain(
                        "transaction-nesting",
                        "medium",
                        "BEGIN inside an open transaction does nothing (PostgreSQL warns); the statements after it are not in a transaction of their own".into(),
                        "remove the inner BEGIN, or use SAVEPOINT".into(),
                    ));
                }
                self.in_tx = true;
            }
            Action::Commit | Action::Rollback => {
                if !self.in_tx {
                    out.push(Self::plain(
                        "transaction-nesting",
                        "low",
                        "COMMIT/ROLLBACK without an open transaction does nothing".into(),
                        "remove it, or add the BEGIN it belongs to".into(),
                    ));
                }
                self.in_tx = false;
                self.lock_timeout.end_transaction();
                self.statement_timeout.end_transaction();
                self.transaction_timeout.end_transaction();
                self.tx_not_valid.clear();
            }
            Action::Set { name, local, on } => self.set(&mut out, name, *local, *on),
            Action::CreateTable { table, columns } => {
                self.created.insert(key(table));
                for (c, ty) in columns {
                    Self::type_hygiene(&mut out, table, c, ty);
                }
            }
            Action::AlterTable { table, cmds } => {
                if self.is_new(table) {
                    for c in cmds {
                        if let Cmd::AddColumn { col, ty, .. } | Cmd::AlterType { col, ty, .. } = c {
                            Self::type_hygiene(&mut out, table, col, ty);
                        }
                    }
                } else {
                    for c in cmds {
                        let lock = self.cmd(&mut out, table, c);
                        if lock == Lock::AccessExclusive && !exclusive_on.contains(table) {
                            exclusive_on.push(table.clone());
                        }
                    }
                }
            }
            Action::CreateIndex {
                table,
                name,
                concurrent,
                unique,
                columns,
                ..
            } => {
                self.concurrent_in_tx(&mut out, *concurrent, "CREATE INDEX");
                if !self.is_new(table) && !concurrent {
                    let n = name.as_deref().map(ident).unwrap_or_default();
                    let u = if *unique { "UNIQUE " } else { "" };
                    out.push(self.hazard(
                        "require-concurrent-index-creation",
                        "high",
                        Lock::Share,
                        Effect::Scan,
                        table,
                        None,
                        format!("CREATE {u}INDEX without CONCURRENTLY holds SHARE on {}: writes wait for the whole build", table.sql()),
                        format!("CREATE {u}INDEX CONCURRENTLY IF NOT EXISTS {n} ON {} (...); -- outside a transaction block", table.sql()),
                    ));
                }
                if !*unique && *columns > 3 {
                    out.push(Self::plain(
                        "index-too-many-columns",
                        "info",
                        format!("a non-unique index on {columns} columns is rarely used past its first columns and slows every write"),
                        "index the leading 1-3 columns".into(),
                    ));
                }
            }
            Action::DropIndex {
                indexes,
                concurrent,
            } => {
                self.concurrent_in_tx(&mut out, *concurrent, "DROP INDEX");
                if !concurrent {
                    for i in indexes {
                        let t = self.facts.index_table(i).unwrap_or_else(|| i.clone());
                        if self.is_new(&t) {
                            continue;
                        }
                        out.push(self.hazard(
                            "require-concurrent-index-deletion",
                            "medium",
                            Lock::AccessExclusive,
                            Effect::None,
                            &t,
                            None,
                            format!("DROP INDEX {} without CONCURRENTLY takes ACCESS EXCLUSIVE on {}", i.sql(), t.sql()),
                            format!("DROP INDEX CONCURRENTLY IF EXISTS {};", i.sql()),
                        ));
                        exclusive_on.push(t);
                    }
                }
            }
            Action::Reindex {
                target,
                index,
                concurrent,
            } => {
                self.concurrent_in_tx(&mut out, *concurrent, "REINDEX");
                if !concurrent {
                    let (t, what) = match index {
                        Some(true) => (
                            self.facts.index_table(target).unwrap_or_else(|| target.clone()),
                            "INDEX",
                        ),
                        Some(false) => (target.clone(), "TABLE"),
                        None => (target.clone(), "SCHEMA/DATABASE"),
                    };
                    out.push(self.hazard(
                        "require-concurrent-reindex",
                        "high",
                        Lock::Share,
                        Effect::Scan,
                        &t,
                        None,
                        format!("REINDEX without CONCURRENTLY holds SHARE on {} (writes wait) and ACCESS EXCLUSIVE on the index (reads using it wait)", t.sql()),
                        format!("REINDEX {what} CONCURRENTLY {};", target.sql()),
                    ));
                }
            }
            Action::RenameColumn { table, from, to } => {
                if !self.is_new(table) {
                    out.push(self.hazard(
                        "renaming-column",
                        "high",
                        Lock::AccessExclusive,
                        Effect::None,
                        table,
                        None,
                        format!("renaming {}.{} breaks every client still using the old name", table.sql(), ident(from)),
                        format!("ALTER TABLE {t} ADD COLUMN {n} <type>; -- then keep both in sync with a trigger, SELECT capstone.backfill_start('{t}', '{n} = {o}', '{n} IS NULL'); switch readers; ALTER TABLE {t} DROP COLUMN {o};", t = table.sql(), n = ident(to), o = ident(from)),
                    ));
                    exclusive_on.push(table.clone());
                }
            }
            Action::RenameTable { table, to } => {
                if !self.is_new(table) {
                    out.push(self.hazard(
                        "renaming-table",
                        "high",
                        Lock::AccessExclusive,
                        Effect::None,
                        table,
                        None,
                        format!("renaming {} breaks every client still using the old name", table.sql()),
                        format!("ALTER TABLE {} RENAME TO {}; CREATE VIEW {} AS SELECT * FROM {}; -- in one transaction, drop the view once clients moved", table.sql(), ident(to), table.sql(), ident(to)),
                    ));
                    exclusive_on.push(table.clone());
                }
            }
            Action::RenameOther { what } => out.push(Self::plain(
                "renaming-object",
                "high",
                format!("renaming a {what} breaks every client and function still using the old name"),
                format!("create the new {what} alongside, move users, drop the old one later"),
            )),
            Action::DropTable { tables } => {
                for t in tables {
                    if self.is_new(t) {
                        continue;
                    }
                    out.push(self.hazard(
                        "ban-drop-table",
                        "high",
                        Lock::AccessExclusive,
                        Effect::None,
                        t,
                        None,
                        format!("DROP TABLE {} loses its data and breaks clients still using it", t.sql()),
                        format!("stop every use of {} first (revoke, rename aside in an earlier release), then drop it", t.sql()),
                    ));
                    exclusive_on.push(t.clone());
                }
            }
            Action::DropObject {
                rule,
                what,
                names,
                cascade,
            } => Self::drop_object(&mut out, rule, what, names, *cascade),
            Action::SetSchema { what, name } => Self::set_schema(&mut out, what, name),
            Action::DropDatabase => out.push(Self::plain(
                "ban-drop-database",
                "high",
                "DROP DATABASE in a migration loses every table in it".into(),
                "do it by hand, outside migrations".into(),
            )),
            Action::Truncate { tables, cascade } => {
                for t in tables {
                    if self.is_new(t) {
                        continue;
                    }
                    let empty = self.facts.table(t);
                    let (rule, sev, what) = if *cascade {
                        ("ban-truncate-cascade", "high", "TRUNCATE ... CASCADE also empties every table with a foreign key to it")
                    } else {
                        ("ban-truncate", "medium", "TRUNCATE removes every row under ACCESS EXCLUSIVE")
                    };
                    // an empty table loses nothing (unless CASCADE reaches others)
                    let (sev, note) = if empty.exists && empty.empty() && !cascade {
                        ("low", " (lowered: the table is empty now)")
                    } else {
                        (sev, "")
                    };
                    out.push(self.hazard(
                        rule,
                        sev,
                        Lock::AccessExclusive,
                        Effect::None,
                        t,
                        None,
                        format!("{what} ({}){note}", t.sql()),
                        format!("DELETE in key batches (capstone.backfill_start cannot delete; loop DELETE ... WHERE id IN (SELECT id FROM {} LIMIT 10000))", t.sql()),
                    ));
                    exclusive_on.push(t.clone());
                }
            }
            Action::VacuumFull { .. } | Action::Cluster { .. } => {
                let (what, list) = match a {
                    Action::Cluster { table } => ("CLUSTER", table.iter().cloned().collect::<Vec<_>>()),
                    _ => ("VACUUM FULL", tables_of(a)),
                };
                for t in list {
                    out.push(self.hazard(
                        "prefer-repack",
                        "high",
                        Lock::AccessExclusive,
                        Effect::Rewrite,
                        &t,
                        None,
                        format!("{what} rewrites {} under ACCESS EXCLUSIVE: reads and writes wait for the whole copy", t.sql()),
                        format!("pg_repack --table {} (online), or plain VACUUM {};", t.sql(), t.sql()),
                    ));
                    exclusive_on.push(t);
                }
            }
            Action::Do => out.push(Self::plain(
                "opaque-do-block",
                "low",
                "a DO block is opaque to the linter: its statements are not checked".into(),
                "write its DDL out as plain statements".into(),
            )),
            Action::CreateDomainWithCheck => out.push(Self::plain(
                "ban-create-domain-with-constraint",
                "medium",
                "a CHECK on a domain is re-validated on every column using it when changed, under ACCESS EXCLUSIVE on each table".into(),
                "put the CHECK on the table columns (NOT VALID + VALIDATE)".into(),
            )),
            Action::AlterDomainAddConstraint => out.push(Self::plain(
                "ban-alter-domain-with-add-constraint",
                "high",
                "ALTER DOMAIN ADD CONSTRAINT scans every table with a column of the domain".into(),
                "ALTER DOMAIN ... ADD CONSTRAINT ... NOT VALID; ALTER DOMAIN ... VALIDATE CONSTRAINT ...;".into(),
            )),
            Action::AddEnumValue { ordered } => {
                if !ordered {
                    out.push(Self::plain(
                        "require-enum-value-ordering",
                        "info",
                        "ALTER TYPE ... ADD VALUE without BEFORE/AFTER appends the value last, whatever its meaning".into(),
                        "ALTER TYPE ... ADD VALUE '...' BEFORE|AFTER '...';".into(),
                    ));
                }
            }
            Action::Update { duplicates } => {
                if !duplicates.is_empty() {
                    out.push(Self::plain(
                        "ban-duplicate-column-assignments",
                        "error",
                        format!("UPDATE assigns {} more than once (42601 at run time)", duplicates.join(", ")),
                        "assign each column once".into(),
                    ));
                }
            }
            Action::Other => {}
        }
        self.require_statement_timeout(&mut out);
        if !self.lock_timeout.on() {
            exclusive_on.dedup();
            for t in exclusive_on {
                out.push(Finding {
                    rule: "require-lock-timeout",
                    severity: "high",
                    lock: Lock::AccessExclusive,
                    effect: Effect::None,
                    table: t.sql(),
                    table_bytes: None,
                    estimated_ms: None,
                    finding: format!("ACCESS EXCLUSIVE on {} without lock_timeout: queued behind any long transaction, it makes every later query on the table queue behind it", t.sql()),
                    safe_alternative: "SET lock_timeout = '2s'; -- before the statement, and retry on 55P03 (capstone.safe_ddl does both)".into(),
                });
            }
        }
        out
    }

    /// Findings at the end of the migration.
    pub fn finish(&self) -> Vec<Finding> {
        if self.in_tx {
            vec![Self::plain(
                "ban-uncommitted-transaction",
                "medium",
                "the migration ends inside an open transaction: nothing after BEGIN commits".into(),
                "COMMIT;".into(),
            )]
        } else {
            Vec::new()
        }
    }
}

fn tables_of(a: &Action) -> Vec<Name> {
    match a {
        Action::VacuumFull { tables } => tables.clone(),
        _ => Vec::new(),
    }
}

mod clients;
mod cmds;
mod form;
#[cfg(test)]
mod tests;
mod timeouts;
use timeouts::Timeout;
