//! The long-transaction scenario, reproducible from psql in two calls:
//!
//! 1. `capstone.bloat_scenario()` starts a snapshot holder (a background worker,
//!    so another session, never the caller) that opens a REPEATABLE READ
//!    transaction and waits; then it rewrites every row of a lab-style table.
//!    The call commits, the holder keeps holding.
//! 2. `capstone.bloat_scenario_finish()` shows the holder in `xmin_holders()` and
//!    `removable = false` in `bloat_report()`, runs VACUUM (VERBOSE) while it holds
//!    (in a second worker, because VACUUM cannot run inside a function), ends the
//!    holder, runs VACUUM again and measures what came free.
//!
//! Two calls are the minimum: VACUUM can only remove tuples whose deleting
//! transaction committed before the caller's own snapshot, and a single call
//! cannot commit its updates and then take a newer snapshot.
//! Every step's numbers are returned as rows and stored in `capstone.evidence`.

use super::{estimate, reader::Opened, RegClass};
use crate::infra::error::{check_range, required, CapstoneError};
use crate::infra::subxact::{self, Outcome};
use crate::infra::worker::{self, WorkerIdentity};
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerStatus};
use pgrx::datum::Interval;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};
use std::ffi::{CStr, CString};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SCRATCH_SCHEMA: &str = "capstone_scratch";
const SCRATCH_TABLE: &str = "bloat_lab";
/// `pg_stat_activity.backend_type` of the snapshot holder.
pub const HOLDER_TYPE: &str = "capstone bloat holder";

/// Result rows: (step, metric, value, detail).
#[derive(Default)]
struct Steps(Vec<(String, String, Option<f64>, Option<String>)>);

impl Steps {
    fn add(&mut self, step: &str, metric: &str, value: Option<f64>, detail: Option<String>) {
        self.0.push((step.into(), metric.into(), value, detail));
    }

    fn num(&mut self, step: &str, metric: &str, value: f64) {
        self.add(step, metric, Some(value), None);
    }

    fn flag(&mut self, step: &str, metric: &str, value: bool) {
        self.add(step, metric, Some(if value { 1.0 } else { 0.0 }), None);
    }

    fn json(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|(s, m, v, d)| json!({"step": s, "metric": m, "value": v, "detail": d}))
                .collect(),
        )
    }

    fn rows(
        self,
        id: i64,
    ) -> impl Iterator<Item = (i64, String, String, Option<f64>, Option<String>)> {
        self.0.into_iter().map(move |(s, m, v, d)| (id, s, m, v, d))
    }
}

fn fail(what: &str) -> impl Fn(pgrx::spi::Error) -> CapstoneError + '_ {
    move |e| CapstoneError::PrerequisiteState(format!("bloat scenario: {what} failed: {e}"))
}

fn run(sql: &str, what: &str) {
    Spi::run(sql).unwrap_or_else(|e| fail(what)(e).raise());
}

fn one_i64(sql: &str, args: &[pgrx::datum::DatumWithOid], what: &str) -> i64 {
    Spi::get_one_with_args::<i64>(sql, args)
        .unwrap_or_else(|e| fail(what)(e).raise())
        .unwrap_or(0)
}

/// The relation the scenario works on.
struct Table {
    oid: pg_sys::Oid,
    name: String,
    update_sql: String,
    created: bool,
}

/// Check a caller-given table: an ordinary table the caller owns (VACUUM needs
/// ownership), with a column that can be assigned to itself.
fn check_table(oid: pg_sys::Oid) -> Table {
    let row = Spi::connect(|c| {
        let t = c.select(
            "SELECT c.relkind::text, pg_catalog.format('%I.%I', n.nspname, c.relname),
                    pg_catalog.pg_has_role(c.relowner, 'USAGE'),
                    (SELECT a.attname::text FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                        AND a.attidentity <> 'a' AND a.attgenerated = ''
                      ORDER BY a.attnum LIMIT 1)
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = $1",
            Some(1),
            &[oid.into()],
        )?;
        if t.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        let r = t.first();
        Ok(Some((
            r.get::<String>(1)?.unwrap_or_default(),
            r.get::<String>(2)?.unwrap_or_default(),
            r.get::<bool>(3)?.unwrap_or(false),
            r.get::<String>(4)?,
        )))
    })
    .unwrap_or_else(|e| fail("reading the table")(e).raise());
    let Some((relkind, name, owner, column)) = row else {
        CapstoneError::UndefinedTable(format!("relation with OID {} does not exist", oid.to_u32()))
            .raise_hint("pass a table that exists, or leave rel NULL for a scratch table")
    };
    if relkind != "r" {
        CapstoneError::WrongObjectType(format!("{name} is not an ordinary table")).raise_hint(
            "the scenario rewrites rows and runs VACUUM on them: pass a table, or leave rel NULL for a scratch table",
        );
    }
    if !owner {
        CapstoneError::InsufficientPrivilege(format!("must be the owner of table {name}"))
            .raise_hint(
                "VACUUM processes only tables the caller owns; leave rel NULL for a scratch table",
            );
    }
    let Some(column) = column else {
        CapstoneError::WrongObjectType(format!("table {name} has no column an UPDATE can assign"))
            .raise_hint("every column is GENERATED ALWAYS; pass another table")
    };
    let col = pgrx::spi::quote_identifier(column);
    Table {
        oid,
        update_sql: format!(
            "WITH u AS (UPDATE {name} SET {col} = {col}
                         WHERE ctid = ANY (ARRAY(SELECT ctid FROM {name} LIMIT $1)) RETURNING 1)
             SELECT count(*) FROM u"
        ),
        name,
        created: false,
    }
}

