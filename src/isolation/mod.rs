//! Anomaly reproducer: `capstone.anomaly_demo(anomaly, mode)` and
//! `capstone.isolation_matrix()`.
//!
//! Real backends (capstone background workers in this database, running as the calling
//! role: see `session`), two or three of them, run a fixed script. The calling backend
//! drives them one statement at a time and is never one of them. The interleaving is
//! deterministic without sleeps: a statement is sent, and the driver waits until it has
//! either finished or is blocked (pg_blocking_pids, or pg_safe_snapshot_blocking_pids for
//! a DEFERRABLE snapshot); when the next statement in script order belongs to a session
//! that is still blocked, the driver runs another session's next statement instead. The
//! catalogue cases (`catalogue`, pure) run on scratch tables (`scratch`); the lab's
//! lost_update and write_skew run on a demo tenant in the lab's tables. Fixtures are
//! created and removed by the sessions themselves, committed, and swept again on the next
//! run if a run was cut short.

// pgrx needs each result row spelled out as a name!() tuple in the signature
#![allow(clippy::type_complexity)]

pub mod catalogue;
pub mod scratch;
pub mod session;
pub mod verdict;

use crate::infra::error::{required, CapstoneError};
use crate::infra::subxact::{self, Outcome};
use pgrx::prelude::*;
use serde_json::json;
use std::time::{Duration, Instant};

pub const ANOMALIES: &[&str] = &["lost_update", "write_skew"];
pub const MODES: &[&str] = &[
    "read committed",
    "repeatable read",
    "serializable",
    "select for update",
    "for no key update",
    "atomic update",
    "advisory lock",
];

/// One statement of the script.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 0 = session A, 1 = session B, 2 = session C.
    pub session: usize,
    /// names the statement for the verdict (empty where the verdict reads only the final state)
    pub label: &'static str,
    pub sql: String,
}

fn isolation_level(mode: &str) -> &'static str {
    match mode {
        "repeatable read" => "REPEATABLE READ",
        "serializable" => "SERIALIZABLE",
        _ => "READ COMMITTED",
    }
}

/// The interleaved script for (anomaly, mode) on demo tenant `t`. Pure: unit-tested.
pub fn script(anomaly: &str, mode: &str, t: i64, token: i64) -> Vec<Step> {
    let both = |sql: &dyn Fn(usize) -> String| -> Vec<Step> {
        (0..2)
            .map(|s| Step {
                session: s,
                label: if sql(s) == "COMMIT" { "commit" } else { "" },
                sql: sql(s),
            })
            .collect()
    };
    let mut out = Vec::new();
    out.extend(both(&|_| {
        format!("BEGIN ISOLATION LEVEL {}", isolation_level(mode))
    }));
    match anomaly {
        "lost_update" => {
            let lock = match mode {
                "select for update" => " FOR UPDATE",
                "for no key update" => " FOR NO KEY UPDATE",
                _ => "",
            };
            if mode == "advisory lock" {
                out.extend(both(&|_| {
                    format!(
                        "SELECT pg_advisory_xact_lock(hashtext('capstone-demo-stock'), {t})::text"
                    )
                }));
            }
            if mode != "atomic update" {
                out.extend(both(&|_| {
                    format!(
                        "SELECT set_config('capstone_demo.read', on_hand::text, false) FROM shop.stock WHERE tenant_id = {t}{lock}"
                    )
                }));
                out.extend(both(&|_| {
                    format!(
                        "UPDATE shop.stock SET on_hand = current_setting('capstone_demo.read')::int - 1 WHERE tenant_id = {t} RETURNING on_hand::text"
                    )
                }));
            } else {
                out.extend(both(&|_| {
                    format!("UPDATE shop.stock SET on_hand = on_hand - 1 WHERE tenant_id = {t} RETURNING on_hand::text")
                }));
            }
        }
        _ => {
            // write_skew: each session checks the tenant's open exposure against its
            // credit limit and, if there is room, books a 6000-cent pending order
            let sum = format!(
                "coalesce((SELECT sum(total_cents) FROM shop.orders WHERE tenant_id = {t} AND status = 'pending'), 0)"
            );
            match mode {
                "select for update" | "for no key update" => {
                    let lock = if mode == "select for update" {
                        "FOR UPDATE"
                    } else {
                        "FOR NO KEY UPDATE"
                    };
                    out.extend(both(&|_| {
                        format!(
                            "SELECT tenant_id::text FROM shop.tenants WHERE tenant_id = {t} {lock}"
                        )
                    }));
                }
                "advisory lock" => out.extend(both(&|_| {
                    format!(
                        "SELECT pg_advisory_xact_lock(hashtext('capstone-demo-credit'), {t})::text"
                    )
                })),
                _ => {}
            }
            let insert = |s: usize, guard: &str| {
                format!(
                    "INSERT INTO shop.orders (tenant_id, order_no, customer_id, status, fulfillment_status, payment_status,
                                              currency, total_cents, created_at, updated_at)
                     SELECT {t}, 'demo-{}-{token}', c.customer_id, 'pending', 'unfulfilled', 'awaiting', 'EUR', 6000, now(), now()
                       FROM shop.customers c WHERE c.tenant_id = {t} AND {guard}
                     RETURNING order_id::text",
                    if s == 0 { "a" } else { "b" }
                )
            };
            if mode == "atomic update" {
                // check and write in one statement: still two snapshots that cannot see each other
                out.extend(both(&|s| {
                    insert(
                        s,
                        &format!(
                            "{sum} + 6000 <= (SELECT credit_limit_cents FROM shop.tenants WHERE tenant_id = {t})"
                        ),
                    )
                }));
            } else {
                out.extend(both(&|_| {
                    format!(
                        "SELECT set_config('capstone_demo.ok', CASE WHEN {sum} + 6000 <= credit_limit_cents THEN 'ok' ELSE 'over' END, false)
                           FROM shop.tenants WHERE tenant_id = {t}"
                    )
                }));
                out.extend(both(&|s| {
                    insert(s, "current_setting('capstone_demo.ok') = 'ok'")
                }));
            }
        }
    }
    out.extend(both(&|_| "COMMIT".to_string()));
    out
}

