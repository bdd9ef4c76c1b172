//! One run from start to end: the checks before anything starts (preloaded library,
//! privileges, one demo at a time), the sessions, sweeping what a cut-short run left, the
//! script, and the cleanup that ends the sessions and removes fixtures also when the run
//! fails or is cancelled. Both the lab demo and the catalogue cases run through here.

use super::catalogue;
use super::driver::{run_script, Driver, Ended};
use super::fixes::Fix;
use super::read;
use super::rows::Row;
use super::scratch;
use super::session;
use super::shop::{
    classify, script, setup_sql, DROP_PARENTS, DROP_TENANT, LAB_TEARDOWN, LEFTOVERS, TEARDOWN,
};
use crate::infra::error::{notice, CapstoneError, Result};
use crate::infra::subxact::{self, Outcome};
use pgrx::prelude::*;
use serde_json::json;
use std::time::Duration;

/// The sessions are background workers driven through shared memory that exists only
/// when the library is preloaded.
pub fn require_sessions(function: &str) -> Result<()> {
    if !session::available() {
        return Err(CapstoneError::PrerequisiteState(format!(
            "{function} needs capstone in shared_preload_libraries"
        ))
        .with(
            "its sessions are capstone background workers, driven through shared memory that exists only when the library is preloaded",
            "add capstone to shared_preload_libraries in postgresql.conf and restart the server",
        ));
    }
    Ok(())
}

/// Refuse with 42501, before anything runs, when the caller lacks what its sessions need
/// (`missing` names it); the sessions run as the caller, so they would fail halfway.
pub fn refuse_lacking(
    function: &str,
    missing: Option<String>,
    detail: &str,
    hint: &str,
) -> Result<()> {
    match missing {
        Some(missing) => Err(CapstoneError::InsufficientPrivilege(format!(
            "{function}'s sessions run as {} and it lacks {missing}",
            crate::infra::owner::caller()
        ))
        .with(detail, hint)),
        None => Ok(()),
    }
}

/// Say that what a cut-short run left behind (`left`) was removed, and keep it on record.
pub fn record_swept(what: &str, left: &str) {
    notice(format!("swept {what}: {left}"));
    crate::infra::evidence::store(
        crate::infra::evidence::Gate::Isolation,
        Some("anomaly_demo: aborted run swept"),
        None,
        json!({}),
        json!({
            "summary": format!("An earlier run ended before its cleanup (crash, cancel or terminated backend) and left {what}: {left}. It was removed before this run."),
            "verdict": "aborted",
        }),
    );
}

/// One demo at a time per database: concurrent runs would share fixtures and sessions.
pub fn one_demo_at_a_time() -> Result<()> {
    if read::demo_lock() {
        return Ok(());
    }
    Err(CapstoneError::LockNotAvailable(
        "another capstone.anomaly_demo or isolation_matrix is running in this database".into(),
    )
    .with_hint("wait for it to finish; demos run one at a time"))
}

/// A fresh token for this run's sessions and scratch table.
pub fn new_token() -> i64 {
    read::new_token()
}

/// End the sessions' transactions (cancelling a statement still running), run the
/// teardown statements, and end the sessions.
fn cleanup<S: AsRef<str>>(d: &Driver, teardown: &[S]) {
    let n = d.sessions.count();
    if n > 0 {
        // the sessions may still be inside their demo transactions
        for s in 0..n {
            let _ = subxact::run(Outcome::Commit, || {
                if d.busy(s) {
                    // a statement still running (waiting for a lock held outside the demo,
                    // say) is cancelled rather than waited for
                    d.sessions.cancel(s);
                }
                // collect the answer, also one that arrived after the caller was cancelled
                // while waiting for it: until it is read the session takes no statement,
                // and the teardown below would not run
                let _ = d.result(s);
                let _ = d.exec(s, "ROLLBACK");
            });
        }
        let _ = subxact::run(Outcome::Commit, || {
            for sql in teardown {
                let _ = d.exec(0, sql.as_ref());
            }
        });
    }
    d.disconnect_all();
}

/// Sessions for a catalogue run: `n` of them, after the checks, with stale scratch
/// tables swept. `f` gets the driver and a cell to name the scratch table in use, which
/// cleanup drops also when `f` raises or is cancelled.
fn with_scratch_sessions<R>(
    function: &str,
    n: usize,
    f: impl FnOnce(&Driver, &std::cell::Cell<i64>) -> Result<R>,
) -> Result<(R, Vec<String>)> {
    require_sessions(function)?;
    scratch::check_privileges(function)?;
    one_demo_at_a_time()?;
    let token = new_token();
    let d = Driver {
        sessions: session::Sessions::default(),
        timeout: Duration::from_millis(crate::infra::gucs::worker_timeout_ms() as u64),
    };
    let current = std::cell::Cell::new(0i64);
    let (dref, cref) = (
        std::panic::AssertUnwindSafe(&d),
        std::panic::AssertUnwindSafe(&current),
    );
    let teardown = |d: &Driver, c: &std::cell::Cell<i64>| {
        let t = c.get();
        cleanup(
            d,
            &if t > 0 {
                vec![scratch::drop_sql(t)]
            } else {
                vec![]
            },
        );
    };
    let out = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| -> Result<_> {
        for k in 0..n {
            d.connect(catalogue::label(k), token)?;
        }
        scratch::sweep(&d)?;
        scratch::ensure_schema(&d)?;
        let r = f(&d, &current)?;
        Ok((r, d.sessions.roles()))
    }))
    .catch_others(move |e| {
        teardown(*dref, *cref);
        e.rethrow()
    })
    .execute();
    teardown(&d, &current);
    out
}

