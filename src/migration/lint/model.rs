//! What the linter knows about a migration, as plain data: the statements the tree walker
//! found (`Action`, `Cmd`), the catalog facts about the tables they touch (`TableFacts`,
//! `ColumnFacts`) and one finding. No pgrx types: the grading in `rules` is unit-tested
//! without a server.

/// A relation name as written in the migration (schema optional).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Name {
    pub schema: Option<String>,
    pub name: String,
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// An identifier quoted only when it needs it (for the SQL in safe alternatives).
pub fn ident(s: &str) -> String {
    quote(s)
}

impl Name {
    pub fn new(schema: Option<String>, name: String) -> Self {
        Name { schema, name }
    }
    /// The name as SQL, quoted where it needs it.
    pub fn sql(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote(s), quote(&self.name)),
            None => quote(&self.name),
        }
    }
}

/// A column type as resolved from the statement (oid 0 when the type does not exist yet).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TypeSpec {
    pub oid: u32,
    pub typmod: i32,
    /// the last part of the type name as written, lower case (`serial`, `int4`, `varchar`)
    pub base: String,
    /// the type as SQL (`character varying(20)`), or the name written when unresolved
    pub display: String,
    pub array: bool,
    /// a domain with constraints: its base type as SQL (adding a column of it rewrites the
    /// table, because PostgreSQL checks the constraints against every row)
    pub domain_base: Option<String>,
}

/// A column default or USING expression: its text rebuilt from the tree and the
/// functions it calls.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Expr {
    pub text: String,
    pub funcs: Vec<Name>,
    /// the walker met a node it does not know, so volatility cannot be proven
    pub opaque: bool,
    /// a bare column reference (USING col): no transformation
    pub column_only: bool,
}

/// One subcommand of ALTER TABLE.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd {
    AddColumn {
        col: String,
        ty: TypeSpec,
        default: Option<Expr>,
        not_null: bool,
        /// GENERATED ... STORED (true) or VIRTUAL (false, PG 18)
        generated: Option<bool>,
        identity: bool,
        /// inline REFERENCES / CHECK / PRIMARY KEY / UNIQUE
        inline: Vec<Cmd>,
    },
    SetDefault {
        col: String,
    },
    /// ALTER COLUMN ... DROP DEFAULT
    DropDefault {
        col: String,
    },
    /// ADD GENERATED ... AS IDENTITY, SET GENERATED / identity options, DROP IDENTITY
    AlterIdentity {
        col: String,
    },
    /// ALTER COLUMN ... DROP EXPRESSION: a generated column becomes a plain one
    DropExpression {
        col: String,
    },
    SetNotNull {
        col: String,
    },
    DropNotNull {
        col: String,
    },
    AlterType {
        col: String,
        ty: TypeSpec,
        using: Option<Expr>,
    },
    DropColumn {
        col: String,
    },
    AddCheck {
        name: Option<String>,
        /// the column when the check is `col IS NOT NULL`
        not_null_col: Option<String>,
        not_valid: bool,
    },
    AddForeignKey {
        name: Option<String>,
        references: Name,
        not_valid: bool,
    },
    AddUnique {
        name: Option<String>,
        primary: bool,
        using_index: bool,
        cols: Vec<String>,
    },
    AddExclusion,
    /// PG 18: a NOT NULL table constraint, possibly NOT VALID
    AddNotNull {
        name: Option<String>,
        col: String,
        not_valid: bool,
    },
    Validate {
        name: String,
    },
    DropConstraint {
        name: String,
    },
    SetLogged,
    SetTablespace,
    SetAccessMethod,
    AttachPartition {
        partition: Name,
        /// the partition's validated constraints prove the bound, by PostgreSQL's own
        /// implication test (None: not tested)
        proven: Option<bool>,
        /// the parent's default partition, and whether its constraints prove it keeps
        /// none of the new bound's rows
        default_partition: Option<(Name, bool)>,
    },
    DetachPartition {
        partition: Name,
        concurrent: bool,
    },
    /// anything else: the lock PostgreSQL takes for it
    Other {
        lock: Lock,
    },
}

/// A statement of the migration, as the rules need it.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateTable {
        table: Name,
        columns: Vec<(String, TypeSpec)>,
    },
    AlterTable {
        table: Name,
        cmds: Vec<Cmd>,
    },
    CreateIndex {
        table: Name,
        name: Option<String>,
        concurrent: bool,
        unique: bool,
        columns: usize,
        if_not_exists: bool,
    },
    DropIndex {
        indexes: Vec<Name>,
        concurrent: bool,
    },
    Reindex {
        target: Name,
        /// REINDEX INDEX (true) or TABLE (false); None for SCHEMA/DATABASE/SYSTEM
        index: Option<bool>,
        concurrent: bool,
    },
    RenameColumn {
        table: Name,
        from: String,
        to: String,
    },
    RenameTable {
        table: Name,
        to: String,
    },
    RenameOther {
        what: &'static str,
    },
    DropTable {
        tables: Vec<Name>,
    },
    DropDatabase,
    Truncate {
        tables: Vec<Name>,
        cascade: bool,
    },
    VacuumFull {
        tables: Vec<Name>,
    },
    Cluster {
        table: Option<Name>,
    },
    Do,
    Begin,
    Commit,
    Rollback,
    Set {
        name: String,
        local: bool,
        /// Some(true): a non-zero value; Some(false): 0 or RESET/DEFAULT
        on: bool,
    },
    /// DROP of an object clients may use by name: the rule, what it is, the names
    DropObject {
        rule: &'static str,
        what: &'static str,
        names: Vec<String>,
        cascade: bool,
    },
    /// ALTER ... SET SCHEMA: the object's qualified name changes
    SetSchema {
        what: &'static str,
        name: String,
    },
    CreateDomainWithCheck,
    AlterDomainAddConstraint,
    AddEnumValue {
        ordered: bool,
    },
    Update {
        duplicates: Vec<String>,
    },
    Other,
}