/// (Re)create the scratch table: a lab-style orders table with a low-cardinality
/// status index, autovacuum off so only the scenario's VACUUMs touch it.
fn scratch_table(rows: i32) -> Table {
    let name = format!("{SCRATCH_SCHEMA}.{SCRATCH_TABLE}");
    let has_schema = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
        &[SCRATCH_SCHEMA.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !has_schema {
        run(&format!("CREATE SCHEMA {SCRATCH_SCHEMA}"), "CREATE SCHEMA");
    }
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
        &[name.as_str().into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if exists {
        run(
            &format!("DROP TABLE {name}"),
            "dropping the old scratch table",
        );
    }
    run(
        &format!(
            "CREATE TABLE {name} (
                 id          bigint PRIMARY KEY,
                 tenant_id   integer NOT NULL,
                 status      text NOT NULL,
                 total_cents bigint NOT NULL,
                 note        text NOT NULL,
                 updated_at  timestamptz NOT NULL
             ) WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false)"
        ),
        "CREATE TABLE",
    );
    Spi::run_with_args(
        &format!(
            "INSERT INTO {name}
             SELECT g, 1 + g % 100, (ARRAY['pending', 'paid', 'shipped', 'refunded'])[1 + g % 4],
                    (g * 7919) % 100000, 'order ' || g,
                    timestamptz '2026-01-01 00:00+00' + g * interval '1 second'
               FROM pg_catalog.generate_series(1, $1) g"
        ),
        &[i64::from(rows).into()],
    )
    .unwrap_or_else(|e| fail("loading the scratch table")(e).raise());
    run(
        &format!("CREATE INDEX {SCRATCH_TABLE}_status_idx ON {name} (status)"),
        "CREATE INDEX",
    );
    run(&format!("ANALYZE {name}"), "ANALYZE");
    let oid = Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT pg_catalog.to_regclass($1)::oid",
        &[name.as_str().into()],
    )
    .ok()
    .flatten()
    .unwrap_or(pg_sys::InvalidOid);
    Table {
        oid,
        // every row rewritten once, its indexed status changed: heap and index both bloat
        update_sql: format!(
            "WITH u AS (UPDATE {name} SET status = CASE status WHEN 'paid' THEN 'shipped' ELSE 'paid' END,
                                          updated_at = updated_at + interval '1 hour'
                         WHERE id <= $1 RETURNING 1)
             SELECT count(*) FROM u"
        ),
        name,
        created: true,
    }
}

fn sizes(oid: pg_sys::Oid) -> (i64, i64) {
    Spi::get_two_with_args::<i64, i64>(
        "SELECT pg_catalog.pg_relation_size($1), pg_catalog.pg_total_relation_size($1)",
        &[oid.into()],
    )
    .map(|(a, b)| (a.unwrap_or(0), b.unwrap_or(0)))
    .unwrap_or_else(|e| fail("measuring sizes")(e).raise())
}

/// Sleep on the latch for a few milliseconds, honouring cancel.
fn nap() {
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            10,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
    }
    check_for_interrupts!();
}

/// The holder's row in pg_stat_activity, read fresh: (xmin age, seconds its transaction is open).
fn holder_state(pid: i32) -> Option<(i64, f64)> {
    unsafe { pg_sys::pgstat_clear_snapshot() };
    Spi::get_two_with_args::<i64, f64>(
        "SELECT pg_catalog.age(backend_xmin)::bigint,
                extract(epoch FROM pg_catalog.clock_timestamp() - xact_start)::float8
           FROM pg_catalog.pg_stat_activity
          WHERE pid = $1 AND backend_type = $2 AND backend_xmin IS NOT NULL",
        &[pid.into(), HOLDER_TYPE.into()],
    )
    .ok()
    .and_then(|(a, s)| Some((a?, s.unwrap_or(0.0))))
}

fn holder_named(pid: i32) -> bool {
    one_i64(
        "SELECT count(*) FROM capstone.xmin_holders() WHERE pid = $1",
        &[pid.into()],
        "xmin_holders",
    ) > 0
}