/// Remove demo fixtures (this run's, and any a crashed run left behind).
const TEARDOWN: &str = "
WITH t AS (SELECT tenant_id FROM shop.tenants WHERE slug LIKE 'capstone-demo-%'),
     o AS (DELETE FROM shop.orders WHERE tenant_id IN (SELECT tenant_id FROM t) RETURNING 1),
     s AS (DELETE FROM shop.stock WHERE tenant_id IN (SELECT tenant_id FROM t) RETURNING 1)
SELECT (SELECT count(*) FROM o) + (SELECT count(*) FROM s)";

/// Fixture tenants still present before setup: each is a run that never cleaned up.
const LEFTOVERS: &str = "SELECT coalesce(string_agg(format('tenant %s (%s)', tenant_id, slug), ', ' ORDER BY tenant_id), '')
                           FROM shop.tenants WHERE slug LIKE 'capstone-demo-%'";

/// The columns a demo customer must fill, read from the catalog so the demo follows the lab's
/// schema as it is (the migration gate replaces `full_name` by `first_name` + `last_name`):
/// every NOT NULL column without a default, identity or generation, with a value that
/// satisfies the lab's checks for the columns it knows and a neutral one by type otherwise.
/// Returns (column list, value list), both starting with a comma, or why it cannot.
fn customer_fill() -> Result<(String, String), String> {
    Spi::connect(|c| {
        let t = c.select(
            "SELECT pg_catalog.quote_ident(a.attname),
                    CASE a.attname WHEN 'email' THEN '''demo@capstone.example'''
                                   WHEN 'country' THEN '''DE'''
                                   WHEN 'segment' THEN '''consumer'''
                                   WHEN 'full_name' THEN '''Demo Customer'''
                                   WHEN 'first_name' THEN '''Demo'''
                                   WHEN 'last_name' THEN '''Customer'''
                         ELSE CASE ty.typcategory WHEN 'S' THEN '''demo'''
                                                  WHEN 'N' THEN '0'
                                                  WHEN 'D' THEN 'now()'
                                                  WHEN 'B' THEN 'false' END
                              || '::' || pg_catalog.format_type(a.atttypid, a.atttypmod) END
               FROM pg_catalog.pg_attribute a
               JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
              WHERE a.attrelid = 'shop.customers'::pg_catalog.regclass AND a.attnum > 0
                AND NOT a.attisdropped AND a.attnotnull AND NOT a.atthasdef
                AND a.attidentity = '' AND a.attgenerated = '' AND a.attname <> 'tenant_id'
              ORDER BY a.attnum",
            None,
            &[],
        )?;
        let (mut cols, mut vals) = (String::new(), String::new());
        for r in t {
            let col = r.get::<String>(1)?.unwrap_or_default();
            match r.get::<String>(2)? {
                Some(v) => {
                    cols.push_str(", ");
                    cols.push_str(&col);
                    vals.push_str(", ");
                    vals.push_str(&v);
                }
                None => return Ok(Err(format!("shop.customers.{col} is NOT NULL without a default, and the demo cannot fill its type"))),
            }
        }
        Ok::<_, pgrx::spi::Error>(Ok((cols, vals)))
    })
    .unwrap_or_else(|e| Err(e.to_string()))
}

