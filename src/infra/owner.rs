//! capstone's own bookkeeping rows (evidence, job progress, DDL attempts, worker proofs)
//! are written by capstone, never by hand: PUBLIC may read its own rows (row-level
//! security) but may not INSERT, UPDATE or DELETE them. The one path that writes them is
//! [`write`], which runs a fixed, parameterised statement as the owner of capstone's
//! tables, with the search_path pinned and inside a security-restricted operation, and
//! records the real caller in the row. Caller SQL never runs in here.

use crate::infra::error::CapstoneError;
use pgrx::prelude::*;
use std::cell::Cell;
use std::ffi::CStr;

thread_local! {
    static OWNER: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

/// The role capstone acts for now: the caller's current_user.
pub fn caller() -> String {
    // SAFETY: GetUserId is always valid inside a transaction; GetUserNameFromId with
    // noerr = true returns NULL for a dropped role instead of raising.
    unsafe {
        let p = pg_sys::GetUserNameFromId(pg_sys::GetUserId(), true);
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

fn owner() -> pg_sys::Oid {
    if let Some(o) = OWNER.get() {
        return o;
    }
    let o = Spi::get_one::<pg_sys::Oid>(
        "SELECT relowner FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass('capstone.evidence')",
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| {
        CapstoneError::PrerequisiteState("capstone's tables are missing".into())
            .raise_hint("run CREATE EXTENSION capstone (or ALTER EXTENSION capstone UPDATE)")
    });
    OWNER.set(Some(o));
    o
}

/// Run `f` (capstone's own statements only) as the owner of capstone's tables, then
/// switch back to the caller, also when `f` raises.
pub fn write<R>(f: impl FnOnce() -> R) -> R {
    let owner = owner();
    let mut uid = pg_sys::InvalidOid;
    let mut ctx: i32 = 0;
    // SAFETY: the same save / switch / restore sequence PostgreSQL uses around index
    // expressions and maintenance commands run as a table's owner.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut uid, &mut ctx);
        pg_sys::SetUserIdAndSecContext(
            owner,
            ctx | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
    }
    let f = std::panic::AssertUnwindSafe(f);
    PgTryBuilder::new(move || {
        // the whole wrapper, not its field, moves in (it is what asserts unwind safety)
        let f = f;
        crate::infra::search_path::pinned(f.0)
    })
    .finally(move || unsafe { pg_sys::SetUserIdAndSecContext(uid, ctx) })
    .execute()
}