/// PostgreSQL's table lock modes, weakest first.
/// What a statement does that fails when the migration is run again after failing part
/// way through (squawk's prefer-robust-stmts), from its parse tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rerun {
    /// It lacks IF [NOT] EXISTS: what it does (`CREATE TABLE lint_new`) and the clause.
    Unguarded {
        what: String,
        clause: &'static str,
        /// CREATE INDEX CONCURRENTLY: a failed build leaves an INVALID index behind, so a
        /// rerun fails on it even when the rest of the migration is transactional
        concurrent_index: bool,
    },
    /// ALTER TABLE ... DROP CONSTRAINT [IF EXISTS] name
    DropConstraint { name: String, guarded: bool },
    /// ALTER TABLE ... ADD CONSTRAINT (there is no IF NOT EXISTS for constraints)
    AddConstraint { table: String, name: Option<String> },
}

/// A table named without a schema (squawk's require-table-schema): the statement's verb,
/// the name as written, and the schema it resolves to on the caller's search_path now
/// (None: it does not exist yet, or it is being created).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unqualified {
    pub verb: &'static str,
    pub name: String,
    pub resolves_to: Option<String>,
}

/// Facts about a statement's form rather than about what it does to a table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Form {
    pub reruns: Vec<Rerun>,
    pub unqualified: Vec<Unqualified>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lock {
    None,
    AccessShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    AccessExclusive,
}

impl Lock {
    pub fn name(self) -> &'static str {
        match self {
            Lock::None => "",
            Lock::AccessShare => "ACCESS SHARE",
            Lock::RowExclusive => "ROW EXCLUSIVE",
            Lock::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            Lock::Share => "SHARE",
            Lock::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            Lock::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }
    /// What other sessions cannot do while it is held (or queued for).
    pub fn blocks(self) -> &'static str {
        match self {
            Lock::AccessExclusive => "reads, writes",
            Lock::Share | Lock::ShareRowExclusive => "writes",
            Lock::ShareUpdateExclusive => "DDL, VACUUM",
            _ => "",
        }
    }
    pub fn blocks_writes(self) -> bool {
        self >= Lock::Share
    }
}

/// What a statement does to the table's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// catalog change only
    None,
    /// reads every row (validation, index build)
    Scan,
    /// writes a new copy of the table and its indexes
    Rewrite,
}

impl Effect {
    pub fn name(self) -> &'static str {
        match self {
            Effect::None => "none",
            Effect::Scan => "scan",
            Effect::Rewrite => "rewrite",
        }
    }
}

/// Catalog facts about one column.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ColumnFacts {
    pub exists: bool,
    pub type_oid: u32,
    pub typmod: i32,
    pub not_null: bool,
    /// a validated CHECK proves `col IS NOT NULL`
    pub checked_not_null: bool,
    pub indexed: bool,
    /// the column is referenced by a CHECK constraint
    pub in_check: bool,
}

/// Catalog facts about one table (all zero when it does not exist).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableFacts {
    pub exists: bool,
    /// pg_relation_size: the heap a scan reads
    pub heap_bytes: i64,
    /// pg_total_relation_size: what a rewrite writes (heap, TOAST, indexes)
    pub total_bytes: i64,
    pub rows: f64,
}

impl TableFacts {
    pub fn empty(&self) -> bool {
        self.heap_bytes == 0 && self.rows <= 0.0
    }
}

/// The settings a grade depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// a table below this many bytes gets a lower severity
    pub small_table_bytes: i64,
    /// MB per second a rewrite writes or a scan reads, for the duration estimate
    pub throughput_mb_s: f64,
    pub pg_major: u32,
    /// TimeZone is UTC (timestamp -> timestamptz needs no rewrite then)
    pub utc: bool,
    /// a statement_timeout is in force before the first statement (safe_ddl runs in the
    /// caller's session, which may have one; a migration file starts without)
    pub statement_timeout: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            small_table_bytes: 10 << 20,
            throughput_mb_s: 100.0,
            pg_major: 16,
            utc: false,
            statement_timeout: false,
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: &'static str,
    pub lock: Lock,
    pub effect: Effect,
    pub table: String,
    pub table_bytes: Option<i64>,
    pub estimated_ms: Option<f64>,
    pub finding: String,
    pub safe_alternative: String,
}