fn setup_sql(token: i64, customer_cols: &str, customer_vals: &str) -> String {
    format!(
        "WITH t AS (INSERT INTO shop.tenants (slug, name, plan, region, currency, credit_limit_cents)
                    VALUES ('capstone-demo-{token}', 'capstone anomaly demo', 'free', 'eu', 'EUR', 10000)
                    RETURNING tenant_id),
              c AS (INSERT INTO shop.customers (tenant_id{customer_cols})
                    SELECT tenant_id{customer_vals} FROM t
                    RETURNING tenant_id),
              p AS (INSERT INTO shop.products (tenant_id, sku, name, category, price_cents)
                    SELECT tenant_id, 'DEMO', 'Demo product', 'toys', 500 FROM t RETURNING tenant_id, product_id),
              s AS (INSERT INTO shop.stock (tenant_id, product_id, on_hand) SELECT tenant_id, product_id, 10 FROM p RETURNING 1)
         SELECT (SELECT tenant_id FROM t)::text || ',' || (SELECT count(*) FROM c) || ',' || (SELECT count(*) FROM s)"
    )
}

const DROP_PARENTS: &str = "
WITH t AS (SELECT tenant_id FROM shop.tenants WHERE slug LIKE 'capstone-demo-%'),
     p AS (DELETE FROM shop.products WHERE tenant_id IN (SELECT tenant_id FROM t) RETURNING 1),
     c AS (DELETE FROM shop.customers WHERE tenant_id IN (SELECT tenant_id FROM t) RETURNING 1)
SELECT (SELECT count(*) FROM p) + (SELECT count(*) FROM c)";
const DROP_TENANT: &str =
    "WITH d AS (DELETE FROM shop.tenants WHERE slug LIKE 'capstone-demo-%' RETURNING 1) SELECT count(*)::text FROM d";

/// The two sessions, driven by the calling backend.
struct Driver {
    sessions: session::Sessions,
    timeout: Duration,
}

/// How one statement ended.
enum Ended {
    Row(String),
    Failed(String, String),
}

impl From<session::Answer> for Ended {
    fn from(a: session::Answer) -> Ended {
        match a {
            session::Answer::Row(v) => Ended::Row(v),
            session::Answer::Failed(c, m) => Ended::Failed(c, m),
        }
    }
}

impl Driver {
    fn connect(&self, label: &str, token: i64) {
        self.sessions.open(label, token, self.timeout);
    }

    fn send(&self, s: usize, sql: &str) {
        self.sessions.send(s, sql);
    }

    fn busy(&self, s: usize) -> bool {
        self.sessions.busy(s)
    }

    /// Whether session `s` is blocked, and by whom: pg_blocking_pids for a lock wait,
    /// pg_safe_snapshot_blocking_pids for a READ ONLY DEFERRABLE snapshot wait. Never a
    /// timeout: a statement that is merely slow is not blocked.
    fn waiting(&self, s: usize) -> Option<Wait> {
        let pid = self.sessions.pid(s);
        let (locks, safe) = Spi::get_two_with_args::<Vec<i32>, Vec<i32>>(
            "SELECT pg_catalog.pg_blocking_pids($1), pg_catalog.pg_safe_snapshot_blocking_pids($1)",
            &[pid.into()],
        )
        .ok()?;
        let (locks, safe) = (locks.unwrap_or_default(), safe.unwrap_or_default());
        let safe_snapshot = locks.is_empty() && !safe.is_empty();
        let pids = if safe_snapshot { safe } else { locks };
        if pids.is_empty() {
            return None;
        }
        let mut w = Wait {
            safe_snapshot,
            ..Default::default()
        };
        for p in pids {
            match (0..self.sessions.count()).find(|&k| self.sessions.pid(k) == p) {
                Some(k) => w.sessions.push(k),
                None => w.others.push(p),
            }
        }
        Some(w)
    }

    /// Collect a finished statement's result (first column of the first row, or the command tag).
    fn result(&self, s: usize) -> Ended {
        self.sessions.result(s, self.timeout).into()
    }

    fn tick() {
        crate::infra::worker::wait_latch(1);
        check_for_interrupts!();
    }

    /// Run one statement synchronously (setup/teardown).
    fn exec(&self, s: usize, sql: &str) -> Ended {
        self.send(s, sql);
        self.result(s)
    }

