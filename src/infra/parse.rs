//! PostgreSQL's raw parser on SQL text a caller passed: the statements it holds, before
//! any name is resolved. A syntax error raises as the server's own (42601).

use crate::infra::error::CapstoneError;
use pgrx::pg_sys;

/// The statements of `sql`, as raw parse-tree nodes in the current memory context
/// (none for text of only semicolons and comments). `what` names the argument in errors.
pub fn raw_statements(sql: &str, what: &str) -> Vec<*mut pg_sys::Node> {
    let c = std::ffi::CString::new(sql).unwrap_or_else(|_| {
        CapstoneError::InvalidParameter(format!("{what} must not contain NUL bytes")).raise()
    });
    // SAFETY: the raw parser on a NUL-terminated string; its list holds RawStmt nodes
    unsafe {
        let list = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        list_ptrs::<pg_sys::RawStmt>(list)
            .into_iter()
            .map(|raw| (*raw).stmt)
            .collect()
    }
}

/// The pointer cells of a PostgreSQL `List` (NIL is empty), as the type the caller
/// knows they hold: parse-tree nodes, RawStmts, DefElems, IndexOptInfos.
///
/// # Safety
/// `list` is NIL or a valid pointer `List` whose cells all point to a `T`.
pub unsafe fn list_ptrs<T>(list: *mut pg_sys::List) -> Vec<*mut T> {
    if list.is_null() {
        return Vec::new();
    }
    unsafe {
        (0..(*list).length as usize)
            .map(|i| (*(*list).elements.add(i)).ptr_value as *mut T)
            .collect()
    }
}
