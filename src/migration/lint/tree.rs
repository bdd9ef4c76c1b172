//! Walks PostgreSQL's raw parse tree of one statement into an `Action`: ALTER TABLE's
//! subcommands (AlterTableCmd subtypes and their ColumnDef / Constraint nodes), IndexStmt,
//! DropStmt, RenameStmt, TransactionStmt, VariableSetStmt and the rest. Types are resolved
//! with the parser's own LookupTypeName (typmods included); nothing is executed.

use super::expr::make_expr;
use super::model::*;
use pgrx::pg_sys;
use std::ffi::CStr;

pub(super) unsafe fn cstr(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    CStr::from_ptr(p).to_string_lossy().into_owned()
}

pub(super) unsafe fn opt(p: *const std::os::raw::c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        Some(cstr(p))
    }
}

pub(super) unsafe fn nodes(l: *mut pg_sys::List) -> Vec<*mut pg_sys::Node> {
    crate::infra::parse::list_ptrs(l)
}

pub(super) unsafe fn is(n: *mut pg_sys::Node, tag: pg_sys::NodeTag) -> bool {
    !n.is_null() && (*n).type_ == tag
}

pub(super) unsafe fn strval(n: *mut pg_sys::Node) -> String {
    if is(n, pg_sys::NodeTag::T_String) {
        cstr((*(n as *mut pg_sys::String)).sval)
    } else {
        String::new()
    }
}

/// A list of String nodes (a qualified name) as `Name`.
pub(super) unsafe fn list_name(l: *mut pg_sys::List) -> Name {
    let parts: Vec<String> = nodes(l).into_iter().map(|n| strval(n)).collect();
    match parts.len() {
        0 => Name::default(),
        1 => Name::new(None, parts[0].clone()),
        n => Name::new(Some(parts[n - 2].clone()), parts[n - 1].clone()),
    }
}

pub(super) unsafe fn rv(r: *mut pg_sys::RangeVar) -> Name {
    if r.is_null() {
        return Name::default();
    }
    Name::new(opt((*r).schemaname), cstr((*r).relname))
}

unsafe fn has_option(list: *mut pg_sys::List, name: &str) -> bool {
    nodes(list).into_iter().any(|n| {
        is(n, pg_sys::NodeTag::T_DefElem) && cstr((*(n as *mut pg_sys::DefElem)).defname) == name
    })
}

/// The SQL word for an object kind a migration drops or moves (None: not one the linter
/// reads).
pub(super) fn object_word(kind: pg_sys::ObjectType::Type) -> Option<&'static str> {
    use pg_sys::ObjectType as O;
    Some(match kind {
        O::OBJECT_TABLE => "TABLE",
        O::OBJECT_INDEX => "INDEX",
        O::OBJECT_VIEW => "VIEW",
        O::OBJECT_MATVIEW => "MATERIALIZED VIEW",
        O::OBJECT_TYPE => "TYPE",
        O::OBJECT_DOMAIN => "DOMAIN",
        O::OBJECT_SEQUENCE => "SEQUENCE",
        O::OBJECT_SCHEMA => "SCHEMA",
        O::OBJECT_EXTENSION => "EXTENSION",
        O::OBJECT_FUNCTION => "FUNCTION",
        O::OBJECT_PROCEDURE => "PROCEDURE",
        O::OBJECT_ROUTINE => "ROUTINE",
        _ => return None,
    })
}

/// The relation a RangeVar names on the current search_path, without locking it
/// (InvalidOid when it does not exist).
pub(super) unsafe fn relid(r: *mut pg_sys::RangeVar) -> pg_sys::Oid {
    if r.is_null() {
        return pg_sys::InvalidOid;
    }
    pg_sys::RangeVarGetRelidExtended(
        r,
        pg_sys::NoLock as pg_sys::LOCKMODE,
        pg_sys::RVROption::RVR_MISSING_OK,
        None,
        std::ptr::null_mut(),
    )
}