    fn disconnect_all(&self) {
        self.sessions.close_all();
    }
}

/// A result row of the demo.
pub struct Row {
    pub step: i32,
    pub session: String,
    pub statement: String,
    pub result: Option<String>,
    pub sqlstate: Option<String>,
    pub wait_ms: f64,
}

fn session_label(s: usize) -> String {
    catalogue::label(s).to_string()
}

/// What a blocked statement waits for: the sessions (and any other backends) holding it up.
#[derive(Clone, Default)]
struct Wait {
    sessions: Vec<usize>,
    others: Vec<i32>,
    /// a SERIALIZABLE READ ONLY DEFERRABLE snapshot wait, not a lock
    safe_snapshot: bool,
}

impl Wait {
    fn who(&self) -> String {
        let mut v: Vec<String> = self
            .sessions
            .iter()
            .map(|&s| format!("session {}", session_label(s)))
            .collect();
        v.extend(self.others.iter().map(|p| format!("pid {p}")));
        v.join(" and ")
    }

    fn note(&self, failed: bool) -> String {
        let when = if failed { "after waiting" } else { "waited" };
        if self.safe_snapshot {
            format!("{when} for a safe snapshot until {} finished", self.who())
        } else if self.sessions.len() + self.others.len() > 1 {
            format!("{when} for the locks of {}", self.who())
        } else {
            format!("{when} for {}'s lock", self.who())
        }
    }
}

/// A statement in flight: script index, send time, send order, and what it waited for.
#[derive(Clone)]
struct InFlight {
    idx: usize,
    since: Instant,
    order: i32,
    waited: Option<Wait>,
}

fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Run the script on `n` sessions; the result rows in send order and, per statement, what
/// it observed (for the verdict).
fn run_script(d: &Driver, steps: &[Step], n: usize) -> (Vec<Row>, Vec<catalogue::Obs>) {
    let mut rows: Vec<Row> = Vec::new();
    let mut obs: Vec<catalogue::Obs> = Vec::new();
    let mut done = vec![false; steps.len()];
    let mut pending: Vec<Option<InFlight>> = vec![None; n];
    let mut aborted = vec![false; n];
    let started = Instant::now();
    let mut order = 0;
    let finish = |f: InFlight,
                  ended: Ended,
                  rows: &mut Vec<Row>,
                  obs: &mut Vec<catalogue::Obs>,
                  aborted: &mut Vec<bool>| {
        let st = &steps[f.idx];
        let mut o = catalogue::Obs {
            session: st.session,
            label: st.label,
            ..Default::default()
        };
        if let Some(w) = &f.waited {
            o.waited_for = w.sessions.clone();
            o.safe_snapshot = w.safe_snapshot;
        }
        let (result, code) = match ended {
            Ended::Row(v) => {
                o.value = Some(v.clone());
                match &f.waited {
                    Some(w) => (Some(format!("{v} ({})", w.note(false))), None),
                    None => (Some(v), None),
                }
            }
            Ended::Failed(c, m) => {
                aborted[st.session] = true;
                o.code = Some(c.clone());
                let m = match &f.waited {
                    Some(w) => format!("{m} ({})", w.note(true)),
                    None => m,
                };
                (Some(m), Some(c))
            }
        };
        obs.push(o);
        rows.push(Row {
            step: f.order,
            session: session_label(st.session),
            statement: one_line(&st.sql),
            result,
            sqlstate: code,
            wait_ms: f.since.elapsed().as_secs_f64() * 1000.0,
        });
    };
    while done.iter().any(|d| !d) {
        if started.elapsed() > d.timeout {
            CapstoneError::Timeout("the demo script did not finish".into())
                .raise_hint("capstone.worker_timeout bounds the demo; see pg_stat_activity for capstone_demo sessions");
        }
        // collect statements that finished
        for (s, slot) in pending.iter_mut().enumerate() {
            if slot.is_some() && !d.busy(s) {
                if let Some(f) = slot.take() {
                    let ended = d.result(s);
                    done[f.idx] = true;
                    finish(f, ended, &mut rows, &mut obs, &mut aborted);
                }
            }
        }
        // which sessions are blocked now, asked once per round
        let blocked: Vec<bool> = (0..n)
            .map(|s| pending[s].is_some() && d.waiting(s).is_some())
            .collect();
        // the next statement in script order whose session is free, and every other
        // session has either finished everything before it or is blocked
        let next = (0..steps.len()).find(|&k| {
            if done[k] || pending.iter().any(|p| p.as_ref().map(|f| f.idx) == Some(k)) {
                return false;
            }
            let s = steps[k].session;
            pending[s].is_none()
                && (0..k).all(|j| {
                    let o = steps[j].session;
                    done[j] || (o != s && blocked[o])
                })
        });
        let Some(k) = next else {
            Driver::tick();
            continue;
        };
        let s = steps[k].session;
        order += 1;
        let is_rollback = steps[k].sql == "ROLLBACK";
        if aborted[s] && !is_rollback {
            // an aborted transaction only accepts ROLLBACK
            if steps[k].sql == "COMMIT" {
                let f = InFlight {
                    idx: k,
                    since: Instant::now(),
                    order,
                    waited: None,
                };
                let ended = d.exec(s, "ROLLBACK");
                finish(f, ended, &mut rows, &mut obs, &mut aborted);
                if let Some(r) = rows.last_mut() {
                    r.statement = "ROLLBACK (the transaction had failed)".into();
                }
                aborted[s] = false;
            } else {
                rows.push(Row {
                    step: order,
                    session: session_label(s),
                    statement: one_line(&steps[k].sql),
                    result: Some("skipped: the transaction had failed".into()),
                    sqlstate: None,
                    wait_ms: 0.0,
                });
                obs.push(catalogue::Obs {
                    session: s,
                    label: steps[k].label,
                    skipped: true,
                    ..Default::default()
                });
            }
            done[k] = true;
            continue;
        }
        if is_rollback {
            aborted[s] = false;
        }
        d.send(s, &steps[k].sql);
        let mut f = InFlight {
            idx: k,
            since: Instant::now(),
            order,
            waited: None,
        };
        // wait until it finishes or blocks: that makes the interleaving deterministic
        while d.busy(s) {
            if let Some(w) = d.waiting(s) {
                f.waited = Some(w);
                break;
            }
            if f.since.elapsed() > d.timeout {
                break;
            }
            Driver::tick();
        }
        pending[s] = Some(f);
    }
    rows.sort_by_key(|r| r.step);
    (rows, obs)
}
/// Outcome of a run from the final state.
pub fn classify(
    anomaly: &str,
    committed: usize,
    final_value: i64,
    failed_codes: &[String],
) -> (bool, String) {
    let happened = match anomaly {
        "lost_update" => final_value != 10 - committed as i64,
        _ => final_value > 10000,
    };
    let verdict = if happened {
        match anomaly {
            "lost_update" => format!("ANOMALY: {committed} decrements committed but on_hand is {final_value} (expected {})", 10 - committed as i64),
            _ => format!("ANOMALY: open orders total {final_value} cents, over the 10000-cent credit limit"),
        }
    } else if let Some(c) = failed_codes.iter().find(|c| c.starts_with("40")) {
        format!("prevented by error {c}: one transaction must retry")
    } else {
        match anomaly {
            "lost_update" => format!(
                "prevented: on_hand is {final_value} after {committed} committed decrements"
            ),
            _ => format!(
                "prevented: open orders total {final_value} cents, within the 10000-cent limit"
            ),
        }
    };
    (happened, verdict)
}