fn timeout() -> Duration {
    Duration::from_millis(crate::infra::gucs::worker_timeout_ms().max(0) as u64)
}

/// Start the scenario: a snapshot holder in another session, then heavy updates.
/// The holder keeps holding after this call (at most `hold`) until
/// `capstone.bloat_scenario_finish()` ends it; an error or cancel here ends it at once.
#[pg_extern(volatile, parallel_unsafe)]
fn bloat_scenario(
    rel: default!(Option<RegClass>, "NULL"),
    updates: default!(Option<i32>, 100000),
    hold: default!(Option<Interval>, "'5 min'"),
) -> TableIterator<
    'static,
    (
        name!(scenario_id, i64),
        name!(step, String),
        name!(metric, String),
        name!(value, Option<f64>),
        name!(detail, Option<String>),
    ),
> {
    let updates = check_range("updates", required(updates, "updates"), 1, 10_000_000);
    let hold = required(hold, "hold");
    let hold_ms =
        (hold.as_micros() / 1000).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    if !(1000..=86_400_000).contains(&hold_ms) {
        CapstoneError::InvalidParameter(format!(
            "hold must be between 1 second and 1 day (got {} ms)",
            hold_ms
        ))
        .raise_hint("hold bounds how long the snapshot holder waits for bloat_scenario_finish()");
    }
    let table = match rel {
        Some(r) => check_table(r.0),
        None => scratch_table(updates),
    };
    let mut steps = Steps::default();
    steps.add(
        "setup",
        "rows",
        // the scratch table's rows are known; a caller's table is not counted in full
        Some(if table.created {
            f64::from(updates)
        } else {
            one_i64(
                "SELECT greatest(reltuples, 0)::bigint FROM pg_catalog.pg_class WHERE oid = $1",
                &[table.oid.into()],
                "reading reltuples",
            ) as f64
        }),
        Some(format!(
            "{}{}",
            table.name,
            if table.created {
                " (scratch table, created now)"
            } else {
                " (pg_class.reltuples)"
            }
        )),
    );
    let (heap0, total0) = sizes(table.oid);
    steps.num("before", "heap_bytes", heap0 as f64);
    steps.num("before", "total_bytes", total0 as f64);

    let token = one_i64(
        "SELECT nextval('capstone.worker_token_seq')",
        &[],
        "nextval",
    );
    let handle = worker::launch_with_args(
        "bloat holder",
        "capstone_bloat_holder_main",
        WorkerIdentity::of_caller(token),
        &[hold_ms],
    );
    let slot = Mutex::new(Some(handle));
    // from here to the end, an error or a cancel ends the holder before it is re-raised
    let id = worker::terminate_on_error(&slot, || {
        let started = slot
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|h| h.wait_for_startup()));
        let pid = match started {
            Some(Ok(pid)) => pid,
            _ => CapstoneError::InsufficientResources("the snapshot holder did not start".into())
                .raise_hint("check max_worker_processes and the server log"),
        };
        // the holder has its snapshot once its xmin shows
        let t0 = Instant::now();
        let (age, _) = loop {
            if let Some(s) = holder_state(pid) {
                break s;
            }
            let alive = slot
                .lock()
                .ok()
                .and_then(|g| g.as_ref().map(|h| h.pid()))
                .map(|p| matches!(p, Ok(_) | Err(BackgroundWorkerStatus::NotYetStarted)))
                .unwrap_or(false);
            if !alive {
                CapstoneError::PrerequisiteState(
                    "the snapshot holder exited before taking its snapshot".into(),
                )
                .raise_hint("see the server log for the worker's own messages");
            }
            if t0.elapsed() >= timeout() {
                CapstoneError::Timeout("the snapshot holder took no snapshot in time".into())
                    .raise_hint("capstone.worker_timeout sets the limit");
            }
            nap();
        };
        steps.num("hold", "holder_pid", f64::from(pid));
        steps.num("hold", "holder_xmin_age_xids", age as f64);
        steps.flag("hold", "holder_named_in_xmin_holders", holder_named(pid));
        let t1 = Instant::now();
        let n = one_i64(
            &table.update_sql,
            &[i64::from(updates).into()],
            "the updates",
        );
        steps.num("churn", "rows_updated", n as f64);
        steps.num("churn", "elapsed_ms", t1.elapsed().as_secs_f64() * 1000.0);
        let (heap1, total1) = sizes(table.oid);
        steps.num("after", "heap_bytes", heap1 as f64);
        steps.num("after", "total_bytes", total1 as f64);
        steps.num(
            "after",
            "heap_growth_pct",
            if heap0 > 0 {
                100.0 * (heap1 - heap0) as f64 / heap0 as f64
            } else {
                0.0
            },
        );
        let churn_xid =
            Spi::get_one::<String>("SELECT pg_catalog.pg_current_xact_id_if_assigned()::text")
                .ok()
                .flatten();
        let payload = json!({
            "relid": table.oid.to_u32(),
            "rel": table.name,
            "scratch": table.created,
            "holder_pid": pid,
            "holder_token": token,
            "hold_ms": hold_ms,
            "updates": updates,
            "churn_xid": churn_xid,
            "summary": format!(
                "a background worker (pid {pid}) holds a REPEATABLE READ snapshot while {} rows of {} are rewritten",
                updates, table.name
            ),
            "table": steps.json(),
        });
        crate::infra::evidence::store(
            crate::infra::evidence::Gate::Bloat,
            Some(&format!("bloat scenario: start (holder token {token})")),
            Some(&table.update_sql),
            json!({}),
            payload,
        )
    });
    // the updates' counters should reach the shared statistics as soon as this commits
    unsafe { pg_sys::pgstat_force_next_flush() };
    TableIterator::new(steps.rows(id))
}

