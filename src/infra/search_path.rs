//! capstone's own statements never resolve names through a search_path the caller
//! controls (the CVE-2018-1058 class: a `public.pg_stat_activity` view, a same-named
//! function or an `=` operator in a schema earlier in the path).
//!
//! Most functions are pinned in SQL (`ALTER FUNCTION ... SET search_path = pg_catalog,
//! pg_temp` in sql/finalize.sql). The few that run SQL the caller wrote (a query to
//! EXPLAIN, a change, a DDL statement, a backfill clause) cannot be: that SQL must see
//! the caller's path. They call [`guarded`] at entry, which pins the path for their own
//! statements and remembers the caller's, and wrap the caller's SQL in [`as_caller`].
//!
//! Both use a new GUC nest level, as a function's `SET` clause does. On success the level
//! is popped here; on error the (sub)transaction abort pops it.

use pgrx::{pg_sys, PgLogLevel};
use std::cell::RefCell;
use std::ffi::{CStr, CString};

/// The path capstone's own statements run under. pg_temp last: temporary tables are
/// still found, temporary functions and operators never are.
pub const PINNED: &str = "pg_catalog, pg_temp";

thread_local! {
    static CALLER: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The search_path in effect now.
pub fn current() -> String {
    // SAFETY: search_path always exists; the returned string is copied at once.
    unsafe {
        let p = pg_sys::GetConfigOption(c"search_path".as_ptr(), false, false);
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// Run `f` with search_path = `path` at a new GUC nest level.
fn with_path<R>(path: &str, f: impl FnOnce() -> R) -> R {
    // a path comes from the server's own GUC or from PINNED: never has a NUL
    let value = CString::new(path).unwrap_or_else(|_| CString::from(c"pg_catalog, pg_temp"));
    // SAFETY: the same sequence fmgr uses for a function's SET clause; elevel ERROR
    // makes a rejected value raise like any other SET.
    let nest = unsafe {
        let nest = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            PgLogLevel::ERROR as i32,
            false,
        );
        nest
    };
    let r = f();
    // SAFETY: pops exactly the level opened above (an error in f never gets here)
    unsafe { pg_sys::AtEOXact_GUC(true, nest) };
    r
}

/// Run capstone's own statements under the pinned path, whatever the caller's is.
pub fn pinned<R>(f: impl FnOnce() -> R) -> R {
    with_path(PINNED, f)
}

/// Forgets the caller's path when the guarded call ends, also when it unwinds.
struct Restore(Option<String>);

impl Drop for Restore {
    fn drop(&mut self) {
        let prev = self.0.take();
        CALLER.with_borrow_mut(|c| *c = prev);
    }
}

/// Entry point of a function that runs caller-supplied SQL: `f` runs with the pinned
/// path, and [`as_caller`] inside it restores the caller's.
pub fn guarded<R>(f: impl FnOnce() -> R) -> R {
    let caller = current();
    let _restore = Restore(CALLER.with_borrow_mut(|c| c.replace(caller)));
    with_path(PINNED, f)
}

/// The caller's search_path inside [`guarded`]; the current one outside it.
pub fn caller() -> String {
    CALLER.with_borrow(|c| c.clone()).unwrap_or_else(current)
}

/// Run the caller's SQL under the caller's search_path. Outside [`guarded`] (a direct
/// call from Rust) the path in effect is kept.
pub fn as_caller<R>(f: impl FnOnce() -> R) -> R {
    match CALLER.with_borrow(|c| c.clone()) {
        Some(path) => with_path(&path, f),
        None => f(),
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn guarded_pins_and_as_caller_restores() {
        Spi::run("SET LOCAL search_path = public, pg_catalog").unwrap();
        let (inside, caller, after) = super::guarded(|| {
            let inside = super::current();
            let caller = super::as_caller(super::current);
            (inside, caller, super::current())
        });
        assert_eq!(inside, super::PINNED);
        assert_eq!(caller, "public, pg_catalog");
        assert_eq!(after, super::PINNED);
        assert_eq!(super::current(), "public, pg_catalog");
    }

    #[pg_test]
    fn as_caller_outside_guarded_keeps_the_path() {
        Spi::run("SET LOCAL search_path = public").unwrap();
        assert_eq!(super::as_caller(super::current), "public");
    }
}