/// The demo's rows, and the roles its two sessions ran as.
pub fn demo(anomaly: &str, mode: &str) -> (Vec<Row>, Vec<String>) {
    require_sessions("capstone.anomaly_demo");
    // read from the catalog, so a role without USAGE on shop hears what it lacks below
    let lab = Spi::get_one::<bool>(
        "SELECT count(*) = 5 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'shop' AND c.relkind IN ('r', 'p')
            AND c.relname IN ('tenants', 'customers', 'products', 'stock', 'orders')",
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !lab {
        CapstoneError::PrerequisiteState("the lab schema shop is not installed".into()).raise_hint(
            "SELECT * FROM capstone.lab_install(scale => 0.01);  -- the demo runs on lab tables",
        );
    }
    // the sessions run as the caller, so the caller needs what the fixture and the script
    // do on the lab's tables (deleting the demo's orders fires the order_lines trigger that
    // recomputes order totals, as the caller: UPDATE on orders, SELECT on order_lines);
    // say all of it before anything runs
    let missing = Spi::get_one::<String>(
        "SELECT string_agg(CASE WHEN v.t IS NULL THEN 'USAGE on schema shop' ELSE format('%s on shop.%s', v.p, v.t) END,
                           ', ' ORDER BY v.n)
           FROM (VALUES (0, NULL, 'USAGE'), (1, 'tenants', 'SELECT'), (2, 'tenants', 'INSERT'), (3, 'tenants', 'UPDATE'),
                        (4, 'tenants', 'DELETE'), (5, 'customers', 'SELECT'), (6, 'customers', 'INSERT'),
                        (7, 'customers', 'DELETE'), (8, 'products', 'SELECT'), (9, 'products', 'INSERT'),
                        (10, 'products', 'DELETE'), (11, 'stock', 'SELECT'), (12, 'stock', 'INSERT'),
                        (13, 'stock', 'UPDATE'), (14, 'stock', 'DELETE'), (15, 'orders', 'SELECT'),
                        (16, 'orders', 'INSERT'), (17, 'orders', 'UPDATE'), (18, 'orders', 'DELETE'),
                        (19, 'order_lines', 'SELECT')) v(n, t, p)
          WHERE CASE WHEN v.t IS NULL THEN NOT pg_catalog.has_schema_privilege('shop', 'USAGE')
                     ELSE NOT pg_catalog.has_table_privilege(
                            (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                              WHERE n.nspname = 'shop' AND c.relname = v.t), v.p) END",
    )
    .ok()
    .flatten();
    refuse_lacking(
        "anomaly_demo",
        missing,
        "nothing was created or run",
        "grant what README's Grants section lists for anomaly_demo: USAGE on schema shop; SELECT, INSERT, DELETE on shop.tenants, customers, products, stock and orders; UPDATE on shop.tenants, stock and orders; SELECT on shop.order_lines",
    );
    one_demo_at_a_time();
    let token: i64 = Spi::get_one("SELECT nextval('capstone.worker_token_seq')")
        .ok()
        .flatten()
        .unwrap_or(0);
    let d = Driver {
        sessions: session::Sessions::default(),
        timeout: Duration::from_millis(crate::infra::gucs::worker_timeout_ms() as u64),
    };
    let dref = std::panic::AssertUnwindSafe(&d);
    let out = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        d.connect("a", token);
        d.connect("b", token);
        let roles = d.sessions.roles();
        let mut rows = Vec::new();
        // setup, committed by session A; sweeps fixtures a cut-short run left behind
        // (a crash, a cancel or a terminated backend), and says so in the evidence store
        if let Ended::Row(left) = d.exec(0, LEFTOVERS) {
            if !left.is_empty() {
                record_swept("the fixture of an aborted anomaly_demo run", &left);
            }
        }
        for sql in [TEARDOWN, DROP_PARENTS, DROP_TENANT] {
            d.exec(0, sql);
        }
        let (cols, vals) = customer_fill().unwrap_or_else(|why| {
            CapstoneError::PrerequisiteState(format!("demo setup failed: {why}")).raise_hint(
                "give the column a default, or run the demo on a lab whose customers table it can fill",
            )
        });
        let tenant = match d.exec(0, &setup_sql(token, &cols, &vals)) {
            Ended::Row(v) => v.split(',').next().and_then(|t| t.parse::<i64>().ok()).unwrap_or(0),
            Ended::Failed(c, m) => CapstoneError::PrerequisiteState(format!("demo setup failed ({c}): {m}")).raise(),
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
        let (mut ran, _) = run_script(&d, &steps, 2);
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
        let final_value = match d.exec(0, &check) {
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
        (rows, roles)
    }))
    .catch_others(move |e| {
        cleanup(*dref, LAB_TEARDOWN);
        e.rethrow()
    })
    .execute();
    cleanup(&d, LAB_TEARDOWN);
    out
}