/// A started scenario, as its start capture recorded it.
struct Scenario {
    id: i64,
    relid: pg_sys::Oid,
    rel: String,
    holder_pid: i32,
    churn_xid: Option<String>,
}

fn load_scenario(id: Option<i64>) -> Scenario {
    let id = match id {
        Some(id) => id,
        None => Spi::get_one::<i64>(
            "SELECT id FROM capstone.evidence
              WHERE gate = 'bloat' AND label LIKE 'bloat scenario: start%' AND captured_by = current_user
              ORDER BY id DESC LIMIT 1",
        )
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            CapstoneError::UndefinedObject("no bloat scenario has been started".into())
                .raise_hint("start one with SELECT * FROM capstone.bloat_scenario();")
        }),
    };
    let c = crate::infra::evidence::load(id);
    let p = &c.payload;
    let holder_pid = p.get("holder_pid").and_then(Value::as_i64);
    let relid = p.get("relid").and_then(Value::as_u64);
    // a transaction id is digits only (PostgreSQL 15 would read anything else as 0)
    let xid_ok = match p.get("churn_xid") {
        None | Some(Value::Null) => true,
        Some(Value::String(x)) => !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()),
        Some(_) => false,
    };
    let (Some(holder_pid), Some(relid), "bloat", true) =
        (holder_pid, relid, c.gate.as_str(), xid_ok)
    else {
        CapstoneError::WrongObjectType(format!("evidence row {id} is not a bloat scenario start"))
            .raise_hint("pass the scenario_id that capstone.bloat_scenario() returned")
    };
    Scenario {
        id,
        relid: pg_sys::Oid::from(relid as u32),
        rel: p
            .get("rel")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        holder_pid: holder_pid as i32,
        churn_xid: p
            .get("churn_xid")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// Run VACUUM (VERBOSE) on the scenario's table in a worker and read back what it printed.
fn vacuum_in_worker(s: &Scenario, step: i64) -> (estimate::VacuumReport, Vec<String>) {
    let token = one_i64(
        "SELECT nextval('capstone.worker_token_seq')",
        &[],
        "nextval",
    );
    let handle = worker::launch_with_args(
        "bloat vacuum",
        "capstone_bloat_vacuum_main",
        WorkerIdentity::of_caller(token),
        &[i64::from(s.relid.to_u32()), s.id, step],
    );
    worker::wait_for_exit(handle, "bloat vacuum", timeout());
    let payload = Spi::get_one_with_args::<JsonB>(
        "SELECT payload FROM capstone.evidence
          WHERE gate = 'bloat' AND payload->>'token' = $1 AND captured_by = current_user
          ORDER BY id DESC LIMIT 1",
        &[token.to_string().into()],
    )
    .ok()
    .flatten()
    .map(|j| j.0)
    .unwrap_or_else(|| {
        CapstoneError::PrerequisiteState("the VACUUM worker exited without reporting".into())
            .raise_hint("see the server log for its error; the caller must own the table")
    });
    let lines: Vec<String> = payload
        .get("lines")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    (estimate::parse_vacuum_verbose(&lines), lines)
}

fn dead_tuples(oid: pg_sys::Oid) -> i64 {
    unsafe { pg_sys::pgstat_clear_snapshot() };
    one_i64(
        "SELECT coalesce(pg_catalog.pg_stat_get_dead_tuples($1), 0)",
        &[oid.into()],
        "pg_stat_get_dead_tuples",
    )
}

fn report_row(oid: pg_sys::Oid) -> (Option<bool>, f64) {
    Spi::get_two_with_args::<bool, f64>(
        "SELECT removable, est_bloat_pct FROM capstone.bloat_report(rel => $1::regclass) WHERE relid = $1::regclass",
        &[oid.into()],
    )
    .map(|(r, p)| (r, p.unwrap_or(0.0)))
    .unwrap_or_else(|e| fail("bloat_report")(e).raise())
}

fn record_vacuum(steps: &mut Steps, step: &str, r: &estimate::VacuumReport, lines: &[String]) {
    let tuples = lines
        .iter()
        .flat_map(|l| l.lines())
        .find(|l| l.trim_start().starts_with("tuples:"))
        .map(|l| l.trim().to_string());
    steps.add(
        step,
        "dead_not_yet_removable",
        r.not_yet_removable.map(|n| n as f64),
        tuples,
    );
    steps.add(step, "removed", r.removed.map(|n| n as f64), None);
    steps.num(
        step,
        "verbose_lines_not_yet_removable",
        r.lines_not_yet_removable as f64,
    );
    steps.add(
        step,
        "removable_cutoff_age_xids",
        r.cutoff_age_xids.map(|n| n as f64),
        None,
    );
}

/// The scenario's result in one sentence each, for the evidence report.
struct ScenarioResult {
    held_not_removable: i64,
    removed_after_release: i64,
    fsm_free: u64,
    named_while_held: bool,
    removable_after: bool,
}

impl ScenarioResult {
    fn proven(&self) -> bool {
        self.named_while_held
            && self.held_not_removable > 0
            && self.removed_after_release > 0
            && self.removable_after
    }

    fn verdict(&self) -> String {
        if self.proven() {
            format!(
                "VACUUM could not remove {} dead row versions while a snapshot held in another session was named by xmin_holders; once it ended VACUUM removed {} and {} bytes became free for reuse",
                self.held_not_removable, self.removed_after_release, self.fsm_free
            )
        } else {
            format!(
                "scenario inconclusive: {} dead row versions kept while held, {} removed after release",
                self.held_not_removable, self.removed_after_release
            )
        }
    }

    fn chart(&self) -> Value {
        json!({
            "title": "Dead row versions VACUUM kept and removed",
            "kind": "bar",
            "x_label": "VACUUM (VERBOSE) run",
            "y_label": "dead row versions",
            "categories": ["while the snapshot is held", "after the holder ended"],
            "series": [
                {"name": "dead but not yet removable", "points": [[0.0, self.held_not_removable as f64], [1.0, 0.0]]},
                {"name": "removed", "points": [[0.0, 0.0], [1.0, self.removed_after_release as f64]]}
            ]
        })
    }
}

fn finish_steps(s: &Scenario) -> (Steps, ScenarioResult) {
    let mut steps = Steps::default();
    // 1. while the holder holds
    let (age, _) = holder_state(s.holder_pid).unwrap_or((0, 0.0));
    steps.num("held", "holder_xmin_age_xids", age as f64);
    let named_while_held = holder_named(s.holder_pid);
    steps.flag("held", "holder_named_in_xmin_holders", named_while_held);
    steps.num("held", "dead_tuples", dead_tuples(s.relid) as f64);
    let (removable, _) = report_row(s.relid);
    steps.add(
        "held",
        "removable",
        removable.map(|r| if r { 1.0 } else { 0.0 }),
        Some("bloat_report(rel).removable".into()),
    );
    // 2. VACUUM cannot remove what the holder's snapshot may still see
    let (r, lines) = vacuum_in_worker(s, 1);
    record_vacuum(&mut steps, "vacuum while held", &r, &lines);
    let held_not_removable = r.not_yet_removable.unwrap_or(0);
    steps.num(
        "vacuum while held",
        "dead_tuples_after",
        dead_tuples(s.relid) as f64,
    );
    // 3. end the holder
    let held_for = holder_state(s.holder_pid)
        .map(|(_, secs)| secs)
        .unwrap_or(0.0);
    let terminated = Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.pg_terminate_backend($1, 10000)",
        &[s.holder_pid.into()],
    )
    .unwrap_or_else(|e| fail("pg_terminate_backend")(e).raise())
    .unwrap_or(false);
    let t0 = Instant::now();
    while holder_state(s.holder_pid).is_some() && t0.elapsed() < timeout() {
        nap();
    }
    steps.flag("release", "holder_terminated", terminated);
    steps.num("release", "held_for_s", held_for);
    steps.flag(
        "release",
        "holder_named_in_xmin_holders",
        holder_named(s.holder_pid),
    );
    // 4. now VACUUM removes them
    let (r, lines) = vacuum_in_worker(s, 2);
    record_vacuum(&mut steps, "vacuum after release", &r, &lines);
    let removed_after_release = r.removed.unwrap_or(0);
    // 5. what is left: free space, ready for reuse
    let dead = dead_tuples(s.relid);
    steps.num("after", "dead_tuples", dead as f64);
    let (heap, _) = sizes(s.relid);
    steps.num("after", "heap_bytes", heap as f64);
    let fsm: u64 = Opened::try_open(s.relid)
        .map(|o| (0..o.nblocks()).map(|b| o.recorded_free(b)).sum())
        .unwrap_or(0);
    steps.add(
        "after",
        "fsm_free_bytes",
        Some(fsm as f64),
        Some("free space map: what inserts and updates can reuse".into()),
    );
    let free_pct = super::pgstattuple_schema().and_then(|nsp| {
        Spi::get_one_with_args::<f64>(
            &format!(
                "SELECT free_percent FROM {}.pgstattuple($1::regclass)",
                pgrx::spi::quote_identifier(nsp)
            ),
            &[s.relid.into()],
        )
        .ok()
        .flatten()
    });
    steps.add(
        "after",
        "pgstattuple_free_percent",
        free_pct,
        free_pct
            .is_none()
            .then(|| "pgstattuple is not installed".to_string()),
    );
    let (removable, pct) = report_row(s.relid);
    steps.num("after", "est_bloat_pct", pct);
    steps.add(
        "after",
        "removable",
        removable.map(|r| if r { 1.0 } else { 0.0 }),
        Some("bloat_report(rel).removable".into()),
    );
    let outcome = ScenarioResult {
        held_not_removable,
        removed_after_release,
        fsm_free: fsm,
        named_while_held,
        removable_after: removable == Some(true),
    };
    (steps, outcome)
}

