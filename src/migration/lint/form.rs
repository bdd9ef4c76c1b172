//! A statement's form, from its raw parse tree: what makes a rerun of a migration that
//! failed part way fail again (a missing IF [NOT] EXISTS, an ADD CONSTRAINT), and the
//! tables it names without a schema, with the schema each resolves to on the caller's
//! search_path. What the statement does to a table is `tree`'s part.

use super::model::{Form, Name, Rerun, Unqualified};
use super::tree::{cstr, is, nodes, object_name, object_word, opt, relid, rv};
use pgrx::pg_sys;

/// The schema an existing relation named without one resolves to (None when it does not
/// exist, or is a temporary table).
unsafe fn resolved_schema(r: *mut pg_sys::RangeVar) -> Option<String> {
    let oid = relid(r);
    if oid == pg_sys::InvalidOid {
        return None;
    }
    let ns = pg_sys::get_rel_namespace(oid);
    if pg_sys::isAnyTempNamespace(ns) {
        return None;
    }
    opt(pg_sys::get_namespace_name(ns))
}

/// The schema a CREATE without one creates in: the first existing schema of search_path.
fn creation_schema() -> Option<String> {
    pgrx::spi::Spi::get_one::<String>("SELECT pg_catalog.current_schema()::pg_catalog.text")
        .ok()
        .flatten()
}

fn temp(r: *mut pg_sys::RangeVar) -> bool {
    // SAFETY: r is null or a RangeVar of the statement being read
    !r.is_null() && unsafe { (*r).relpersistence } as u8 == b't'
}

unsafe fn unqualified(out: &mut Form, verb: &'static str, r: *mut pg_sys::RangeVar, creates: bool) {
    if r.is_null() || !(*r).schemaname.is_null() || temp(r) {
        return;
    }
    let resolves_to = if creates {
        creation_schema()
    } else {
        resolved_schema(r)
    };
    out.unqualified.push(Unqualified {
        verb,
        name: rv(r).sql(),
        resolves_to,
    });
}

fn unguarded(out: &mut Form, what: String, clause: &'static str, concurrent_index: bool) {
    out.reruns.push(Rerun::Unguarded {
        what,
        clause,
        concurrent_index,
    });
}

/// The form of one raw statement.
///
/// # Safety
/// `node` is null or the statement node of a RawStmt from `raw_parser`.
pub unsafe fn form(node: *mut pg_sys::Node) -> Form {
    use pg_sys::NodeTag as T;
    let mut out = Form::default();
    if node.is_null() {
        return out;
    }
    match (*node).type_ {
        T::T_CreateStmt => {
            let s = node as *mut pg_sys::CreateStmt;
            let r = (*s).relation;
            if temp(r) {
                return out;
            }
            if !(*s).if_not_exists {
                unguarded(
                    &mut out,
                    format!("CREATE TABLE {}", rv(r).sql()),
                    "IF NOT EXISTS",
                    false,
                );
            }
            unqualified(&mut out, "CREATE TABLE", r, true);
        }
        T::T_CreateTableAsStmt => {
            let s = node as *mut pg_sys::CreateTableAsStmt;
            let into = (*s).into;
            if into.is_null() || temp((*into).rel) {
                return out;
            }
            if !(*s).if_not_exists {
                unguarded(
                    &mut out,
                    format!("CREATE TABLE {} AS", rv((*into).rel).sql()),
                    "IF NOT EXISTS",
                    false,
                );
            }
            unqualified(&mut out, "CREATE TABLE", (*into).rel, true);
        }
        T::T_AlterTableStmt => {
            let s = node as *mut pg_sys::AlterTableStmt;
            if (*s).objtype != pg_sys::ObjectType::OBJECT_TABLE || temp((*s).relation) {
                return out;
            }
            let table = rv((*s).relation).sql();
            for n in nodes((*s).cmds) {
                if !is(n, T::T_AlterTableCmd) {
                    continue;
                }
                let c = n as *mut pg_sys::AlterTableCmd;
                use pg_sys::AlterTableType as A;
                match (*c).subtype {
                    A::AT_AddColumn if !(*c).missing_ok => {
                        let col = if is((*c).def, T::T_ColumnDef) {
                            cstr((*((*c).def as *mut pg_sys::ColumnDef)).colname)
                        } else {
                            String::new()
                        };
                        unguarded(
                            &mut out,
                            format!(
                                "ALTER TABLE {table} ADD COLUMN {}",
                                Name::new(None, col).sql()
                            ),
                            "IF NOT EXISTS",
                            false,
                        );
                    }
                    A::AT_DropColumn if !(*c).missing_ok => unguarded(
                        &mut out,
                        format!(
                            "ALTER TABLE {table} DROP COLUMN {}",
                            Name::new(None, cstr((*c).name)).sql()
                        ),
                        "IF EXISTS",
                        false,
                    ),
                    A::AT_DropConstraint => out.reruns.push(Rerun::DropConstraint {
                        name: cstr((*c).name),
                        guarded: (*c).missing_ok,
                    }),
                    A::AT_AddConstraint if is((*c).def, T::T_Constraint) => {
                        out.reruns.push(Rerun::AddConstraint {
                            table: table.clone(),
                            name: opt((*((*c).def as *mut pg_sys::Constraint)).conname),
                        })
                    }
                    _ => {}
                }
            }
            unqualified(&mut out, "ALTER TABLE", (*s).relation, false);
        }
        T::T_IndexStmt => {
            let s = node as *mut pg_sys::IndexStmt;
            if !(*s).if_not_exists {
                match opt((*s).idxname) {
                    Some(name) => unguarded(
                        &mut out,
                        format!("CREATE INDEX {}", Name::new(None, name).sql()),
                        "IF NOT EXISTS",
                        (*s).concurrent,
                    ),
                    // without a name a rerun builds a second copy under a new name
                    None => unguarded(
                        &mut out,
                        format!("CREATE INDEX (unnamed) ON {}", rv((*s).relation).sql()),
                        "a name and IF NOT EXISTS",
                        (*s).concurrent,
                    ),
                }
            }
            unqualified(&mut out, "CREATE INDEX ON", (*s).relation, false);
        }
        T::T_DropStmt => {
            let s = node as *mut pg_sys::DropStmt;
            let Some(what) = object_word((*s).removeType) else {
                return out;
            };
            let objects = nodes((*s).objects);
            if !(*s).missing_ok {
                let list: Vec<String> = objects.iter().map(|n| object_name(*n)).collect();
                unguarded(
                    &mut out,
                    format!("DROP {what} {}", list.join(", ")),
                    "IF EXISTS",
                    false,
                );
            }
            if what == "TABLE" {
                for n in objects.into_iter().filter(|n| is(*n, T::T_List)) {
                    let r = pg_sys::makeRangeVarFromNameList(n as *mut pg_sys::List);
                    unqualified(&mut out, "DROP TABLE", r, false);
                }
            }
        }
        _ => {}
    }
    out
}