const LAB_TEARDOWN: &[&str] = &[TEARDOWN, DROP_PARENTS, DROP_TENANT];

/// The sessions are background workers driven through shared memory that exists only
/// when the library is preloaded.
pub(crate) fn require_sessions(function: &str) {
    if !session::available() {
        CapstoneError::PrerequisiteState(format!(
            "{function} needs capstone in shared_preload_libraries"
        ))
        .raise_with(
            "its sessions are capstone background workers, driven through shared memory that exists only when the library is preloaded",
            "add capstone to shared_preload_libraries in postgresql.conf and restart the server",
        );
    }
}

/// One demo at a time per database: concurrent runs would share fixtures and sessions.
/// Refuse with 42501, before anything runs, when the caller lacks what its sessions need
/// (`missing` names it); the sessions run as the caller, so they would fail halfway.
pub(super) fn refuse_lacking(function: &str, missing: Option<String>, detail: &str, hint: &str) {
    if let Some(missing) = missing {
        CapstoneError::InsufficientPrivilege(format!(
            "{function}'s sessions run as {} and it lacks {missing}",
            crate::infra::owner::caller()
        ))
        .raise_with(detail, hint);
    }
}

/// Say that what a cut-short run left behind (`left`) was removed, and keep it on record.
pub(super) fn record_swept(what: &str, left: &str) {
    ereport!(
        NOTICE,
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        format!("swept {what}: {left}")
    );
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

pub(crate) fn one_demo_at_a_time() {
    let got =
        Spi::get_one::<bool>("SELECT pg_try_advisory_xact_lock(hashtext('capstone.anomaly_demo'))")
            .ok()
            .flatten()
            .unwrap_or(false);
    if !got {
        CapstoneError::LockNotAvailable(
            "another capstone.anomaly_demo or isolation_matrix is running in this database".into(),
        )
        .raise_hint("wait for it to finish; demos run one at a time");
    }
}

pub(crate) fn new_token() -> i64 {
    Spi::get_one("SELECT nextval('capstone.worker_token_seq')")
        .ok()
        .flatten()
        .unwrap_or(0)
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
                d.exec(s, "ROLLBACK");
            });
        }
        let _ = subxact::run(Outcome::Commit, || {
            for sql in teardown {
                d.exec(0, sql.as_ref());
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
    f: impl FnOnce(&Driver, &std::cell::Cell<i64>) -> R,
) -> (R, Vec<String>) {
    require_sessions(function);
    scratch::check_privileges(function);
    one_demo_at_a_time();
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
    let out = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        for k in 0..n {
            d.connect(catalogue::label(k), token);
        }
        scratch::sweep(&d);
        scratch::ensure_schema(&d);
        let r = f(&d, &current);
        (r, d.sessions.roles())
    }))
    .catch_others(move |e| {
        teardown(*dref, *cref);
        e.rethrow()
    })
    .execute();
    teardown(&d, &current);
    out
}