/// Finish a scenario started by `capstone.bloat_scenario()`: VACUUM while the
/// holder holds, end the holder, VACUUM again, and measure.
#[pg_extern(volatile, parallel_unsafe)]
fn bloat_scenario_finish(
    scenario_id: default!(Option<i64>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(scenario_id, i64),
        name!(step, String),
        name!(metric, String),
        name!(value, Option<f64>),
        name!(detail, Option<String>),
    ),
> {
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        CapstoneError::NotSupported("bloat_scenario_finish needs READ COMMITTED".into()).raise_hint(
            "it reads what its VACUUM workers commit; call it outside a REPEATABLE READ or SERIALIZABLE transaction",
        );
    }
    let s = load_scenario(scenario_id);
    let done = format!("bloat scenario {}: finish", s.id);
    let finished = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM capstone.evidence
                         WHERE gate = 'bloat' AND label = $1 AND captured_by = current_user)",
        &[done.as_str().into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if finished {
        CapstoneError::PrerequisiteState(format!("bloat scenario {} is already finished", s.id))
            .raise_hint("start a new one with SELECT * FROM capstone.bloat_scenario();");
    }
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = $1)",
        &[s.relid.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !exists {
        CapstoneError::UndefinedTable(format!("the scenario's table {} was dropped", s.rel))
            .raise_hint("start a new scenario");
    }
    let committed = match &s.churn_xid {
        None => true,
        Some(x) => {
            Spi::get_one_with_args::<String>(
                "SELECT pg_catalog.pg_xact_status($1::xid8)",
                &[x.as_str().into()],
            )
            .ok()
            .flatten()
            .as_deref()
                == Some("committed")
        }
    };
    if !committed {
        CapstoneError::PrerequisiteState(format!(
            "the updates of bloat scenario {} have not committed",
            s.id
        ))
        .raise_hint(
            "run bloat_scenario() and bloat_scenario_finish() as two statements, not inside one transaction block",
        );
    }
    if holder_state(s.holder_pid).is_none() {
        CapstoneError::PrerequisiteState(format!(
            "the snapshot holder of bloat scenario {} (pid {}) has already ended",
            s.id, s.holder_pid
        ))
        .raise_hint("its hold ran out or it was terminated; start again, e.g. capstone.bloat_scenario(hold => '15 min')");
    }
    // any error or cancel from here on ends the holder before it is re-raised
    let steps = match subxact::run(Outcome::Commit, || {
        let (steps, outcome) = finish_steps(&s);
        crate::infra::evidence::store(
            crate::infra::evidence::Gate::Bloat,
            Some(&done),
            None,
            json!({}),
            json!({
                "scenario": s.id,
                "relid": s.relid.to_u32(),
                "rel": s.rel,
                "summary": outcome.verdict(),
                "verdict": outcome.verdict(),
                "proven": outcome.proven(),
                "table": steps.json(),
                "chart": outcome.chart(),
            }),
        );
        steps
    }) {
        Ok(steps) => steps,
        Err(e) => {
            let _ = Spi::run_with_args(
                "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity
                  WHERE pid = $1 AND backend_type = $2",
                &[s.holder_pid.into(), HOLDER_TYPE.into()],
            );
            (*e).rethrow()
        }
    };
    TableIterator::new(steps.rows(s.id))
}

