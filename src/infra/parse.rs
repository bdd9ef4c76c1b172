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
        if list.is_null() {
            return Vec::new();
        }
        (0..(*list).length as usize)
            .map(|i| {
                let raw = (*(*list).elements.add(i)).ptr_value as *mut pg_sys::RawStmt;
                (*raw).stmt
            })
            .collect()
    }
}
