//! Today's DDL warnings: known-dangerous forms (long or strong locks) found by matching
//! the statement's text, each with its safe form. Pure, no server. A parser-based linter
//! is meant to replace this file whole; nothing else depends on how it decides.

/// A warning about a DDL form that takes a long or strong lock, with the safe form.
pub fn ddl_warnings(ddl: &str) -> Vec<String> {
    let u = ddl.to_uppercase();
    let mut w = Vec::new();
    if u.contains("ADD COLUMN") && u.contains("DEFAULT") {
        let volatile = [
            "RANDOM(",
            "CLOCK_TIMESTAMP(",
            "GEN_RANDOM_UUID(",
            "NEXTVAL(",
            "UUIDV7(",
            "TIMEOFDAY(",
        ];
        if volatile.iter().any(|f| u.contains(f)) {
            w.push("ADD COLUMN with a volatile DEFAULT rewrites the whole table under ACCESS EXCLUSIVE; add the column without a default (or with a constant one), then backfill with capstone.backfill_start".into());
        }
    }
    if u.contains("SET NOT NULL") {
        w.push("SET NOT NULL scans the whole table under ACCESS EXCLUSIVE unless a validated CHECK (col IS NOT NULL) exists; add CHECK ... NOT VALID, VALIDATE CONSTRAINT, then SET NOT NULL".into());
    }
    if (u.starts_with("CREATE INDEX") || u.starts_with("CREATE UNIQUE INDEX"))
        && !u.contains("CONCURRENTLY")
    {
        w.push("CREATE INDEX without CONCURRENTLY blocks writes for the whole build; use CREATE INDEX CONCURRENTLY (outside a transaction block)".into());
    }
    if u.contains("ADD CONSTRAINT")
        && (u.contains("CHECK") || u.contains("FOREIGN KEY"))
        && !u.contains("NOT VALID")
    {
        w.push("ADD CONSTRAINT without NOT VALID validates every row while holding its lock; add it NOT VALID, then VALIDATE CONSTRAINT (a weaker lock)".into());
    }
    if u.contains("ALTER COLUMN") && u.contains(" TYPE ") {
        w.push("ALTER COLUMN ... TYPE usually rewrites the table under ACCESS EXCLUSIVE; expand-contract with a new column instead".into());
    }
    w
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn dangerous_ddl_is_named() {
        assert_eq!(ddl_warnings("ALTER TABLE t ADD COLUMN c text").len(), 0);
        assert_eq!(
            ddl_warnings("alter table t add column c uuid default gen_random_uuid()").len(),
            1
        );
        assert_eq!(
            ddl_warnings("ALTER TABLE t ALTER COLUMN c SET NOT NULL").len(),
            1
        );
        assert_eq!(ddl_warnings("CREATE INDEX i ON t (c)").len(), 1);
        assert_eq!(
            ddl_warnings("CREATE INDEX CONCURRENTLY i ON t (c)").len(),
            0
        );
        assert_eq!(
            ddl_warnings("ALTER TABLE t ADD CONSTRAINT k CHECK (c > 0)").len(),
            1
        );
        assert_eq!(
            ddl_warnings("ALTER TABLE t ADD CONSTRAINT k CHECK (c > 0) NOT VALID").len(),
            0
        );
    }
}