/// One catalogue case under one level: its rows and the roles its sessions ran as.
pub fn demo_case(case: &catalogue::Case, level: &str) -> (Vec<Row>, Vec<String>) {
    with_scratch_sessions("capstone.anomaly_demo", case.sessions, |d, current| {
        let token = new_token();
        current.set(token);
        let (rows, _) = scratch::run_case(d, case, level, token);
        current.set(0);
        rows
    })
}

/// Every catalogue case under every level, on one set of three sessions.
pub fn matrix() -> (
    Vec<(&'static catalogue::Case, Vec<catalogue::Verdict>)>,
    Vec<String>,
) {
    with_scratch_sessions("capstone.isolation_matrix", 3, |d, current| {
        catalogue::CASES
            .iter()
            .map(|case| {
                let verdicts = catalogue::LEVELS
                    .iter()
                    .map(|level| {
                        let token = new_token();
                        current.set(token);
                        let (_, v) = scratch::run_case(d, case, level, token);
                        current.set(0);
                        v
                    })
                    .collect();
                (case, verdicts)
            })
            .collect()
    })
}

/// Every name anomaly_demo accepts: the lab's business cases, then the catalogue.
fn all_anomaly_names() -> Vec<&'static str> {
    let mut v = ANOMALIES.to_vec();
    v.extend(catalogue::names());
    v
}

/// Reproduce a concurrency anomaly with two real sessions in a fixed interleaving,
/// under one isolation level or locking strategy, and say whether it happened.
#[pg_extern(volatile, parallel_unsafe)]
fn anomaly_demo(
    anomaly: Option<String>,
    mode: Option<String>,
) -> TableIterator<
    'static,
    (
        name!(step, i32),
        name!(session, String),
        name!(statement, String),
        name!(result, Option<String>),
        name!(sqlstate, Option<String>),
        name!(wait_ms, f64),
    ),
> {
    let anomaly = required(anomaly, "anomaly");
    let mode = required(mode, "mode");
    let (anomaly, mode, (rows, roles)) = match catalogue::find(&anomaly) {
        Some(case) => {
            if MODES.iter().any(|m| m.eq_ignore_ascii_case(mode.trim()))
                && !catalogue::LEVELS
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(mode.trim()))
            {
                CapstoneError::InvalidParameter(format!(
                    "mode \"{mode}\" applies to the lab cases lost_update and write_skew, not to {}",
                    case.name
                ))
                .raise_hint(format!(
                    "valid values for {}: {}",
                    case.name,
                    catalogue::LEVELS.join(", ")
                ));
            }
            let mode = crate::infra::error::check_choice("mode", &mode, catalogue::LEVELS);
            (case.name, mode, demo_case(case, mode))
        }
        None => {
            crate::infra::error::check_choice("anomaly", &anomaly, &all_anomaly_names());
            let anomaly = crate::infra::error::check_choice("anomaly", &anomaly, ANOMALIES);
            let mode = crate::infra::error::check_choice("mode", &mode, MODES);
            (anomaly, mode, demo(anomaly, mode))
        }
    };
    let payload = json!({
        "anomaly": anomaly,
        "mode": mode,
        "sessions": roles.iter().enumerate().map(|(i, r)| json!({
            "session": session_label(i), "role": r,
        })).collect::<Vec<_>>(),
        "verdict": rows.last().and_then(|r| r.result.clone()),
        "table": rows.iter().map(|r| json!({
            "step": r.step, "session": r.session, "statement": r.statement,
            "result": r.result, "sqlstate": r.sqlstate, "wait_ms": (r.wait_ms * 100.0).round() / 100.0,
        })).collect::<Vec<_>>(),
    });
    crate::infra::evidence::store(
        crate::infra::evidence::Gate::Isolation,
        Some(&format!("{anomaly} under {mode}")),
        None,
        json!({}),
        payload,
    );
    TableIterator::new(rows.into_iter().map(|r| {
        (
            r.step,
            r.session,
            r.statement,
            r.result,
            r.sqlstate,
            (r.wait_ms * 100.0).round() / 100.0,
        )
    }))
}

