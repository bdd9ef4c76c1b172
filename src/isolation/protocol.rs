//! What a demo session does with a statement: its kind (BEGIN, COMMIT, ROLLBACK,
//! unsupported transaction control, anything else) as PostgreSQL's parser reads it, the
//! BEGIN options, and the action for the session's transaction state. No SPI, no slots.

use pgrx::prelude::*;

/// How one statement ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Row(String),
    Failed(String, String),
}

/// What a statement asks of the session's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Begin,
    Commit,
    Rollback,
    /// transaction control a demo session does not do (savepoints, two-phase, chains)
    Unsupported,
    /// anything else: runs through SPI
    Other,
}

/// What the session does with a statement, given its transaction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// start a transaction block (or, already in one, answer BEGIN as PostgreSQL does)
    Begin,
    Commit,
    /// COMMIT of a failed transaction: roll back and answer ROLLBACK
    RollbackFailed,
    Rollback,
    Run,
    /// inside a failed transaction: 25P02 without running
    Refuse,
    Unsupported,
}

/// The session's transaction state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Txn {
    pub in_block: bool,
    pub failed: bool,
}

/// Pure: the action for a statement of `kind` in state `t`.
pub fn decide(kind: Kind, t: Txn) -> Action {
    match kind {
        Kind::Begin if t.in_block && t.failed => Action::Refuse,
        Kind::Begin => Action::Begin,
        Kind::Commit if t.failed => Action::RollbackFailed,
        Kind::Commit => Action::Commit,
        Kind::Rollback => Action::Rollback,
        Kind::Unsupported => Action::Unsupported,
        Kind::Other if t.in_block && t.failed => Action::Refuse,
        Kind::Other => Action::Run,
    }
}

/// A BEGIN's options, as PostgreSQL's parser gives them.
#[derive(Debug, Default, Clone, Copy)]
pub struct BeginOptions {
    pub isolation: Option<i32>,
    pub read_only: Option<bool>,
    pub deferrable: Option<bool>,
}

/// The parsed statement text: its kind, BEGIN's options, and the command tag of the
/// last statement (for statements that return no rows).
pub struct Parsed {
    pub kind: Kind,
    pub begin: BeginOptions,
    pub tag: String,
}

fn isolation_code(name: &str) -> Option<i32> {
    match name {
        "serializable" => Some(pg_sys::XACT_SERIALIZABLE as i32),
        "repeatable read" => Some(pg_sys::XACT_REPEATABLE_READ as i32),
        "read committed" => Some(pg_sys::XACT_READ_COMMITTED as i32),
        "read uncommitted" => Some(pg_sys::XACT_READ_UNCOMMITTED as i32),
        _ => None,
    }
}

/// Integer, boolean or string value of a DefElem's A_Const argument.
unsafe fn const_value(arg: *mut pg_sys::Node) -> (Option<i64>, Option<String>) {
    if arg.is_null() || (*arg).type_ != pg_sys::NodeTag::T_A_Const {
        return (None, None);
    }
    let c = arg as *mut pg_sys::A_Const;
    if (*c).isnull {
        return (None, None);
    }
    let val = &(*c).val;
    match val.node.type_ {
        pg_sys::NodeTag::T_Integer => (Some(val.ival.ival as i64), None),
        pg_sys::NodeTag::T_Boolean => (Some(val.boolval.boolval as i64), None),
        pg_sys::NodeTag::T_String if !val.sval.sval.is_null() => (
            None,
            Some(
                std::ffi::CStr::from_ptr(val.sval.sval)
                    .to_string_lossy()
                    .into_owned(),
            ),
        ),
        _ => (None, None),
    }
}

unsafe fn begin_options(stmt: *mut pg_sys::TransactionStmt) -> BeginOptions {
    let mut o = BeginOptions::default();
    for d in crate::infra::parse::list_ptrs::<pg_sys::DefElem>((*stmt).options) {
        if d.is_null() || (*d).defname.is_null() {
            continue;
        }
        let name = std::ffi::CStr::from_ptr((*d).defname).to_string_lossy();
        let (n, s) = const_value((*d).arg);
        match name.as_ref() {
            "transaction_isolation" => o.isolation = s.as_deref().and_then(isolation_code),
            "transaction_read_only" => o.read_only = n.map(|v| v != 0),
            "transaction_deferrable" => o.deferrable = n.map(|v| v != 0),
            _ => {}
        }
    }
    o
}

/// Parse `sql` with PostgreSQL's parser. Text of several statements is one `Other` unless
/// one of them is transaction control, which a session takes only on its own.
pub fn parse(sql: &str) -> Parsed {
    let stmts = crate::infra::parse::raw_statements(sql, "a demo session statement");
    let mut parsed = Parsed {
        kind: Kind::Other,
        begin: BeginOptions::default(),
        tag: String::new(),
    };
    for (i, &node) in stmts.iter().enumerate() {
        if node.is_null() {
            continue;
        }
        unsafe {
            parsed.tag =
                std::ffi::CStr::from_ptr(pg_sys::GetCommandTagName(pg_sys::CreateCommandTag(node)))
                    .to_string_lossy()
                    .into_owned();
            if (*node).type_ != pg_sys::NodeTag::T_TransactionStmt {
                continue;
            }
            let t = node as *mut pg_sys::TransactionStmt;
            use pg_sys::TransactionStmtKind as K;
            let kind = match (*t).kind {
                K::TRANS_STMT_BEGIN | K::TRANS_STMT_START => Kind::Begin,
                K::TRANS_STMT_COMMIT if !(*t).chain => Kind::Commit,
                K::TRANS_STMT_ROLLBACK if !(*t).chain => Kind::Rollback,
                _ => Kind::Unsupported,
            };
            parsed.kind = if stmts.len() > 1 {
                Kind::Unsupported
            } else {
                kind
            };
            if kind == Kind::Begin && i == 0 {
                parsed.begin = begin_options(t);
            }
        }
    }
    parsed
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn transactions_behave_as_in_psql() {
        let idle = Txn::default();
        let open = Txn {
            in_block: true,
            failed: false,
        };
        let failed = Txn {
            in_block: true,
            failed: true,
        };
        assert_eq!(decide(Kind::Begin, idle), Action::Begin);
        assert_eq!(decide(Kind::Other, idle), Action::Run);
        assert_eq!(decide(Kind::Other, open), Action::Run);
        assert_eq!(decide(Kind::Other, failed), Action::Refuse);
        assert_eq!(decide(Kind::Commit, open), Action::Commit);
        assert_eq!(decide(Kind::Commit, failed), Action::RollbackFailed);
        assert_eq!(decide(Kind::Rollback, failed), Action::Rollback);
        assert_eq!(decide(Kind::Unsupported, open), Action::Unsupported);
    }
}
