//! The planner and utility hooks behind hypothetical indexes, installed once from
//! _PG_init and chained to whatever was installed before. They do nothing unless this
//! backend holds a hypothetical or hidden index and a plain EXPLAIN is planning.

use super::{inject, store};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::Cell;

static mut PREV_RELATION_INFO: pg_sys::get_relation_info_hook_type = None;
static mut PREV_INDEX_NAME: pg_sys::explain_get_index_name_hook_type = None;
static mut PREV_PLANNER: pg_sys::planner_hook_type = None;
static mut PREV_UTILITY: pg_sys::ProcessUtility_hook_type = None;

thread_local! {
    /// How deep planner() calls are nested right now.
    static PLANNER_DEPTH: Cell<i32> = const { Cell::new(0) };
    /// While a plain EXPLAIN runs: the planner depth it started at. Only the planner
    /// call one level below it (the explained statement itself) sees hypothetical
    /// indexes; statements a function runs while being planned never do, because they
    /// are executed for real.
    static EXPLAIN_AT: Cell<Option<i32>> = const { Cell::new(None) };
}

/// Install the hooks (PostgreSQL 15–18; PG19 replaces get_relation_info_hook).
pub fn install() {
    // SAFETY: _PG_init runs once per backend, before any query
    unsafe {
        PREV_RELATION_INFO = pg_sys::get_relation_info_hook;
        pg_sys::get_relation_info_hook = Some(relation_info);
        PREV_INDEX_NAME = pg_sys::explain_get_index_name_hook;
        pg_sys::explain_get_index_name_hook = Some(index_name);
        PREV_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(planner);
        PREV_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(utility);
    }
}

/// Restores the previous value when dropped, also when an error unwinds through.
struct Restore<T: Copy + 'static> {
    cell: &'static std::thread::LocalKey<Cell<T>>,
    old: T,
}

impl<T: Copy + 'static> Drop for Restore<T> {
    fn drop(&mut self) {
        let old = self.old;
        self.cell.with(|c| c.set(old));
    }
}

fn set<T: Copy + 'static>(cell: &'static std::thread::LocalKey<Cell<T>>, value: T) -> Restore<T> {
    let old = cell.with(|c| c.replace(value));
    Restore { cell, old }
}

/// Is the statement being planned right now the one a plain EXPLAIN explains?
/// Run `f`, which calls the planner directly, as a plain EXPLAIN would be planned: with
/// this session's hypothetical indexes and without its hidden ones (the index advisor's
/// way to cost a candidate without SQL text or an EXPLAIN round trip).
pub fn with_hypothetical<R>(f: impl FnOnce() -> R) -> R {
    let depth = PLANNER_DEPTH.with(Cell::get);
    let _scope = set(&EXPLAIN_AT, Some(depth));
    f()
}

fn explaining() -> bool {
    let depth = PLANNER_DEPTH.with(Cell::get);
    EXPLAIN_AT.with(Cell::get) == Some(depth - 1)
}

/// EXPLAIN without ANALYZE of anything but EXECUTE (whose plan the plan cache would keep).
unsafe fn is_plain_explain(stmt: *mut pg_sys::Node) -> bool {
    unsafe {
        if stmt.is_null() || (*stmt).type_ != pg_sys::NodeTag::T_ExplainStmt {
            return false;
        }
        let explain = stmt as *mut pg_sys::ExplainStmt;
        let query = (*explain).query;
        if query.is_null() || (*query).type_ == pg_sys::NodeTag::T_ExecuteStmt {
            return false;
        }
        // after parse analysis EXPLAIN EXECUTE holds a utility Query around the ExecuteStmt
        if (*query).type_ == pg_sys::NodeTag::T_Query {
            let utility = (*(query as *mut pg_sys::Query)).utilityStmt;
            if !utility.is_null() && (*utility).type_ == pg_sys::NodeTag::T_ExecuteStmt {
                return false;
            }
        }
        for def in crate::infra::parse::list_ptrs::<pg_sys::DefElem>((*explain).options) {
            let name = std::ffi::CStr::from_ptr((*def).defname).to_bytes();
            if name.eq_ignore_ascii_case(b"analyze") && pg_sys::defGetBoolean(def) {
                return false;
            }
        }
        true
    }
}

#[pg_guard]
#[allow(clippy::too_many_arguments)] // ProcessUtility_hook's signature
unsafe extern "C-unwind" fn utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    unsafe {
        let _scope = if !store::is_empty() && is_plain_explain((*pstmt).utilityStmt) {
            let depth = PLANNER_DEPTH.with(Cell::get);
            Some(set(&EXPLAIN_AT, Some(depth)))
        } else {
            None
        };
        match PREV_UTILITY {
            Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| {
                prev(
                    pstmt,
                    query_string,
                    read_only_tree,
                    context,
                    params,
                    query_env,
                    dest,
                    qc,
                )
            }),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn planner(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: std::ffi::c_int,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    let depth = PLANNER_DEPTH.with(Cell::get);
    let _depth = set(&PLANNER_DEPTH, depth + 1);
    unsafe {
        match PREV_PLANNER {
            Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| {
                prev(parse, query_string, cursor_options, bound_params)
            }),
            None => pg_sys::standard_planner(parse, query_string, cursor_options, bound_params),
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn relation_info(
    root: *mut pg_sys::PlannerInfo,
    relid: pg_sys::Oid,
    inhparent: bool,
    rel: *mut pg_sys::RelOptInfo,
) {
    unsafe {
        if let Some(prev) = PREV_RELATION_INFO {
            pg_sys::ffi::pg_guard_ffi_boundary(|| prev(root, relid, inhparent, rel));
        }
        // an inheritance parent's own index list is never used for scans
        if !inhparent && !rel.is_null() && !store::is_empty() && explaining() {
            inject::apply(relid, rel);
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn index_name(index: pg_sys::Oid) -> *const std::ffi::c_char {
    if let Some(name) = store::name_of(index) {
        if let Ok(c) = std::ffi::CString::new(name) {
            // SAFETY: pstrdup copies into the caller's memory context
            return unsafe { pg_sys::pstrdup(c.as_ptr()) };
        }
    }
    unsafe {
        match PREV_INDEX_NAME {
            Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| prev(index)),
            None => std::ptr::null(),
        }
    }
}