/// The name of a dropped or moved object as written: a qualified name, a bare name (schema,
/// extension), a function with its arguments' names left out, or a type name.
pub(super) unsafe fn object_name(n: *mut pg_sys::Node) -> String {
    use pg_sys::NodeTag as T;
    if n.is_null() {
        return String::new();
    }
    match (*n).type_ {
        T::T_List => list_name(n as *mut pg_sys::List).sql(),
        T::T_String => Name::new(None, strval(n)).sql(),
        T::T_ObjectWithArgs => {
            format!(
                "{}(...)",
                list_name((*(n as *mut pg_sys::ObjectWithArgs)).objname).sql()
            )
        }
        T::T_TypeName => list_name((*(n as *mut pg_sys::TypeName)).names).sql(),
        _ => "?".into(),
    }
}

/// Resolve a TypeName the way CREATE/ALTER TABLE will (oid 0 when it does not exist yet).
pub(super) unsafe fn type_spec(tn: *mut pg_sys::TypeName) -> TypeSpec {
    if tn.is_null() {
        return TypeSpec::default();
    }
    let names = nodes((*tn).names);
    let base = names.last().map(|n| strval(*n)).unwrap_or_default();
    let array = !(*tn).arrayBounds.is_null();
    let mut typmod: i32 = -1;
    let tup = pg_sys::LookupTypeName(std::ptr::null_mut(), tn, &mut typmod, true);
    if tup.is_null() {
        return TypeSpec {
            oid: 0,
            typmod: -1,
            display: base.clone(),
            base,
            array,
            domain_base: None,
        };
    }
    let oid = pg_sys::typeTypeId(tup);
    pg_sys::ReleaseSysCache(tup);
    let display = cstr(pg_sys::format_type_with_typemod(oid, typmod));
    let domain_base = if !array && pg_sys::DomainHasConstraints(oid) {
        let mut base_typmod = typmod;
        let b = pg_sys::getBaseTypeAndTypmod(oid, &mut base_typmod);
        Some(cstr(pg_sys::format_type_with_typemod(b, base_typmod)))
    } else {
        None
    };
    TypeSpec {
        oid: u32::from(oid),
        typmod,
        base,
        display,
        array,
        domain_base,
    }
}

/// A CHECK expression that is `col IS NOT NULL`: the column.
unsafe fn not_null_check(n: *mut pg_sys::Node) -> Option<String> {
    if !is(n, pg_sys::NodeTag::T_NullTest) {
        return None;
    }
    let t = n as *mut pg_sys::NullTest;
    if (*t).nulltesttype != pg_sys::NullTestType::IS_NOT_NULL
        || !is((*t).arg as *mut pg_sys::Node, pg_sys::NodeTag::T_ColumnRef)
    {
        return None;
    }
    let c = (*t).arg as *mut pg_sys::ColumnRef;
    nodes((*c).fields).last().map(|f| strval(*f))
}

/// A table or column constraint as a subcommand (None for DEFAULT, NULL and the like).
unsafe fn constraint(c: *mut pg_sys::Constraint, col: Option<&str>) -> Option<Cmd> {
    use pg_sys::ConstrType as K;
    let name = opt((*c).conname);
    let not_valid = (*c).skip_validation;
    let keys: Vec<String> = nodes((*c).keys).into_iter().map(|k| strval(k)).collect();
    Some(match (*c).contype {
        K::CONSTR_CHECK => Cmd::AddCheck {
            name,
            not_null_col: not_null_check((*c).raw_expr),
            not_valid,
        },
        K::CONSTR_FOREIGN => Cmd::AddForeignKey {
            name,
            references: rv((*c).pktable),
            not_valid,
        },
        K::CONSTR_PRIMARY | K::CONSTR_UNIQUE => Cmd::AddUnique {
            name,
            primary: (*c).contype == K::CONSTR_PRIMARY,
            using_index: !(*c).indexname.is_null(),
            cols: if keys.is_empty() {
                col.map(|s| vec![s.to_string()]).unwrap_or_default()
            } else {
                keys
            },
        },
        K::CONSTR_EXCLUSION => Cmd::AddExclusion,
        // a table-level NOT NULL constraint (PG 18); column-level NOT NULL is handled by the column
        K::CONSTR_NOTNULL if col.is_none() => Cmd::AddNotNull {
            name,
            col: keys.into_iter().next().unwrap_or_default(),
            not_valid,
        },
        _ => return None,
    })
}

