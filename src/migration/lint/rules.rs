//! The lint rules over a plain description of each statement: which lock it takes, whether
//! it rewrites or scans, and the safe alternative. Pure logic: no server, no catalog reads.

/// What the tree walker learned about one statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    CreateIndex { table: String, concurrent: bool },
    DropIndex { concurrent: bool },
    AlterTable { table: String },
    Rename { table: String },
    DropTable { table: String },
    Truncate { table: String },
    VacuumFull { table: String },
    Cluster { table: String },
    Reindex { concurrent: bool },
    Do,
    SetLockTimeout { on: bool },
    Other,
}

/// One finding of the linter.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: &'static str,
    pub lock_mode: &'static str,
    pub blocks: &'static str,
    pub effect: &'static str,
    pub table: String,
    pub finding: String,
    pub safe_alternative: String,
}

fn f(
    rule: &'static str,
    severity: &'static str,
    lock: &'static str,
    effect: &'static str,
    table: &str,
    finding: String,
    alt: String,
) -> Finding {
    let blocks = if lock == "ACCESS EXCLUSIVE" {
        "reads, writes"
    } else if lock.is_empty() {
        ""
    } else {
        "writes"
    };
    Finding {
        rule,
        severity,
        lock_mode: lock,
        blocks,
        effect,
        table: table.to_string(),
        finding,
        safe_alternative: alt,
    }
}

/// The findings for one statement; `lock_timeout` is whether a lock_timeout is in force.
pub fn judge(shape: &Shape, lock_timeout: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let lock = match shape {
        Shape::CreateIndex {
            table,
            concurrent: false,
        } => {
            out.push(f("require-concurrent-index-creation", "high", "SHARE", "scan", table,
                format!("CREATE INDEX without CONCURRENTLY blocks writes to {table} for the whole build"),
                "CREATE INDEX CONCURRENTLY ... (outside a transaction block)".into()));
            "SHARE"
        }
        Shape::DropIndex { concurrent: false } => {
            out.push(f(
                "require-concurrent-index-deletion",
                "medium",
                "ACCESS EXCLUSIVE",
                "metadata",
                "",
                "DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the table".into(),
                "DROP INDEX CONCURRENTLY ...".into(),
            ));
            "ACCESS EXCLUSIVE"
        }
        Shape::Rename { table } => {
            out.push(f("renaming-column-or-table", "high", "ACCESS EXCLUSIVE", "metadata", table,
                "a rename breaks clients still using the old name".into(),
                "expand-contract: add the new name, backfill with capstone.backfill_start, switch readers, drop the old".into()));
            "ACCESS EXCLUSIVE"
        }
        Shape::DropTable { table } => {
            out.push(f(
                "ban-drop-table",
                "high",
                "ACCESS EXCLUSIVE",
                "metadata",
                table,
                "dropping a table loses its data and breaks clients".into(),
                "stop all use of the table first, then drop it in a later migration".into(),
            ));
            "ACCESS EXCLUSIVE"
        }
        Shape::Truncate { table } => {
            out.push(f(
                "ban-truncate",
                "high",
                "ACCESS EXCLUSIVE",
                "metadata",
                table,
                "TRUNCATE takes ACCESS EXCLUSIVE and removes every row".into(),
                "DELETE in keyset batches".into(),
            ));
            "ACCESS EXCLUSIVE"
        }
        Shape::VacuumFull { table } | Shape::Cluster { table } => {
            out.push(f(
                "ban-vacuum-full-cluster",
                "high",
                "ACCESS EXCLUSIVE",
                "rewrite",
                table,
                "VACUUM FULL / CLUSTER rewrite the table under ACCESS EXCLUSIVE".into(),
                "pg_repack, or plain VACUUM".into(),
            ));
            "ACCESS EXCLUSIVE"
        }
        Shape::Reindex { concurrent: false } => {
            out.push(f(
                "require-concurrent-reindex",
                "medium",
                "SHARE",
                "scan",
                "",
                "REINDEX without CONCURRENTLY blocks writes".into(),
                "REINDEX ... CONCURRENTLY".into(),
            ));
            "SHARE"
        }
        Shape::Do => {
            out.push(f(
                "opaque-do-block",
                "low",
                "",
                "",
                "",
                "a DO block is opaque to the linter".into(),
                "write the statements out as plain SQL".into(),
            ));
            ""
        }
        Shape::AlterTable { .. } => "ACCESS EXCLUSIVE",
        _ => "",
    };
    if lock == "ACCESS EXCLUSIVE" && !lock_timeout {
        let table = match shape {
            Shape::AlterTable { table }
            | Shape::Rename { table }
            | Shape::DropTable { table }
            | Shape::Truncate { table } => table.as_str(),
            _ => "",
        };
        out.push(f("require-lock-timeout", "high", "ACCESS EXCLUSIVE", "metadata", table,
            "ACCESS EXCLUSIVE without lock_timeout: if it queues behind a long transaction, every query on the table queues behind it".into(),
            "SET lock_timeout = '2s'; before the statement, and retry (capstone.safe_ddl does)".into()));
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn create_index_needs_concurrently() {
        let s = Shape::CreateIndex {
            table: "t".into(),
            concurrent: false,
        };
        assert_eq!(judge(&s, true).len(), 1);
        let s = Shape::CreateIndex {
            table: "t".into(),
            concurrent: true,
        };
        assert!(judge(&s, true).is_empty());
    }

    #[test]
    fn lock_timeout_clears_queue_hazard() {
        let s = Shape::AlterTable { table: "t".into() };
        assert_eq!(judge(&s, false).len(), 1);
        assert!(judge(&s, true).is_empty());
    }
}