/// The snapshot holder: a REPEATABLE READ transaction that takes its snapshot and
/// waits, ending on SIGTERM (pg_terminate_backend, or the caller's error path), on
/// postmaster death, or when its hold runs out. It never writes.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn capstone_bloat_holder_main(_arg: pg_sys::Datum) {
    let Some((ident, args)) = worker::attach_with_args() else {
        log!("capstone bloat holder: malformed bgw_extra, exiting");
        return;
    };
    let hold = Duration::from_millis(args.first().copied().unwrap_or(0).max(0) as u64);
    let started = Instant::now();
    unsafe {
        pg_sys::SetConfigOption(
            c"default_transaction_isolation".as_ptr(),
            c"repeatable read".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
        );
    }
    let activity = CString::new(format!(
        "capstone bloat holder {}: REPEATABLE READ snapshot held until terminated (at most {} s)",
        ident.token,
        hold.as_secs()
    ))
    .unwrap_or_default();
    BackgroundWorker::transaction(|| {
        // The transaction's snapshot is taken now and, in REPEATABLE READ, stays
        // registered until commit: this backend's xmin holds the horizon from here on.
        // read-only: a snapshot, no xid, like a long report query
        if let Err(e) = Spi::connect(|c| c.select("SELECT 1", None, &[]).map(|_| ())) {
            log!("capstone bloat holder: {e}");
            return;
        }
        unsafe {
            pg_sys::pgstat_report_activity(
                pg_sys::BackendState::STATE_IDLEINTRANSACTION,
                activity.as_ptr(),
            )
        };
        while started.elapsed() < hold {
            if !BackgroundWorker::wait_latch(Some(Duration::from_millis(100))) {
                break;
            }
        }
    });
}

