//! Walks PostgreSQL's raw parse tree of a migration into `rules::Shape`s with each
//! statement's location. Reads nodes only; executes nothing and reads no catalog.

use super::rules::Shape;
use crate::infra::error::{CapstoneError, Result};
use pgrx::pg_sys;
use std::ffi::CStr;

/// One parsed statement: its byte offset and length in the migration text and its shape.
pub struct Parsed {
    pub location: usize,
    pub len: usize,
    pub shape: Shape,
}

unsafe fn cstr(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    CStr::from_ptr(p).to_string_lossy().into_owned()
}

unsafe fn relname(rv: *mut pg_sys::RangeVar) -> String {
    if rv.is_null() {
        return String::new();
    }
    cstr((*rv).relname)
}

unsafe fn has_option(list: *mut pg_sys::List, name: &str) -> bool {
    if list.is_null() {
        return false;
    }
    (0..(*list).length as usize).any(|i| {
        let n = (*(*list).elements.add(i)).ptr_value as *mut pg_sys::Node;
        !n.is_null()
            && (*n).type_ == pg_sys::NodeTag::T_DefElem
            && cstr((*(n as *mut pg_sys::DefElem)).defname) == name
    })
}

unsafe fn shape(node: *mut pg_sys::Node) -> Shape {
    if node.is_null() {
        return Shape::Other;
    }
    match (*node).type_ {
        pg_sys::NodeTag::T_IndexStmt => {
            let s = node as *mut pg_sys::IndexStmt;
            Shape::CreateIndex {
                table: relname((*s).relation),
                concurrent: (*s).concurrent,
            }
        }
        pg_sys::NodeTag::T_AlterTableStmt => {
            let s = node as *mut pg_sys::AlterTableStmt;
            Shape::AlterTable {
                table: relname((*s).relation),
            }
        }
        pg_sys::NodeTag::T_RenameStmt => {
            let s = node as *mut pg_sys::RenameStmt;
            Shape::Rename {
                table: relname((*s).relation),
            }
        }
        pg_sys::NodeTag::T_DropStmt => {
            let s = node as *mut pg_sys::DropStmt;
            match (*s).removeType {
                pg_sys::ObjectType::OBJECT_INDEX => Shape::DropIndex {
                    concurrent: (*s).concurrent,
                },
                pg_sys::ObjectType::OBJECT_TABLE => Shape::DropTable {
                    table: String::new(),
                },
                _ => Shape::Other,
            }
        }
        pg_sys::NodeTag::T_TruncateStmt => Shape::Truncate {
            table: String::new(),
        },
        pg_sys::NodeTag::T_VacuumStmt => {
            let s = node as *mut pg_sys::VacuumStmt;
            if has_option((*s).options, "full") {
                Shape::VacuumFull {
                    table: String::new(),
                }
            } else {
                Shape::Other
            }
        }
        pg_sys::NodeTag::T_ClusterStmt => {
            let s = node as *mut pg_sys::ClusterStmt;
            Shape::Cluster {
                table: relname((*s).relation),
            }
        }
        pg_sys::NodeTag::T_ReindexStmt => {
            let s = node as *mut pg_sys::ReindexStmt;
            Shape::Reindex {
                concurrent: has_option((*s).params, "concurrently"),
            }
        }
        pg_sys::NodeTag::T_DoStmt => Shape::Do,
        pg_sys::NodeTag::T_VariableSetStmt => {
            let s = node as *mut pg_sys::VariableSetStmt;
            if cstr((*s).name) == "lock_timeout" {
                // SET lock_timeout to any value counts as in force; RESET turns it off
                Shape::SetLockTimeout {
                    on: (*s).kind == pg_sys::VariableSetKind::VAR_SET_VALUE,
                }
            } else {
                Shape::Other
            }
        }
        _ => Shape::Other,
    }
}

/// The statements of `sql` with their locations. A syntax error raises as the server's (42601).
pub fn parse(sql: &str) -> Result<Vec<Parsed>> {
    let c = std::ffi::CString::new(sql).map_err(|_| {
        CapstoneError::InvalidParameter("migration must not contain NUL bytes".into())
    })?;
    // SAFETY: the raw parser on a NUL-terminated string; its list holds RawStmt nodes
    unsafe {
        let list = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        if list.is_null() {
            return Ok(Vec::new());
        }
        Ok((0..(*list).length as usize)
            .map(|i| {
                let raw = (*(*list).elements.add(i)).ptr_value as *mut pg_sys::RawStmt;
                let location = (*raw).stmt_location.max(0) as usize;
                let len = (*raw).stmt_len.max(0) as usize;
                Parsed {
                    location,
                    len,
                    shape: shape((*raw).stmt),
                }
            })
            .collect())
    }
}