/// One catalogue case under one level, or with one fix at read committed: its rows and
/// the roles its sessions ran as.
pub fn demo_case(
    case: &catalogue::Case,
    level: &str,
    fix: Option<Fix>,
) -> Result<(Vec<Row>, Vec<String>)> {
    with_scratch_sessions("capstone.anomaly_demo", case.sessions, |d, current| {
        let token = new_token();
        current.set(token);
        let (rows, _) = scratch::run_case(d, case, level, fix, token)?;
        current.set(0);
        Ok(rows)
    })
}

/// Every catalogue case under every level, on one set of three sessions.
pub fn matrix() -> Result<(
    Vec<(&'static catalogue::Case, Vec<catalogue::Verdict>)>,
    Vec<String>,
)> {
    with_scratch_sessions("capstone.isolation_matrix", 3, |d, current| {
        catalogue::CASES
            .iter()
            .map(|case| {
                let verdicts = catalogue::LEVELS
                    .iter()
                    .map(|level| {
                        let token = new_token();
                        current.set(token);
                        let (_, v) = scratch::run_case(d, case, level, None, token)?;
                        current.set(0);
                        Ok(v)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok((case, verdicts))
            })
            .collect()
    })
}

/// The demo's rows, and the roles its two sessions ran as.
pub fn demo(anomaly: &str, mode: &str) -> Result<(Vec<Row>, Vec<String>)> {
    require_sessions("capstone.anomaly_demo")?;
    // read from the catalog, so a role without USAGE on shop hears what it lacks below
    if !read::lab_installed() {
        return Err(CapstoneError::PrerequisiteState(
            "the lab schema shop is not installed".into(),
        )
        .with_hint(
            "SELECT * FROM capstone.lab_install(scale => 0.01);  -- the demo runs on lab tables",
        ));
    }
    // the sessions run as the caller, so the caller needs what the fixture and the script
    // do on the lab's tables (deleting the demo's orders fires the order_lines trigger that
    // recomputes order totals, as the caller: UPDATE on orders, SELECT on order_lines);
    // say all of it before anything runs
    refuse_lacking(
        "anomaly_demo",
        read::lab_missing_privileges(),
        "nothing was created or run",
        "grant what README's Grants section lists for anomaly_demo: USAGE on schema shop; SELECT, INSERT, DELETE on shop.tenants, customers, products, stock and orders; UPDATE on shop.tenants, stock and orders; SELECT on shop.order_lines",
    )?;
    one_demo_at_a_time()?;
    let token = new_token();
    let d = Driver {
        sessions: session::Sessions::default(),
        timeout: Duration::from_millis(crate::infra::gucs::worker_timeout_ms() as u64),
    };
    let dref = std::panic::AssertUnwindSafe(&d);
    let out = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| -> Result<_> {
        d.connect("a", token)?;
        d.connect("b", token)?;
        let roles = d.sessions.roles();
        let mut rows = Vec::new();
        // setup, committed by session A; sweeps fixtures a cut-short run left behind
        // (a crash, a cancel or a terminated backend), and says so in the evidence store
        if let Ended::Row(left) = d.exec(0, LEFTOVERS)? {
            if !left.is_empty() {
                record_swept("the fixture of an aborted anomaly_demo run", &left);
            }
        }
        for sql in [TEARDOWN, DROP_PARENTS, DROP_TENANT] {
            d.exec(0, sql)?;
        }
        let (cols, vals) = read::customer_fill().map_err(|why| {
            CapstoneError::PrerequisiteState(format!("demo setup failed: {why}")).with_hint(
                "give the column a default, or run the demo on a lab whose customers table it can fill",
            )
        })?;
        let tenant = match d.exec(0, &setup_sql(token, &cols, &vals))? {
            Ended::Row(v) => v.split(',').next().and_then(|t| t.parse::<i64>().ok()).unwrap_or(0),
            Ended::Failed(c, m) => {
                return Err(CapstoneError::PrerequisiteState(format!(
                    "demo setup failed ({c}): {m}"
                ))
                .into())
            }
        };
        rows.push(Row {
            step: 0,
            session: "setup".into(),
            statement: format!("demo tenant {tenant}: stock on_hand = 10, credit limit 10000 cents"),
            result: Some("committed".into()),
            sqlstate: None,
            wait_ms: 0.0,
        });
        let steps = script(anomaly, mode, tenant, token);
        let (mut ran, _) = run_script(&d, &steps, 2)?;
        let committed = ran
            .iter()
            .filter(|r| r.statement == "COMMIT" && r.sqlstate.is_none() && r.result.as_deref() == Some("COMMIT"))
            .count();
        let codes: Vec<String> = ran.iter().filter_map(|r| r.sqlstate.clone()).collect();
        rows.append(&mut ran);
        let check = match anomaly {
            "lost_update" => format!("SELECT on_hand::text FROM shop.stock WHERE tenant_id = {tenant}"),
            _ => format!("SELECT coalesce(sum(total_cents), 0)::text FROM shop.orders WHERE tenant_id = {tenant} AND status = 'pending'"),
        };
        let final_value = match d.exec(0, &check)? {
            Ended::Row(v) => v.parse::<i64>().unwrap_or(-1),
            Ended::Failed(..) => -1,
        };
        let (_, verdict) = classify(anomaly, committed, final_value, &codes);
        rows.push(Row {
            step: rows.len() as i32,
            session: "check".into(),
            statement: check,
            result: Some(verdict),
            sqlstate: None,
            wait_ms: 0.0,
        });
        Ok((rows, roles))
    }))
    .catch_others(move |e| {
        cleanup(*dref, LAB_TEARDOWN);
        e.rethrow()
    })
    .execute();
    cleanup(&d, LAB_TEARDOWN);
    out
}