/// INFO messages captured while the vacuum worker runs VACUUM (VERBOSE).
static CAPTURED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static PREVIOUS_HOOK: Mutex<pg_sys::emit_log_hook_type> = Mutex::new(None);

/// Keep INFO messages (VACUUM VERBOSE's report) for the evidence row instead of
/// the server log; everything else passes through untouched.
#[pg_guard]
unsafe extern "C-unwind" fn capture_info(edata: *mut pg_sys::ErrorData) {
    unsafe {
        if !edata.is_null() && (*edata).elevel == pg_sys::INFO as i32 {
            if !(*edata).message.is_null() {
                let m = CStr::from_ptr((*edata).message)
                    .to_string_lossy()
                    .into_owned();
                if let Ok(mut v) = CAPTURED.lock() {
                    v.push(m);
                }
            }
            (*edata).output_to_server = false;
        }
        let prev = PREVIOUS_HOOK.lock().ok().and_then(|g| *g);
        if let Some(prev) = prev {
            prev(edata);
        }
    }
}

/// Run `sql` (one VACUUM statement) at top level, outside any transaction block,
/// as psql would: VACUUM refuses to run inside a function or a transaction block,
/// but a background worker's own top level is neither. Returns its INFO output.
fn vacuum_top_level(sql: &str) -> Result<Vec<String>, String> {
    let csql = CString::new(sql).map_err(|e| e.to_string())?;
    unsafe {
        // INFO reaches emit_log_hook only when it would be logged; the hook then keeps it out of the log
        pg_sys::SetConfigOption(
            c"log_min_messages".as_ptr(),
            c"info".as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
        );
        if let Ok(mut p) = PREVIOUS_HOOK.lock() {
            *p = pg_sys::emit_log_hook;
        }
        if let Ok(mut v) = CAPTURED.lock() {
            v.clear();
        }
        pg_sys::emit_log_hook = Some(capture_info);

        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        // VACUUM commits and starts transactions of its own, so the parse tree and the
        // memory vacuum() keeps across them must live outside the transaction
        let cxt = pg_sys::AllocSetContextCreateExtended(
            pg_sys::TopMemoryContext,
            c"capstone bloat vacuum".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        let old = pg_sys::MemoryContextSwitchTo(cxt);
        let list = pg_sys::raw_parser(csql.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        let stmt = if list.is_null() || (*list).length != 1 {
            std::ptr::null_mut()
        } else {
            let raw = (*(*list).elements).ptr_value as *mut pg_sys::RawStmt;
            let node = (*raw).stmt;
            if (*node).type_ == pg_sys::NodeTag::T_VacuumStmt {
                node as *mut pg_sys::VacuumStmt
            } else {
                std::ptr::null_mut()
            }
        };
        let pstate = pg_sys::make_parsestate(std::ptr::null_mut());
        (*pstate).p_sourcetext = csql.as_ptr();
        pg_sys::MemoryContextSwitchTo(old);
        if stmt.is_null() {
            pg_sys::CommitTransactionCommand();
            pg_sys::MemoryContextDelete(cxt);
            return Err(format!("not a single VACUUM statement: {sql}"));
        }
        let portal = pg_sys::PortalContext;
        pg_sys::PortalContext = cxt;
        pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_RUNNING, csql.as_ptr());
        pg_sys::ExecVacuum(pstate, stmt, true);
        pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_IDLE, std::ptr::null());
        pg_sys::CommitTransactionCommand();
        pg_sys::PortalContext = portal;
        pg_sys::MemoryContextDelete(cxt);

        let prev = PREVIOUS_HOOK.lock().ok().and_then(|g| *g);
        pg_sys::emit_log_hook = prev;
    }
    Ok(CAPTURED
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default())
}