unsafe fn column_def(d: *mut pg_sys::ColumnDef) -> Cmd {
    use pg_sys::ConstrType as K;
    let col = cstr((*d).colname);
    let mut default = None;
    let mut not_null = (*d).is_not_null;
    let mut generated = None;
    let mut identity = (*d).identity != 0;
    let mut inline = Vec::new();
    for n in nodes((*d).constraints) {
        if !is(n, pg_sys::NodeTag::T_Constraint) {
            continue;
        }
        let c = n as *mut pg_sys::Constraint;
        match (*c).contype {
            K::CONSTR_DEFAULT => default = Some(make_expr((*c).raw_expr)),
            K::CONSTR_NOTNULL => not_null = true,
            K::CONSTR_IDENTITY => identity = true,
            K::CONSTR_GENERATED => {
                #[cfg(feature = "pg18")]
                let stored = (*c).generated_kind as u8 != b'v';
                #[cfg(not(feature = "pg18"))]
                let stored = true;
                generated = Some(stored);
            }
            _ => {
                if let Some(cmd) = constraint(c, Some(&col)) {
                    inline.push(cmd);
                }
            }
        }
    }
    Cmd::AddColumn {
        col,
        ty: type_spec((*d).typeName),
        default,
        not_null,
        generated,
        identity,
        inline,
    }
}

unsafe fn alter_cmd(c: *mut pg_sys::AlterTableCmd, table: *mut pg_sys::RangeVar) -> Cmd {
    use pg_sys::AlterTableType as A;
    let name = cstr((*c).name);
    let def = (*c).def;
    match (*c).subtype {
        A::AT_AddColumn if is(def, pg_sys::NodeTag::T_ColumnDef) => {
            column_def(def as *mut pg_sys::ColumnDef)
        }
        A::AT_ColumnDefault if def.is_null() => Cmd::DropDefault { col: name },
        A::AT_ColumnDefault => Cmd::SetDefault { col: name },
        A::AT_AddIdentity | A::AT_SetIdentity | A::AT_DropIdentity => {
            Cmd::AlterIdentity { col: name }
        }
        A::AT_DropExpression => Cmd::DropExpression { col: name },
        A::AT_SetNotNull => Cmd::SetNotNull { col: name },
        A::AT_DropNotNull => Cmd::DropNotNull { col: name },
        A::AT_DropColumn => Cmd::DropColumn { col: name },
        A::AT_AlterColumnType if is(def, pg_sys::NodeTag::T_ColumnDef) => {
            let d = def as *mut pg_sys::ColumnDef;
            // ALTER COLUMN ... TYPE ... USING expr: the parser keeps the USING in raw_default
            let using = if (*d).raw_default.is_null() {
                None
            } else {
                Some(make_expr((*d).raw_default))
            };
            Cmd::AlterType {
                col: name,
                ty: type_spec((*d).typeName),
                using,
            }
        }
        A::AT_AddConstraint if is(def, pg_sys::NodeTag::T_Constraint) => {
            constraint(def as *mut pg_sys::Constraint, None).unwrap_or(Cmd::Other {
                lock: Lock::AccessExclusive,
            })
        }
        A::AT_ValidateConstraint => Cmd::Validate { name },
        A::AT_DropConstraint => Cmd::DropConstraint { name },
        A::AT_SetLogged | A::AT_SetUnLogged => Cmd::SetLogged,
        A::AT_SetTableSpace => Cmd::SetTablespace,
        A::AT_SetAccessMethod => Cmd::SetAccessMethod,
        A::AT_AttachPartition | A::AT_DetachPartition
            if is(def, pg_sys::NodeTag::T_PartitionCmd) =>
        {
            let p = def as *mut pg_sys::PartitionCmd;
            if (*c).subtype == A::AT_AttachPartition {
                let proof = super::partition::attach(table, (*p).name, (*p).bound);
                Cmd::AttachPartition {
                    partition: rv((*p).name),
                    proven: proof.proven,
                    default_partition: proof.default_partition,
                }
            } else {
                Cmd::DetachPartition {
                    partition: rv((*p).name),
                    concurrent: (*p).concurrent,
                }
            }
        }
        A::AT_SetStatistics
        | A::AT_ClusterOn
        | A::AT_DropCluster
        | A::AT_SetRelOptions
        | A::AT_ResetRelOptions => Cmd::Other {
            lock: Lock::ShareUpdateExclusive,
        },
        A::AT_EnableTrig
        | A::AT_EnableAlwaysTrig
        | A::AT_EnableReplicaTrig
        | A::AT_DisableTrig
        | A::AT_EnableTrigAll
        | A::AT_DisableTrigAll
        | A::AT_EnableTrigUser
        | A::AT_DisableTrigUser
        | A::AT_AddIndex => Cmd::Other {
            lock: Lock::ShareRowExclusive,
        },
        _ => Cmd::Other {
            lock: Lock::AccessExclusive,
        },
    }
}

