//! This backend's hypothetical indexes and hidden indexes: plain Rust data in the
//! backend's own heap, so no other session sees them and they end with the connection.
//! Holds definitions only; building planner structs is inject.rs's job.

use pgrx::pg_sys::Oid;
use std::cell::RefCell;

/// One key or INCLUDE column of a hypothetical index.
#[derive(Debug, Clone)]
pub struct Column {
    /// Table column number, or 0 for an expression (the next one in `exprs`).
    pub attnum: i32,
    /// The column's (or expression's) type, typmod and collation, for the target list.
    pub typid: Oid,
    pub typmod: i32,
    pub collation: Oid,
    /// Key columns only (INCLUDE columns have no operator class).
    pub opfamily: Oid,
    pub opcintype: Oid,
    pub opclass: Oid,
    pub descending: bool,
    pub nulls_first: bool,
    /// Average width in bytes, for the size estimate.
    pub width: i32,
}

/// A hypothetical index as defined by its CREATE INDEX.
#[derive(Debug, Clone)]
pub struct HypoIndex {
    pub oid: Oid,
    pub name: String,
    pub relid: Oid,
    pub relam: Oid,
    pub am_name: String,
    pub columns: Vec<Column>,
    pub nkeycolumns: usize,
    /// nodeToString of the expression list (varno 1), empty when none.
    pub exprs: String,
    /// nodeToString of the implicit-AND predicate list (varno 1), empty when none.
    pub pred: String,
    pub unique: bool,
    pub nulls_not_distinct: bool,
    pub fillfactor: Option<i32>,
    pub pages_per_range: Option<i32>,
    /// BRIN: is the first opclass a minmax one (two datums per range)?
    pub brin_minmax: bool,
    pub definition: String,
}

#[derive(Default)]
struct State {
    indexes: Vec<HypoIndex>,
    hidden: Vec<Oid>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Most hypothetical indexes one backend may hold (each takes an unused catalog OID).
pub const MAX_INDEXES: usize = 1000;

pub fn add(index: HypoIndex) {
    STATE.with(|s| s.borrow_mut().indexes.push(index));
}

pub fn count() -> usize {
    STATE.with(|s| s.borrow().indexes.len())
}

pub fn all() -> Vec<HypoIndex> {
    STATE.with(|s| s.borrow().indexes.clone())
}

pub fn get(oid: Oid) -> Option<HypoIndex> {
    STATE.with(|s| s.borrow().indexes.iter().find(|i| i.oid == oid).cloned())
}

pub fn is_used(oid: Oid) -> bool {
    STATE.with(|s| s.borrow().indexes.iter().any(|i| i.oid == oid))
}

/// The name EXPLAIN shows for one of ours.
pub fn name_of(oid: Oid) -> Option<String> {
    STATE.with(|s| {
        s.borrow()
            .indexes
            .iter()
            .find(|i| i.oid == oid)
            .map(|i| i.name.clone())
    })
}

/// The hypothetical indexes on one table.
pub fn for_table(relid: Oid) -> Vec<HypoIndex> {
    STATE.with(|s| {
        s.borrow()
            .indexes
            .iter()
            .filter(|i| i.relid == relid)
            .cloned()
            .collect()
    })
}

/// Remove one; false when it was not ours.
pub fn drop(oid: Oid) -> bool {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let before = s.indexes.len();
        s.indexes.retain(|i| i.oid != oid);
        before != s.indexes.len()
    })
}

/// Remove every hypothetical index and unhide every hidden one; returns how many indexes went.
pub fn reset() -> usize {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let n = s.indexes.len();
        s.indexes.clear();
        s.hidden.clear();
        n
    })
}

/// Hide a real index from plain EXPLAIN; false when it already was.
pub fn hide(oid: Oid) -> bool {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.hidden.contains(&oid) {
            false
        } else {
            s.hidden.push(oid);
            true
        }
    })
}

pub fn unhide(oid: Oid) -> bool {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let before = s.hidden.len();
        s.hidden.retain(|o| *o != oid);
        before != s.hidden.len()
    })
}

pub fn hidden() -> Vec<Oid> {
    STATE.with(|s| s.borrow().hidden.clone())
}

/// Anything to do in the planner hook at all?
pub fn is_empty() -> bool {
    STATE.with(|s| {
        let s = s.borrow();
        s.indexes.is_empty() && s.hidden.is_empty()
    })
}
