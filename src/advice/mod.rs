//! Gate 11, index advice: hypothetical indexes that only a plain EXPLAIN in this
//! session sees, and hiding real ones, to ask "would this index help / can I drop
//! that one" without building or dropping anything. The SQL surface only.

mod define;
mod fill;
pub mod hooks;
mod inject;
mod size;
mod store;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

use crate::infra::error::{required, CapstoneError, OrRaise};
use crate::infra::regclass::RegClass;
use pgrx::prelude::*;

/// Define a hypothetical index from one CREATE INDEX statement.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_index(
    create_index_sql: Option<&str>,
) -> TableIterator<'static, (name!(id, pg_sys::Oid), name!(index_name, String))> {
    let sql = required(create_index_sql, "create_index_sql");
    // the statement names the caller's table, so it resolves on the caller's search_path
    let index = crate::infra::search_path::guarded(|| {
        crate::infra::search_path::as_caller(|| define::define(sql))
    })
    .or_raise();
    let row = (index.oid, index.name.clone());
    store::add(index);
    TableIterator::once(row)
}

/// This session's hypothetical indexes, oldest first.
#[pg_extern(volatile, parallel_unsafe)]
#[allow(clippy::type_complexity)]
fn hypo_indexes() -> TableIterator<
    'static,
    (
        name!(id, pg_sys::Oid),
        name!(index_name, String),
        name!(table_name, RegClass),
        name!(access_method, String),
        name!(definition, String),
    ),
> {
    let rows: Vec<_> = store::all()
        .into_iter()
        .map(|i| (i.oid, i.name, RegClass(i.relid), i.am_name, i.definition))
        .collect();
    TableIterator::new(rows)
}

/// Forget one hypothetical index; false when the id is not one of this session's.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_drop(id: Option<pg_sys::Oid>) -> bool {
    let id = required(id, "id");
    store::unhide(id);
    store::drop(id)
}

/// Forget every hypothetical index and unhide every hidden index; returns how many
/// hypothetical indexes went.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_reset() -> i32 {
    store::reset() as i32
}

/// A hypothetical index's estimated size from the table's current statistics.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_size(
    id: Option<pg_sys::Oid>,
) -> TableIterator<
    'static,
    (
        name!(size_bytes, i64),
        name!(size_pretty, String),
        name!(estimated_rows, i64),
    ),
> {
    let id = required(id, "id");
    let Some(index) = store::get(id) else {
        CapstoneError::UndefinedObject(format!(
            "{} is not a hypothetical index of this session",
            id.to_u32()
        ))
        .raise_hint("list them with SELECT * FROM capstone.hypo_indexes()")
    };
    // SAFETY: the table was resolved when the index was defined; a dropped table
    // raises 42P01 from relation_open's lookup below
    if unsafe { pg_sys::get_rel_relkind(index.relid) } == 0 {
        CapstoneError::UndefinedTable(format!(
            "the table of hypothetical index {} no longer exists",
            index.name
        ))
        .raise_hint("drop it with capstone.hypo_drop(id)")
    }
    let (pages, rows) = unsafe { inject::estimate_standalone(&index) };
    let bytes = i64::from(pages) * size::BLOCK_SIZE as i64;
    TableIterator::once((
        bytes,
        crate::infra::format::size_pretty(bytes),
        rows.round() as i64,
    ))
}

fn index_oid(index: Option<RegClass>) -> pg_sys::Oid {
    let RegClass(oid) = required(index, "index");
    if store::is_used(oid) {
        return oid;
    }
    // SAFETY: a catalog lookup by OID
    match unsafe { pg_sys::get_rel_relkind(oid) } as u8 {
        0 => CapstoneError::UndefinedTable(format!("relation {} does not exist", oid.to_u32()))
            .raise(),
        b'i' => oid,
        _ => CapstoneError::WrongObjectType(format!("{} is not an index", relname(oid)))
            .raise_hint("hypo_hide takes an index, such as 'orders_pkey'::regclass"),
    }
}

fn relname(oid: pg_sys::Oid) -> String {
    Spi::get_one_with_args::<String>("SELECT $1::regclass::text", &[oid.into()])
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Plan as if this index did not exist (plain EXPLAIN in this session only); false
/// when it was already hidden.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_hide(index: Option<RegClass>) -> bool {
    store::hide(index_oid(index))
}

/// Undo hypo_hide; false when the index was not hidden.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_unhide(index: Option<RegClass>) -> bool {
    store::unhide(index_oid(index))
}