/// Is the SET's value "off" (0, '0', DEFAULT, RESET)?
unsafe fn set_on(s: *mut pg_sys::VariableSetStmt) -> bool {
    if (*s).kind != pg_sys::VariableSetKind::VAR_SET_VALUE {
        return false;
    }
    nodes((*s).args).into_iter().any(|a| {
        if !is(a, pg_sys::NodeTag::T_A_Const) {
            return true;
        }
        let c = a as *mut pg_sys::A_Const;
        let v = &(*c).val;
        match v.node.type_ {
            pg_sys::NodeTag::T_Integer => v.ival.ival != 0,
            pg_sys::NodeTag::T_String => {
                let s = cstr(v.sval.sval);
                let t = s.trim();
                !(t.is_empty()
                    || t.trim_start_matches('0').is_empty()
                    || t.starts_with("0 ")
                    || t.starts_with("0m")
                    || t.starts_with("0s"))
            }
            _ => true,
        }
    })
}

/// The `Action` of one raw statement.
///
/// # Safety
/// `node` is null or the statement node of a RawStmt from `raw_parser`.
pub unsafe fn action(node: *mut pg_sys::Node) -> Action {
    use pg_sys::NodeTag as T;
    if node.is_null() {
        return Action::Other;
    }
    match (*node).type_ {
        T::T_CreateStmt => {
            let s = node as *mut pg_sys::CreateStmt;
            let columns = nodes((*s).tableElts)
                .into_iter()
                .filter(|n| is(*n, T::T_ColumnDef))
                .map(|n| {
                    let d = n as *mut pg_sys::ColumnDef;
                    (cstr((*d).colname), type_spec((*d).typeName))
                })
                .collect();
            Action::CreateTable {
                table: rv((*s).relation),
                columns,
            }
        }
        T::T_CreateTableAsStmt => {
            let s = node as *mut pg_sys::CreateTableAsStmt;
            let into = (*s).into;
            Action::CreateTable {
                table: if into.is_null() {
                    Name::default()
                } else {
                    rv((*into).rel)
                },
                columns: Vec::new(),
            }
        }
        T::T_AlterTableStmt => {
            let s = node as *mut pg_sys::AlterTableStmt;
            if (*s).objtype != pg_sys::ObjectType::OBJECT_TABLE {
                return Action::Other;
            }
            Action::AlterTable {
                table: rv((*s).relation),
                cmds: nodes((*s).cmds)
                    .into_iter()
                    .filter(|n| is(*n, T::T_AlterTableCmd))
                    .map(|n| alter_cmd(n as *mut pg_sys::AlterTableCmd, (*s).relation))
                    .collect(),
            }
        }
        T::T_IndexStmt => {
            let s = node as *mut pg_sys::IndexStmt;
            Action::CreateIndex {
                table: rv((*s).relation),
                name: opt((*s).idxname),
                concurrent: (*s).concurrent,
                unique: (*s).unique,
                columns: nodes((*s).indexParams).len(),
                if_not_exists: (*s).if_not_exists,
            }
        }
        T::T_RenameStmt => {
            let s = node as *mut pg_sys::RenameStmt;
            use pg_sys::ObjectType as O;
            match (*s).renameType {
                O::OBJECT_COLUMN if (*s).relationType == O::OBJECT_TABLE => Action::RenameColumn {
                    table: rv((*s).relation),
                    from: cstr((*s).subname),
                    to: cstr((*s).newname),
                },
                O::OBJECT_TABLE => Action::RenameTable {
                    table: rv((*s).relation),
                    to: cstr((*s).newname),
                },
                O::OBJECT_SCHEMA => Action::RenameOther { what: "schema" },
                O::OBJECT_VIEW | O::OBJECT_MATVIEW => Action::RenameOther { what: "view" },
                _ => Action::Other,
            }
        }
        T::T_DropStmt => {
            let s = node as *mut pg_sys::DropStmt;
            let names: Vec<Name> = nodes((*s).objects)
                .into_iter()
                .filter(|n| is(*n, T::T_List))
                .map(|n| list_name(n as *mut pg_sys::List))
                .collect();
            let Some(what) = object_word((*s).removeType) else {
                return Action::Other;
            };
            let rule = match what {
                "INDEX" => {
                    return Action::DropIndex {
                        indexes: names,
                        concurrent: (*s).concurrent,
                    }
                }
                "TABLE" => return Action::DropTable { tables: names },
                "VIEW" | "MATERIALIZED VIEW" => "ban-drop-view",
                "TYPE" => "ban-drop-type",
                "DOMAIN" => "ban-drop-domain",
                "SEQUENCE" => "ban-drop-sequence",
                "SCHEMA" => "ban-drop-schema",
                "EXTENSION" => "ban-drop-extension",
                _ => "ban-drop-function",
            };
            Action::DropObject {
                rule,
                what,
                names: nodes((*s).objects)
                    .into_iter()
                    .map(|n| object_name(n))
                    .collect(),
                cascade: (*s).behavior == pg_sys::DropBehavior::DROP_CASCADE,
            }
        }
        T::T_DropdbStmt => Action::DropDatabase,
        T::T_AlterObjectSchemaStmt => {
            let s = node as *mut pg_sys::AlterObjectSchemaStmt;
            let what = object_word((*s).objectType).unwrap_or("object");
            let name = if (*s).relation.is_null() {
                object_name((*s).object)
            } else {
                rv((*s).relation).sql()
            };
            Action::SetSchema { what, name }
        }
        T::T_TruncateStmt => {
            let s = node as *mut pg_sys::TruncateStmt;
            Action::Truncate {
                tables: nodes((*s).relations)
                    .into_iter()
                    .filter(|n| is(*n, T::T_RangeVar))
                    .map(|n| rv(n as *mut pg_sys::RangeVar))
                    .collect(),
                cascade: (*s).behavior == pg_sys::DropBehavior::DROP_CASCADE,
            }
        }
        T::T_VacuumStmt => {
            let s = node as *mut pg_sys::VacuumStmt;
            if !(*s).is_vacuumcmd || !has_option((*s).options, "full") {
                return Action::Other;
            }
            Action::VacuumFull {
                tables: nodes((*s).rels)
                    .into_iter()
                    .filter(|n| is(*n, T::T_VacuumRelation))
                    .map(|n| rv((*(n as *mut pg_sys::VacuumRelation)).relation))
                    .collect(),
            }
        }
        T::T_ClusterStmt => {
            let s = node as *mut pg_sys::ClusterStmt;
            Action::Cluster {
                table: if (*s).relation.is_null() {
                    None
                } else {
                    Some(rv((*s).relation))
                },
            }
        }
        T::T_ReindexStmt => {
            let s = node as *mut pg_sys::ReindexStmt;
            use pg_sys::ReindexObjectType as R;
            let index = match (*s).kind {
                R::REINDEX_OBJECT_INDEX => Some(true),
                R::REINDEX_OBJECT_TABLE => Some(false),
                _ => None,
            };
            let target = if (*s).relation.is_null() {
                Name::new(None, cstr((*s).name))
            } else {
                rv((*s).relation)
            };
            Action::Reindex {
                target,
                index,
                concurrent: has_option((*s).params, "concurrently"),
            }
        }
        T::T_DoStmt => Action::Do,
        T::T_TransactionStmt => {
            use pg_sys::TransactionStmtKind as K;
            match (*(node as *mut pg_sys::TransactionStmt)).kind {
                K::TRANS_STMT_BEGIN | K::TRANS_STMT_START => Action::Begin,
                K::TRANS_STMT_COMMIT | K::TRANS_STMT_PREPARE => Action::Commit,
                K::TRANS_STMT_ROLLBACK => Action::Rollback,
                _ => Action::Other,
            }
        }
        T::T_VariableSetStmt => {
            let s = node as *mut pg_sys::VariableSetStmt;
            if (*s).kind == pg_sys::VariableSetKind::VAR_RESET_ALL {
                return Action::Set {
                    name: "*".into(),
                    local: false,
                    on: false,
                };
            }
            Action::Set {
                name: cstr((*s).name),
                local: (*s).is_local,
                on: set_on(s),
            }
        }
        T::T_CreateDomainStmt => {
            let s = node as *mut pg_sys::CreateDomainStmt;
            let check = nodes((*s).constraints).into_iter().any(|n| {
                is(n, T::T_Constraint)
                    && (*(n as *mut pg_sys::Constraint)).contype == pg_sys::ConstrType::CONSTR_CHECK
            });
            if check {
                Action::CreateDomainWithCheck
            } else {
                Action::Other
            }
        }
        T::T_AlterDomainStmt => {
            let s = node as *mut pg_sys::AlterDomainStmt;
            let not_valid = is((*s).def, T::T_Constraint)
                && (*((*s).def as *mut pg_sys::Constraint)).skip_validation;
            if (*s).subtype as u8 == b'C' && !not_valid {
                Action::AlterDomainAddConstraint
            } else {
                Action::Other
            }
        }
        T::T_AlterEnumStmt => {
            let s = node as *mut pg_sys::AlterEnumStmt;
            if !(*s).oldVal.is_null() {
                Action::RenameOther { what: "enum value" }
            } else {
                Action::AddEnumValue {
                    ordered: !(*s).newValNeighbor.is_null(),
                }
            }
        }
        T::T_UpdateStmt => {
            let s = node as *mut pg_sys::UpdateStmt;
            let mut seen = std::collections::HashSet::new();
            let mut duplicates = Vec::new();
            for n in nodes((*s).targetList) {
                if is(n, T::T_ResTarget) {
                    let name = cstr((*(n as *mut pg_sys::ResTarget)).name);
                    if !seen.insert(name.clone()) && !duplicates.contains(&name) {
                        duplicates.push(name);
                    }
                }
            }
            Action::Update { duplicates }
        }
        _ => Action::Other,
    }
}
