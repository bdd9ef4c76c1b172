//! The rules for ALTER TABLE subcommands: the lock each takes (PostgreSQL's
//! AlterTableGetLockLevel), rewrite or scan from the catalog (volatile defaults,
//! binary-coercible types, validated NOT NULL checks), and the safe alternative.

use super::super::model::*;
use super::super::types;
use super::{key, Facts, Linter};

impl<F: Facts> Linter<'_, F> {
    /// A constraint added NOT VALID inside a transaction: validating it in the same
    /// transaction keeps the ADD's lock, which the linter then reports.
    fn added_not_valid(&mut self, name: &Option<String>) {
        if let Some(n) = name {
            if self.in_tx {
                self.tx_not_valid.insert(n.clone());
            }
        }
    }

    /// Grade one subcommand on an existing table; returns the lock it takes.
    pub(super) fn cmd(&mut self, out: &mut Vec<Finding>, table: &Name, c: &Cmd) -> Lock {
        let t = table.sql();
        let v18 = self.settings.pg_major >= 18;
        match c {
            Cmd::AddColumn {
                col,
                ty,
                default,
                not_null,
                generated,
                identity,
                inline,
            } => {
                Self::type_hygiene(out, table, col, ty);
                let c = ident(col);
                let serial = matches!(
                    ty.base.as_str(),
                    "serial" | "serial4" | "bigserial" | "serial8" | "smallserial" | "serial2"
                );
                let volatile = default
                    .as_ref()
                    .map(|e| self.facts.volatile(e))
                    .unwrap_or(false);
                let stored = *generated == Some(true);
                let domain = if generated.is_none() && !(volatile || stored || *identity || serial)
                {
                    ty.domain_base.as_deref()
                } else {
                    None
                };
                // (finding, safe alternative) when the ADD COLUMN rewrites the table
                let rewrite = if let Some(b) = domain {
                    let n = ident(&format!("{col}_check"));
                    Some((
                        format!("ADD COLUMN {c}: its type {} is a domain with constraints, which PostgreSQL checks against every row (even for a NULL default) by rewriting {t} under ACCESS EXCLUSIVE", ty.display),
                        format!("ALTER TABLE {t} ADD COLUMN {c} {b}; ALTER TABLE {t} ADD CONSTRAINT {n} CHECK (<the domain's checks on {c}>) NOT VALID; ALTER TABLE {t} VALIDATE CONSTRAINT {n};"),
                    ))
                } else if volatile || stored || *identity || serial {
                    let why = if stored {
                        "a GENERATED ... STORED column computes every row".to_string()
                    } else if *identity || serial {
                        "an identity or serial column draws nextval() (volatile) for every row"
                            .to_string()
                    } else {
                        format!(
                            "the default {} is volatile (pg_proc.provolatile = 'v'): every row gets its own value",
                            default.as_ref().map(|e| e.text.as_str()).unwrap_or("")
                        )
                    };
                    let dflt = default
                        .as_ref()
                        .map(|e| e.text.clone())
                        .unwrap_or_else(|| "<expression>".into());
                    Some((
                        format!("ADD COLUMN {c}: {why}, so {t} is rewritten under ACCESS EXCLUSIVE"),
                        format!("ALTER TABLE {t} ADD COLUMN {c} {ty}; ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT {dflt}; SELECT capstone.backfill_start('{t}', '{c} = {d2}', '{c} IS NULL');",
                            ty = ty.display, d2 = dflt.replace('\'', "''")),
                    ))
                } else {
                    None
                };
                if let Some((finding, alt)) = rewrite {
                    out.push(self.hazard(
                        "adding-field-with-default",
                        "high",
                        Lock::AccessExclusive,
                        Effect::Rewrite,
                        table,
                        None,
                        finding,
                        alt,
                    ));
                } else if *not_null && default.is_none() && generated.is_none() {
                    let f = self.facts.table(table);
                    if f.exists && !f.empty() {
                        out.push(self.hazard(
                            "adding-required-field",
                            "error",
                            Lock::AccessExclusive,
                            Effect::None,
                            table,
                            None,
                            format!("ADD COLUMN {c} ... NOT NULL without a default fails on {t}, which has rows (23502)"),
                            format!("ALTER TABLE {t} ADD COLUMN {c} {ty} DEFAULT <constant> NOT NULL; -- a constant default needs no rewrite (PG 11+)", ty = ty.display),
                        ));
                    }
                }
                for i in inline {
                    self.cmd(out, table, i);
                }
                Lock::AccessExclusive
            }
            Cmd::SetNotNull { col } => {
                let cf = self.facts.column(table, col);
                let proven = self.proven.contains(&(key(table), col.clone()));
                if cf.exists && (cf.not_null || cf.checked_not_null) || proven {
                    return Lock::AccessExclusive;
                }
                let c = ident(col);
                let nn = ident(&format!("{}_{}_not_null", table.name, col));
                let alt = if v18 {
                    format!("ALTER TABLE {t} ADD CONSTRAINT {nn} NOT NULL {c} NOT VALID; ALTER TABLE {t} VALIDATE CONSTRAINT {nn}; -- PG 18: the scan runs under SHARE UPDATE EXCLUSIVE")
                } else {
                    format!("ALTER TABLE {t} ADD CONSTRAINT {nn} CHECK ({c} IS NOT NULL) NOT VALID; ALTER TABLE {t} VALIDATE CONSTRAINT {nn}; ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL; ALTER TABLE {t} DROP CONSTRAINT {nn};")
                };
                out.push(self.hazard(
                    "adding-not-nullable-field",
                    "high",
                    Lock::AccessExclusive,
                    Effect::Scan,
                    table,
                    None,
                    format!("SET NOT NULL on {t}.{c} scans every row under ACCESS EXCLUSIVE: no validated CHECK ({c} IS NOT NULL) proves it"),
                    alt,
                ));
                Lock::AccessExclusive
            }
            Cmd::DropNotNull { col } => {
                out.push(Self::plain(
                    "ban-drop-not-null",
                    "low",
                    format!("DROP NOT NULL on {t}.{}: clients that rely on the column never being NULL break", ident(col)),
                    "keep the constraint, or make sure every reader handles NULL first".into(),
                ));
                Lock::AccessExclusive
            }
            Cmd::AlterType { col, ty, using } => {
                Self::type_hygiene(out, table, col, ty);
                let cf = self.facts.column(table, col);
                let c = ident(col);
                let transforms = using.as_ref().map(|u| !u.column_only).unwrap_or(false);
                let (rewrite, why) = if !cf.exists || ty.oid == 0 {
                    (
                        true,
                        "the column or type is not in the catalog: assumed to rewrite".to_string(),
                    )
                } else {
                    let coercible = self.facts.coercible(cf.type_oid, ty.oid);
                    types::type_change(
                        cf.type_oid,
                        cf.typmod,
                        ty.oid,
                        ty.typmod,
                        coercible,
                        transforms,
                        self.settings.utc,
                    )
                };
                let tf = self.facts.table(table);
                let rows = tf.exists && !tf.empty();
                if cf.exists && rows && types::narrows(cf.type_oid, cf.typmod, ty.oid, ty.typmod) {
                    // not lowered for small tables: the statement fails, whatever the size;
                    // a small table's values are read to know
                    let misfits = if tf.heap_bytes < self.settings.small_table_bytes {
                        self.facts.misfits(table, col, ty)
                    } else {
                        None
                    };
                    let (severity, what) = match misfits {
                        Some(0) => ("", String::new()),
                        Some(n) => (
                            "error",
                            format!("it fails (22001/22003): {n} existing values do not fit"),
                        ),
                        None => (
                            "medium",
                            "it fails (22001/22003) if any existing value does not fit".to_string(),
                        ),
                    };
                    if !severity.is_empty() {
                        out.push(Finding {
                        rule: "changing-column-type",
                        severity,
                        lock: Lock::AccessExclusive,
                        effect: Effect::None,
                        table: t.clone(),
                        table_bytes: Some(tf.heap_bytes),
                        estimated_ms: None,
                        finding: format!("ALTER COLUMN {c} TYPE {} narrows the type: {what}", ty.display),
                        safe_alternative: format!("check first: SELECT count(*) FROM {t} WHERE {c}::{} IS DISTINCT FROM {c}; -- or a CHECK NOT VALID + VALIDATE for the new limit", ty.display),
                    });
                    }
                }
                if cf.exists && cf.in_check && ty.oid != 0 && cf.type_oid != ty.oid {
                    let (a, b) = (
                        self.facts.category(cf.type_oid),
                        self.facts.category(ty.oid),
                    );
                    if a != b {
                        out.push(Finding {
                            rule: "changing-column-type",
                            severity: "medium",
                            lock: Lock::AccessExclusive,
                            effect: Effect::None,
                            table: t.clone(),
                            table_bytes: Some(tf.heap_bytes),
                            estimated_ms: None,
                            finding: format!("{t}.{c} is used by a CHECK constraint, which is re-applied to the new type {} (another type category): its operators may not exist for it (42883)", ty.display),
                            safe_alternative: "drop or rewrite the CHECK for the new type in the same migration, before the type change".into(),
                        });
                    }
                }
                if rewrite {
                    let idx = if cf.indexed {
                        " and its indexes rebuilt"
                    } else {
                        ""
                    };
                    out.push(self.hazard(
                        "changing-column-type",
                        "high",
                        Lock::AccessExclusive,
                        Effect::Rewrite,
                        table,
                        None,
                        format!("ALTER COLUMN {c} TYPE {}: {why}; {t} is rewritten{idx} under ACCESS EXCLUSIVE", ty.display),
                        format!("ALTER TABLE {t} ADD COLUMN {c}_new {ty}; -- dual-write trigger, then SELECT capstone.backfill_start('{t}', '{c}_new = {c}', '{c}_new IS NULL'); switch readers; drop {c}", ty = ty.display),
                    ));
                }
                Lock::AccessExclusive
            }
            Cmd::DropColumn { col } => {
                out.push(self.hazard(
                    "ban-drop-column",
                    "medium",
                    Lock::AccessExclusive,
                    Effect::None,
                    table,
                    None,
                    format!("DROP COLUMN {t}.{} breaks clients still reading or writing it (SELECT *, INSERT with the column)", ident(col)),
                    "stop every use of the column (and deploy that) before dropping it".into(),
                ));
                Lock::AccessExclusive
            }
            Cmd::AddCheck {
                name,
                not_null_col,
                not_valid,
            } => {
                if let (Some(n), Some(col)) = (name, not_null_col) {
                    self.nn_checks.insert(n.clone(), (key(table), col.clone()));
                    if !not_valid {
                        self.proven.insert((key(table), col.clone()));
                    }
                }
                if *not_valid {
                    self.added_not_valid(name);
                } else {
                    let n = name
                        .as_deref()
                        .map(ident)
                        .unwrap_or_else(|| "<name>".into());
                    out.push(self.hazard(
                        "constraint-missing-not-valid",
                        "high",
                        Lock::AccessExclusive,
                        Effect::Scan,
                        table,
                        None,
                        format!("ADD CONSTRAINT {n} CHECK without NOT VALID scans every row of {t} under ACCESS EXCLUSIVE"),
                        format!("ALTER TABLE {t} ADD CONSTRAINT {n} CHECK (...) NOT VALID; ALTER TABLE {t} VALIDATE CONSTRAINT {n}; -- VALIDATE takes SHARE UPDATE EXCLUSIVE: writes go on"),
                    ));
                }
                Lock::AccessExclusive
            }
            Cmd::AddForeignKey {
                name,
                references,
                not_valid,
            } => {
                if *not_valid {
                    self.added_not_valid(name);
                } else {
                    let n = name
                        .as_deref()
                        .map(ident)
                        .unwrap_or_else(|| "<name>".into());
                    out.push(self.hazard(
                        "adding-foreign-key-constraint",
                        "high",
                        Lock::ShareRowExclusive,
                        Effect::Scan,
                        table,
                        Some(references),
                        format!("ADD FOREIGN KEY {n} without NOT VALID checks every row of {t} against {} while holding SHARE ROW EXCLUSIVE on both: writes to both wait", references.sql()),
                        format!("ALTER TABLE {t} ADD CONSTRAINT {n} FOREIGN KEY (...) REFERENCES {} NOT VALID; ALTER TABLE {t} VALIDATE CONSTRAINT {n};", references.sql()),
                    ));
                }
                Lock::ShareRowExclusive
            }
            Cmd::AddUnique {
                name,
                primary,
                using_index,
                cols,
            } => {
                if !using_index {
                    let what = if *primary { "PRIMARY KEY" } else { "UNIQUE" };
                    let cl = cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
                    let idx = ident(&format!("{}_{}_key", table.name, cols.join("_")));
                    let n = name.as_deref().map(ident).unwrap_or_else(|| idx.clone());
                    let rule = if *primary {
                        "adding-serial-primary-key-field"
                    } else {
                        "disallowed-unique-constraint"
                    };
                    out.push(self.hazard(
                        rule,
                        "high",
                        Lock::AccessExclusive,
                        Effect::Scan,
                        table,
                        None,
                        format!("ADD {what} builds its index under ACCESS EXCLUSIVE on {t}: reads and writes wait for the build"),
                        format!("CREATE UNIQUE INDEX CONCURRENTLY {idx} ON {t} ({cl}); ALTER TABLE {t} ADD CONSTRAINT {n} {what} USING INDEX {idx};"),
                    ));
                }
                Lock::AccessExclusive
            }
            Cmd::AddExclusion => {
                out.push(self.hazard(
                    "adding-exclusion-constraint",
                    "high",
                    Lock::AccessExclusive,
                    Effect::Scan,
                    table,
                    None,
                    format!("ADD EXCLUDE builds its index under ACCESS EXCLUSIVE on {t}; there is no concurrent form"),
                    "add it while the table is small, or in a maintenance window".into(),
                ));
                Lock::AccessExclusive
            }
            Cmd::AddNotNull {
                name,
                col,
                not_valid,
            } => {
                if !not_valid {
                    let cf = self.facts.column(table, col);
                    let proven = self.proven.contains(&(key(table), col.clone()));
                    if !(cf.not_null || cf.checked_not_null || proven) {
                        let n = name
                            .as_deref()
                            .map(ident)
                            .unwrap_or_else(|| "<name>".into());
                        out.push(self.hazard(
                            "adding-not-nullable-field",
                            "high",
                            Lock::AccessExclusive,
                            Effect::Scan,
                            table,
                            None,
                            format!("ADD CONSTRAINT {n} NOT NULL {} scans every row of {t} under ACCESS EXCLUSIVE", ident(col)),
                            format!("ALTER TABLE {t} ADD CONSTRAINT {n} NOT NULL {} NOT VALID; ALTER TABLE {t} VALIDATE CONSTRAINT {n};", ident(col)),
                        ));
                    }
                }
                Lock::AccessExclusive
            }
            Cmd::Validate { name } => {
                if let Some((tk, col)) = self.nn_checks.get(name) {
                    self.proven.insert((tk.clone(), col.clone()));
                }
                if self.tx_not_valid.contains(name) {
                    out.push(self.hazard(
                        "constraint-missing-not-valid",
                        "medium",
                        Lock::AccessExclusive,
                        Effect::Scan,
                        table,
                        None,
                        format!("VALIDATE CONSTRAINT {} in the transaction that added it NOT VALID: the ADD's ACCESS EXCLUSIVE is still held for the whole scan", ident(name)),
                        "COMMIT after ADD CONSTRAINT ... NOT VALID, then VALIDATE in its own transaction".into(),
                    ));
                }
                Lock::ShareUpdateExclusive
            }
            Cmd::SetDefault { .. } => Lock::AccessExclusive,
            Cmd::DropConstraint { name } => {
                self.drop_constraint(out, table, name);
                Lock::AccessExclusive
            }
            Cmd::DropDefault { col } => {
                self.drop_default(out, table, col);
                Lock::AccessExclusive
            }
            Cmd::AlterIdentity { col } => {
                self.column_source(out, table, col, true);
                Lock::AccessExclusive
            }
            Cmd::DropExpression { col } => {
                self.column_source(out, table, col, false);
                Lock::AccessExclusive
            }
            Cmd::SetLogged | Cmd::SetTablespace | Cmd::SetAccessMethod => {
                let what = match c {
                    Cmd::SetLogged => "SET LOGGED/UNLOGGED",
                    Cmd::SetTablespace => "SET TABLESPACE",
                    _ => "SET ACCESS METHOD",
                };
                out.push(self.hazard(
                    "rewriting-table-option",
                    "high",
                    Lock::AccessExclusive,
                    Effect::Rewrite,
                    table,
                    None,
                    format!("{what} copies all of {t} under ACCESS EXCLUSIVE"),
                    "create the new table beside it, copy in batches, swap names in one short transaction".into(),
                ));
                Lock::AccessExclusive
            }
            Cmd::AttachPartition {
                partition,
                proven,
                default_partition,
            } => {
                let p = partition.sql();
                let bound_check = format!("ALTER TABLE {p} ADD CONSTRAINT {n} CHECK (<the bound>) NOT VALID; ALTER TABLE {p} VALIDATE CONSTRAINT {n}; -- then ATTACH (no scan), then drop the check", n = ident(&format!("{}_bound", partition.name)));
                let why = match proven {
                    Some(true) => None,
                    Some(false) => Some(format!("ATTACH PARTITION scans {p} under ACCESS EXCLUSIVE: PostgreSQL's implication test, run now, finds no validated CHECK or NOT NULL that proves the bound ({t} itself gets SHARE UPDATE EXCLUSIVE)")),
                    None => Some(format!("ATTACH PARTITION scans {p} under ACCESS EXCLUSIVE unless a validated CHECK proves the bound (not tested: the tables do not exist yet or were locked; {t} itself gets SHARE UPDATE EXCLUSIVE)")),
                };
                if let Some(why) = why {
                    out.push(self.hazard(
                        "attach-partition-scans",
                        "medium",
                        Lock::AccessExclusive,
                        Effect::Scan,
                        partition,
                        None,
                        why,
                        bound_check,
                    ));
                }
                if let Some((d, false)) = default_partition {
                    let dn = d.sql();
                    out.push(self.hazard(
                        "attach-partition-scans",
                        "medium",
                        Lock::AccessExclusive,
                        Effect::Scan,
                        d,
                        None,
                        format!("ATTACH PARTITION also scans the default partition {dn} under ACCESS EXCLUSIVE, to prove none of its rows belong to {p}: no validated CHECK on it excludes the new bound"),
                        format!("ALTER TABLE {dn} ADD CONSTRAINT {n} CHECK (NOT (<the new bound>)) NOT VALID; ALTER TABLE {dn} VALIDATE CONSTRAINT {n}; -- then ATTACH", n = ident(&format!("{}_not_{}", d.name, partition.name))),
                    ));
                }
                Lock::ShareUpdateExclusive
            }
            Cmd::DetachPartition {
                partition,
                concurrent,
            } => {
                self.concurrent_in_tx(out, *concurrent, "DETACH PARTITION");
                if *concurrent {
                    return Lock::ShareUpdateExclusive;
                }
                out.push(self.hazard(
                    "require-concurrent-partition-detach",
                    "high",
                    Lock::AccessExclusive,
                    Effect::None,
                    table,
                    None,
                    format!("DETACH PARTITION {} without CONCURRENTLY takes ACCESS EXCLUSIVE on the parent {t}", partition.sql()),
                    format!("ALTER TABLE {t} DETACH PARTITION {} CONCURRENTLY;", partition.sql()),
                ));
                Lock::AccessExclusive
            }
            Cmd::Other { lock } => *lock,
        }
    }
}