/// Every catalogue anomaly under every isolation level, each run on real concurrent
/// sessions, as one table: observed, or prevented and how.
#[pg_extern(volatile, parallel_unsafe)]
fn isolation_matrix() -> TableIterator<
    'static,
    (
        name!(anomaly, String),
        name!(alias, String),
        name!(read_committed, String),
        name!(repeatable_read, String),
        name!(serializable, String),
    ),
> {
    let (m, roles) = matrix();
    let cells = |vs: &[catalogue::Verdict]| vs.iter().map(|v| v.cell()).collect::<Vec<_>>();
    let observed: usize = m
        .iter()
        .map(|(_, vs)| vs.iter().filter(|v| v.observed).count())
        .sum();
    let payload = json!({
        "levels": catalogue::LEVELS,
        "sessions": roles.iter().enumerate().map(|(i, r)| json!({
            "session": session_label(i), "role": r,
        })).collect::<Vec<_>>(),
        "matrix": m.iter().map(|(c, vs)| json!({
            "anomaly": c.name, "alias": c.alias, "cells": cells(vs),
        })).collect::<Vec<_>>(),
        "summary": format!("{} anomalies x {} levels: {observed} observed, {} prevented",
                           m.len(), catalogue::LEVELS.len(), m.len() * catalogue::LEVELS.len() - observed),
    });
    crate::infra::evidence::store(
        crate::infra::evidence::Gate::Isolation,
        Some("isolation matrix"),
        None,
        json!({}),
        payload,
    );
    TableIterator::new(m.into_iter().map(move |(c, vs)| {
        let mut cs = cells(&vs).into_iter();
        (
            c.name.to_string(),
            c.alias.to_string(),
            cs.next().unwrap_or_default(),
            cs.next().unwrap_or_default(),
            cs.next().unwrap_or_default(),
        )
    }))
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn every_script_interleaves_and_ends_in_commits() {
        for a in ANOMALIES {
            for m in MODES {
                let s = script(a, m, 7, 1);
                assert_eq!(s.first().map(|x| x.session), Some(0));
                assert_eq!(s.iter().filter(|x| x.sql == "COMMIT").count(), 2, "{a}/{m}");
                assert_eq!(
                    s.iter().filter(|x| x.session == 0).count(),
                    s.iter().filter(|x| x.session == 1).count()
                );
                assert!(
                    s.iter().all(|x| !x.sql.contains(';')),
                    "one statement per step"
                );
            }
        }
    }

    #[test]
    fn isolation_levels_follow_the_mode() {
        assert!(script("lost_update", "serializable", 1, 1)[0]
            .sql
            .ends_with("SERIALIZABLE"));
        assert!(script("lost_update", "select for update", 1, 1)[0]
            .sql
            .ends_with("READ COMMITTED"));
        assert!(script("lost_update", "select for update", 1, 1)
            .iter()
            .any(|s| s.sql.ends_with("FOR UPDATE")));
        assert!(!script("lost_update", "atomic update", 1, 1)
            .iter()
            .any(|s| s.sql.contains("set_config")));
    }

    #[test]
    fn outcomes() {
        assert!(classify("lost_update", 2, 9, &[]).0);
        assert!(!classify("lost_update", 2, 8, &[]).0);
        let (h, v) = classify("lost_update", 1, 9, &["40001".into()]);
        assert!(!h);
        assert!(v.starts_with("prevented by error 40001"));
        assert!(classify("write_skew", 2, 12000, &[]).0);
        assert!(!classify("write_skew", 1, 6000, &[]).0);
    }
}