/// The vacuum worker: VACUUM (VERBOSE) the scenario's table as the caller, and
/// store what VACUUM printed as evidence for the caller to read back.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn capstone_bloat_vacuum_main(_arg: pg_sys::Datum) {
    let Some((ident, args)) = worker::attach_with_args() else {
        log!("capstone bloat vacuum: malformed bgw_extra, exiting");
        return;
    };
    let [relid, scenario, step] = args[..] else {
        log!("capstone bloat vacuum: expected 3 arguments, exiting");
        return;
    };
    let name = BackgroundWorker::transaction(|| {
        Spi::get_one_with_args::<String>(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = $1",
            &[pg_sys::Oid::from(relid as u32).into()],
        )
        .ok()
        .flatten()
    });
    let Some(name) = name else {
        log!("capstone bloat vacuum: relation {relid} does not exist, exiting");
        return;
    };
    let sql = format!("VACUUM (VERBOSE) {name}");
    let (lines, error) = match vacuum_top_level(&sql) {
        Ok(lines) => (lines, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let report = estimate::parse_vacuum_verbose(&lines);
    let what = if step == 1 {
        "vacuum while held"
    } else {
        "vacuum after release"
    };
    let label = format!("bloat scenario {scenario}: {what}");
    BackgroundWorker::transaction(|| {
        crate::infra::evidence::store(
            crate::infra::evidence::Gate::Bloat,
            Some(&label),
            Some(&sql),
            json!({}),
            json!({
                "token": ident.token.to_string(),
                "summary": match report.not_yet_removable {
                    Some(n) if n > 0 => format!("{sql}: {n} dead row versions are not yet removable"),
                    _ => format!("{sql}: {} dead row versions removed", report.removed.unwrap_or(0)),
                },
                "text": lines.join("\n"),
                "scenario": scenario,
                "step": step,
                "lines": lines,
                "error": error,
                "removed": report.removed,
                "remain": report.remain,
                "not_yet_removable": report.not_yet_removable,
                "removable_cutoff_age_xids": report.cutoff_age_xids,
            }),
        );
    });
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// The SQLSTATE a statement fails with, or NULL.
    fn sqlstate_helper() {
        Spi::run(
            "CREATE FUNCTION capstone_test_sqlstate(q text) RETURNS text LANGUAGE plpgsql AS $f$
             BEGIN EXECUTE q; RETURN NULL;
             EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $f$",
        )
        .unwrap();
    }

    #[pg_test(error = "updates must be between 1 and 10000000 (got 0)")]
    fn zero_updates_are_refused() {
        Spi::run("SELECT * FROM capstone.bloat_scenario(updates => 0)").unwrap();
    }

    #[pg_test(error = "hold must be between 1 second and 1 day (got 0 ms)")]
    fn zero_hold_is_refused() {
        Spi::run("SELECT * FROM capstone.bloat_scenario(hold => '0 s')").unwrap();
    }

    #[pg_test(error = "public.bloat_scenario_v is not an ordinary table")]
    fn a_view_is_not_a_scenario_table() {
        Spi::run("CREATE VIEW bloat_scenario_v AS SELECT 1 AS x").unwrap();
        Spi::run("SELECT * FROM capstone.bloat_scenario('bloat_scenario_v')").unwrap();
    }

    /// One transaction can start a scenario (the holder is another session, and it
    /// needs nothing this transaction wrote), but cannot finish it: its updates
    /// are not committed, so VACUUM could not remove them anyway.
    #[pg_test]
    fn a_scenario_holds_and_cannot_finish_in_the_same_transaction() {
        sqlstate_helper();
        let (named, updated) = Spi::get_two::<f64, f64>(
            "SELECT max(value) FILTER (WHERE metric = 'holder_named_in_xmin_holders'),
                    max(value) FILTER (WHERE metric = 'rows_updated')
               FROM capstone.bloat_scenario(updates => 2000, hold => '3 s')",
        )
        .unwrap();
        assert_eq!(named, Some(1.0));
        assert_eq!(updated, Some(2000.0));
        let state = Spi::get_one::<String>(
            "SELECT capstone_test_sqlstate('SELECT * FROM capstone.bloat_scenario_finish()')",
        );
        assert_eq!(state.unwrap().as_deref(), Some("55000"));
    }
}
