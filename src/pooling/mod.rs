//! Pooling gate: how big a PgBouncer pool should be, and what transaction pooling
//! breaks for this workload.
//!
//! - `capstone.pool_size()` / `pool_size_json()` sample the server for a window and
//!   write the sizing out term by term: a core-bound estimate, Little's law
//!   (L = λ·W) measured two ways, a memory ceiling, and the recommended
//!   `default_pool_size`, `max_client_conn` and `max_connections`.
//! - `capstone.pooling_audit()` reads pg_stat_statements and the catalog for
//!   session state that does not survive transaction pooling.
//! - `capstone.pgbouncer_stats()` reads SHOW POOLS / SHOW STATS from a PgBouncer
//!   admin console through dblink.
//!
//! The arithmetic lives in `math.rs` and the statement classifier in `audit.rs`,
//! both free of pgrx types; this module measures and talks SQL.

// pgrx needs each result row spelled out as a name!() tuple in the signature
#![allow(clippy::type_complexity)]

pub mod audit;
pub mod math;

use crate::infra::error::{check_range, required, CapstoneError};
use crate::infra::format::mb;
use crate::infra::subxact::{self, Outcome};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

/// Per-backend overhead assumed when /proc/self/smaps_rollup cannot be read.
const DEFAULT_BACKEND_OVERHEAD: u64 = 8 * 1024 * 1024;

/// One row of the sizing.
#[derive(Debug, Clone)]
struct Term {
    section: &'static str,
    term: &'static str,
    value: Option<f64>,
    unit: &'static str,
    source: String,
    explanation: String,
}

fn term(
    section: &'static str,
    term: &'static str,
    value: Option<f64>,
    unit: &'static str,
    source: impl Into<String>,
    explanation: impl Into<String>,
) -> Term {
    Term {
        section,
        term,
        value,
        unit,
        source: source.into(),
        explanation: explanation.into(),
    }
}

fn notice_with_hint(message: String, hint: &str) {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        message,
        "capstone",
    )
    .set_hint(hint.to_string())
    .report(PgLogLevel::NOTICE);
}

// ---------------------------------------------------------------- server facts

/// Settings the sizing reads, in bytes where they are sizes.
struct Settings {
    work_mem: u64,
    hash_mem_multiplier: f64,
    shared_buffers: u64,
    max_connections: u32,
    reserved_slots: u32,
    huge_pages: bool,
    huge_pages_source: String,
}

fn read_settings() -> Settings {
    let r = Spi::connect(|c| {
        let t = c.select(
            "SELECT pg_catalog.pg_size_bytes(pg_catalog.current_setting('work_mem'))::float8,
                    pg_catalog.current_setting('hash_mem_multiplier')::float8,
                    pg_catalog.pg_size_bytes(pg_catalog.current_setting('shared_buffers'))::float8,
                    pg_catalog.current_setting('max_connections')::int,
                    pg_catalog.current_setting('superuser_reserved_connections')::int
                      + coalesce(pg_catalog.current_setting('reserved_connections', true), '0')::int,
                    pg_catalog.current_setting('huge_pages'),
                    pg_catalog.current_setting('huge_pages_status', true)",
            None,
            &[],
        )?;
        let row = t.first();
        let status: Option<String> = row.get(7)?;
        let setting: String = row.get(6)?.unwrap_or_default();
        let (huge, source) = match status.as_deref() {
            Some(s) => (s == "on", format!("huge_pages_status = {s}")),
            None => (
                setting == "on",
                format!("huge_pages = {setting} (huge_pages_status needs PostgreSQL 17+; 'try' counts as off)"),
            ),
        };
        Ok::<_, pgrx::spi::Error>(Settings {
            work_mem: row.get::<f64>(1)?.unwrap_or(4.0 * 1024.0 * 1024.0) as u64,
            hash_mem_multiplier: row.get::<f64>(2)?.unwrap_or(2.0),
            shared_buffers: row.get::<f64>(3)?.unwrap_or(0.0) as u64,
            max_connections: row.get::<i32>(4)?.unwrap_or(100).max(0) as u32,
            reserved_slots: row.get::<i32>(5)?.unwrap_or(3).max(0) as u32,
            huge_pages: huge,
            huge_pages_source: source,
        })
    });
    r.unwrap_or_else(|e| {
        CapstoneError::PrerequisiteState(format!("could not read server settings: {e}")).raise()
    })
}

/// Where pg_stat_statements can be read from, or why it cannot.
fn pgss_schema() -> Result<String, String> {
    let schema = Spi::get_one::<String>(
        "SELECT n.nspname::text FROM pg_catalog.pg_extension e
           JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
          WHERE e.extname = 'pg_stat_statements'",
    )
    .ok()
    .flatten();
    // read without the privilege check that current_setting() applies: a granted role
    // without pg_read_all_settings learns only whether pg_stat_statements is preloaded,
    // which calling pg_stat_statements() would tell it anyway
    let loaded = unsafe {
        let v = pg_sys::GetConfigOption(c"shared_preload_libraries".as_ptr(), true, false);
        !v.is_null()
            && std::ffi::CStr::from_ptr(v)
                .to_string_lossy()
                .split(',')
                .any(|l| l.trim().trim_matches('"') == "pg_stat_statements")
    };
    match (schema, loaded) {
        (Some(s), true) => Ok(s),
        (Some(_), false) => Err(
            "the pg_stat_statements extension exists here but the library is not in shared_preload_libraries".into(),
        ),
        (None, true) => Err("pg_stat_statements is preloaded but CREATE EXTENSION pg_stat_statements has not been run in this database".into()),
        (None, false) => Err("pg_stat_statements is not installed".into()),
    }
}

const PGSS_HINT: &str = "add pg_stat_statements to shared_preload_libraries (restart), then CREATE EXTENSION pg_stat_statements in this database";

/// Cumulative counters at one instant.
#[derive(Debug, Clone, Copy)]
struct Counters {
    xacts: f64,
    calls: Option<f64>,
    exec_ms: Option<f64>,
    cpu: Option<(u64, u64)>,
    at: Instant,
}

fn read_counters(pgss: Option<&str>) -> Counters {
    let _ = Spi::run("SELECT pg_catalog.pg_stat_clear_snapshot()");
    let xacts = Spi::get_one::<f64>(
        "SELECT coalesce(sum(xact_commit + xact_rollback), 0)::float8 FROM pg_catalog.pg_stat_database",
    )
    .ok()
    .flatten()
    .unwrap_or(0.0);
    let (calls, exec_ms) = match pgss {
        None => (None, None),
        Some(schema) => {
            // only top-level statements: with pg_stat_statements.track = 'all' our own
            // sampling queries would otherwise count as nested work
            let sql = format!(
                "SELECT coalesce(sum(calls), 0)::float8, coalesce(sum(total_exec_time), 0)::float8
                   FROM {}.pg_stat_statements WHERE toplevel",
                pgrx::spi::quote_identifier(schema)
            );
            match subxact::run(Outcome::Commit, || Spi::get_two::<f64, f64>(&sql)) {
                Ok(Ok((a, b))) => (a, b),
                _ => (None, None),
            }
        }
    };
    Counters {
        xacts,
        calls,
        exec_ms,
        cpu: std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|t| math::parse_proc_stat(&t)),
        at: Instant::now(),
    }
}

/// What one look at pg_stat_activity saw (client backends other than ours).
#[derive(Debug, Clone, Default)]
struct Sample {
    active: u32,
    idle_in_xact: u32,
    clients: u32,
    hidden: u32,
    pools: Vec<String>,
}

fn sample_activity() -> Sample {
    let _ = Spi::run("SELECT pg_catalog.pg_stat_clear_snapshot()");
    Spi::connect(|c| {
        let t = c.select(
            "SELECT count(*) FILTER (WHERE state IN ('active', 'fastpath function call'))::int,
                    count(*) FILTER (WHERE state IN ('idle in transaction', 'idle in transaction (aborted)'))::int,
                    count(*)::int,
                    count(*) FILTER (WHERE state IS NULL)::int,
                    pg_catalog.string_agg(DISTINCT datname || '/' || usename, E'\\n')
                      FILTER (WHERE state IN ('active', 'fastpath function call',
                                              'idle in transaction', 'idle in transaction (aborted)'))
               FROM pg_catalog.pg_stat_activity
              WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()",
            None,
            &[],
        )?;
        let r = t.first();
        Ok::<_, pgrx::spi::Error>(Sample {
            active: r.get::<i32>(1)?.unwrap_or(0).max(0) as u32,
            idle_in_xact: r.get::<i32>(2)?.unwrap_or(0).max(0) as u32,
            clients: r.get::<i32>(3)?.unwrap_or(0).max(0) as u32,
            hidden: r.get::<i32>(4)?.unwrap_or(0).max(0) as u32,
            pools: r
                .get::<String>(5)?
                .map(|s| s.lines().map(str::to_string).collect())
                .unwrap_or_default(),
        })
    })
    .unwrap_or_default()
}

/// Sleep on our latch, interruptibly (a cancel or terminate ends the call).
fn nap(d: Duration) {
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            d.as_millis().max(1) as _,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
    }
    check_for_interrupts!();
}

fn detect_cores() -> (u32, String) {
    let listed = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .map(|t| math::count_cpuinfo_processors(&t));
    let usable = std::thread::available_parallelism()
        .ok()
        .map(|n| n.get() as u32);
    let listed_txt = match listed {
        Some(n) => format!("; /proc/cpuinfo lists {n}"),
        None => "; /proc/cpuinfo not readable".into(),
    };
    match (usable, listed) {
        (Some(n), _) => (
            n,
            format!("detected: CPUs this server process may run on (sched affinity and cgroup CPU quota){listed_txt}"),
        ),
        (None, Some(n)) if n > 0 => (n, format!("detected: /proc/cpuinfo{listed_txt}")),
        _ => (
            1,
            "not detectable on this platform: assumed 1; pass cores => n".into(),
        ),
    }
}

/// RAM the server may use: MemTotal, or a lower cgroup v2 memory limit.
fn detect_ram() -> (Option<u64>, String) {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| math::parse_kb_field(&t, "MemTotal"));
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) if c < t => (Some(c), "cgroup v2 memory.max (lower than MemTotal in /proc/meminfo)".into()),
        (Some(t), _) => (Some(t), "MemTotal in /proc/meminfo".into()),
        (None, Some(c)) => (Some(c), "cgroup v2 memory.max (/proc/meminfo not readable)".into()),
        (None, None) => (None, "unavailable: /proc/meminfo is not readable on this platform, so no memory ceiling is computed".into()),
    }
}

/// Private memory of this backend (Pss_Anon), as a stand-in for any backend's overhead.
fn detect_backend_overhead() -> (u64, String) {
    match std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|t| math::parse_kb_field(&t, "Pss_Anon"))
    {
        Some(b) if b > 0 => (
            b,
            "measured: Pss_Anon of this backend in /proc/self/smaps_rollup (private heap, catalog caches; shared_buffers excluded)".into(),
        ),
        _ => (
            DEFAULT_BACKEND_OVERHEAD,
            "assumed 8 MB: /proc/self/smaps_rollup is not readable here".into(),
        ),
    }
}

// ---------------------------------------------------------------- pool_size

/// Parameters after validation.
struct Params {
    window: Duration,
    cores: Option<u32>,
    headroom: f64,
    core_factor: f64,
    nodes: u32,
    clients: Option<u32>,
    require_statements: bool,
}

fn check_finite(name: &str, v: f64, lo: f64, hi: f64) -> f64 {
    if !v.is_finite() {
        CapstoneError::InvalidParameter(format!("{name} must be a finite number (got {v})"))
            .raise_hint(format!("pass a value between {lo} and {hi}"));
    }
    check_range(name, v, lo, hi)
}

fn validate(
    sample: Option<Interval>,
    cores: Option<i32>,
    headroom: Option<f64>,
    core_factor: Option<f64>,
    nodes_per_query: Option<i32>,
    clients: Option<i32>,
    require_statements: Option<bool>,
) -> Params {
    let sample = required(sample, "sample");
    let micros = sample.as_micros();
    if micros <= 0 || micros > 3_600_000_000 {
        CapstoneError::InvalidParameter(format!(
            "sample must be greater than 0 and at most 1 hour (got {} s)",
            micros as f64 / 1e6
        ))
        .raise_hint("pass an interval such as '10 s': the window over which λ and L are measured");
    }
    let cores = cores.map(|c| check_range("cores", c, 1, 4096) as u32);
    let headroom = check_finite("headroom", headroom.unwrap_or(1.5), 1.0, 10.0);
    let core_factor = check_finite("core_factor", core_factor.unwrap_or(2.0), 0.5, 16.0);
    let nodes = check_range("nodes_per_query", nodes_per_query.unwrap_or(2), 0, 64) as u32;
    let clients = clients.map(|c| check_range("clients", c, 1, 10_000_000) as u32);
    Params {
        window: Duration::from_micros(micros as u64),
        cores,
        headroom,
        core_factor,
        nodes,
        clients,
        require_statements: require_statements.unwrap_or(false),
    }
}

/// The full computation: measured terms, the plan, and the evidence id.
struct Sizing {
    terms: Vec<Term>,
    plan: math::Plan,
    evidence_id: i64,
}

fn fmt1(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn compute(p: &Params) -> Sizing {
    let settings = read_settings();
    let pgss = pgss_schema();
    if let Err(why) = &pgss {
        if p.require_statements {
            CapstoneError::NotSupported(format!(
                "pool_size(require_statements => true) needs pg_stat_statements: {why}"
            ))
            .raise_hint(PGSS_HINT);
        }
        notice_with_hint(
            format!("{why}: W is measured from pg_stat_activity alone"),
            PGSS_HINT,
        );
    }
    let pgss_schema = pgss.as_ref().ok().map(String::as_str);

    // ---- the sampling window
    let tick = (p.window / 100).clamp(Duration::from_millis(10), Duration::from_millis(100));
    let before = read_counters(pgss_schema);
    let end = before.at + p.window;
    let mut samples: Vec<Sample> = Vec::new();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        nap(tick.min(end - now));
        samples.push(sample_activity());
    }
    if samples.is_empty() {
        samples.push(sample_activity());
    }
    let after = read_counters(pgss_schema);
    let seconds = after.at.duration_since(before.at).as_secs_f64();

    let n = samples.len() as f64;
    let mean = |f: &dyn Fn(&Sample) -> u32| samples.iter().map(|s| f(s) as f64).sum::<f64>() / n;
    let l_active = mean(&|s| s.active);
    let l_busy = mean(&|s| s.active + s.idle_in_xact);
    let mean_clients = mean(&|s| s.clients);
    let peak_clients = samples.iter().map(|s| s.clients).max().unwrap_or(0);
    let hidden = samples.iter().map(|s| s.hidden).max().unwrap_or(0);
    let pool_keys: HashSet<&str> = samples
        .iter()
        .flat_map(|s| s.pools.iter().map(String::as_str))
        .collect();
    let pools = pool_keys.len().max(1) as u32;

    let xacts = (after.xacts - before.xacts).max(0.0);
    let lambda = math::rate(xacts, seconds).unwrap_or(0.0);
    let sufficient = math::sample_is_sufficient(xacts);
    let calls = match (before.calls, after.calls) {
        (Some(a), Some(b)) => Some((b - a).max(0.0)),
        _ => None,
    };
    let exec_ms = match (before.exec_ms, after.exec_ms) {
        (Some(a), Some(b)) => Some((b - a).max(0.0)),
        _ => None,
    };
    // Little's law the other way round: Δ execution time / window = mean statements executing.
    // Execution is a part of a busy backend's time, so if this exceeds the sampled L_busy
    // the sampling missed short statements (on a saturated host the sampler only runs when
    // it gets a core) and this is the better lower bound.
    let l_pgss = match exec_ms {
        Some(e) if seconds > 0.0 => Some(e / 1000.0 / seconds),
        _ => None,
    };
    let l_demand = l_busy.max(l_pgss.unwrap_or(0.0));
    let cpu_busy = match (before.cpu, after.cpu) {
        (Some(a), Some(b)) => math::cpu_busy(a, b),
        _ => None,
    };

    // ---- cores
    let (cores, cores_source) = match p.cores {
        Some(c) => (c, "parameter cores".to_string()),
        None => detect_cores(),
    };
    let bound = math::core_bound(cores, p.core_factor);

    // ---- memory
    let (ram, ram_source) = detect_ram();
    let (overhead, overhead_source) = detect_backend_overhead();
    let page_tables = math::page_table_bytes(settings.shared_buffers, settings.huge_pages);
    let per_backend = math::per_backend_bytes(
        overhead + page_tables,
        settings.work_mem,
        p.nodes,
        settings.hash_mem_multiplier,
    );
    let ceiling = math::memory_ceiling(ram, settings.shared_buffers, per_backend);

    let plan = math::recommend(&math::Inputs {
        cores,
        core_bound: bound,
        transactions: xacts,
        l_busy: l_demand,
        headroom: p.headroom,
        cpu_busy,
        pools,
        memory_ceiling: ceiling,
        reserved_slots: settings.reserved_slots,
        peak_clients,
        current_max_connections: settings.max_connections,
        clients: p.clients,
    });

    // ---- the rows
    let mut t: Vec<Term> = Vec::new();
    t.push(term(
        "cores",
        "cores",
        Some(cores as f64),
        "cores",
        cores_source,
        "CPUs that run backends; everything below scales with them",
    ));
    t.push(term("cores", "core_factor", Some(p.core_factor), "connections per core",
        if p.core_factor == 2.0 { "default 2 (parameter core_factor)" } else { "parameter core_factor" },
        "busy connections per core before throughput stops growing: a backend alternates between the CPU and waits (a client or pooler round trip, I/O, a lock), so about two per core keep a core busy when the working set is cached; raise it for I/O-bound servers (the old rule adds the effective spindle count), lower it towards 1 for pure CPU work"));
    t.push(term("cores", "core_bound", Some(bound as f64), "connections",
        format!("ceil(cores × core_factor) = ceil({cores} × {})", p.core_factor),
        "past this many busy server connections a CPU-bound server only adds context switches and lock contention: TPS flattens and latency climbs; extra clients should queue in PgBouncer, which is cheap, not in the kernel run queue"));

    t.push(term("littles_law", "sample_window", Some(seconds), "s",
        format!("measured: wall time between the first and last counter read; {} pg_stat_activity samples every {} ms", samples.len(), tick.as_millis()),
        "λ and L are averages over this window; pg_stat_database counters are flushed by each backend about once a second, so windows under ~5 s are noisy"));
    let verdict = if sufficient {
        format!(
            "{xacts:.0} transactions finished in the window (at least {:.0} needed): λ is measured",
            math::MIN_TRANSACTIONS
        )
    } else {
        format!(
            "the sample is too small: {xacts:.0} transactions in {seconds:.1} s (λ≈0; at least {:.0} are needed), so Little's law has nothing to measure and the recommendation falls back to the core-bound estimate ({bound}); run pool_size while the application is under its usual load, with a longer sample",
            math::MIN_TRANSACTIONS
        )
    };
    t.push(term("littles_law", "transactions", Some(xacts), "transactions",
        "Δ(xact_commit + xact_rollback) summed over pg_stat_database, with pg_stat_clear_snapshot() before each read",
        verdict));
    t.push(term("littles_law", "lambda", Some(lambda), "xact/s", "transactions / sample_window",
        "λ, the arrival rate (= throughput in steady state), server-wide: every database and user behind the pooler shares the cores"));
    let hidden_note = if hidden > 0 {
        format!(" {hidden} backends showed no state to this role (grant pg_read_all_stats for an exact count).")
    } else {
        String::new()
    };
    t.push(term("littles_law", "L_active", Some(l_active), "connections",
        "mean over the samples of client backends (other than this one) with state 'active' in pg_stat_activity",
        format!("statements executing at once: the server's own view of concurrency.{hidden_note}")));
    t.push(term("littles_law", "L_busy", Some(l_busy), "connections",
        "mean over the samples of client backends 'active' or 'idle in transaction'",
        "L measured directly: server connections held by an open transaction. In transaction mode PgBouncer keeps a server connection for the whole transaction, idle-in-transaction gaps included, so this is what the pool must cover. Behind a pooler that is already full, L cannot exceed its pool size: SHOW POOLS cl_waiting is demand the server never sees"));
    let w_direct = math::little_w(l_busy, lambda);
    t.push(term(
        "littles_law",
        "W_from_L",
        w_direct.map(|w| w * 1000.0),
        "ms",
        "W = L_busy / λ (Little's law solved for W)",
        match w_direct {
            Some(w) => format!(
                "mean time a transaction holds a server connection: {:.3} ms",
                w * 1000.0
            ),
            None => "undefined: no transactions finished in the window (λ = 0)".into(),
        },
    ));
    match (calls, exec_ms) {
        (Some(c), Some(e)) => {
            let w_stmt = if c > 0.0 { Some(e / c) } else { None };
            let w_xact = if xacts > 0.0 { Some(e / xacts) } else { None };
            let l_pgss = l_pgss.unwrap_or(0.0);
            t.push(term(
                "littles_law",
                "statements",
                Some(c),
                "statements",
                "Δ calls of top-level statements in pg_stat_statements",
                match math::rate(c, seconds) {
                    Some(r) if xacts > 0.0 => {
                        format!("{} statements/s, {:.2} per transaction", fmt1(r), c / xacts)
                    }
                    Some(r) => format!("{} statements/s", fmt1(r)),
                    None => "no window".into(),
                },
            ));
            t.push(term(
                "littles_law",
                "W_exec_statement",
                w_stmt,
                "ms",
                "Δ total_exec_time / Δ calls in pg_stat_statements",
                "mean execution time per statement, from the statistics rather than from sampling",
            ));
            t.push(term("littles_law", "W_exec_transaction", w_xact, "ms",
                "Δ total_exec_time / Δ transactions",
                "execution time per transaction; W_from_L minus this is time a transaction holds its connection without executing (client round trips inside the transaction, idle in transaction)"));
            t.push(term("littles_law", "L_from_statements", Some(l_pgss), "connections",
                "L = λ·W = Δ total_exec_time / sample_window",
                match w_direct {
                    Some(_) if l_busy > 0.0 && l_busy >= l_pgss => format!(
                        "Little's law the other way round: statements executing on average; L_busy / this = {:.2} (1 = connections are held only while executing, more = held while not executing)",
                        l_busy / l_pgss.max(1e-9)),
                    Some(_) if l_pgss > 0.0 => format!(
                        "Little's law the other way round: statements executing on average; L_busy / this = {:.2}. Below 1 the sampling undercounted: statements this short slip between samples, and on a busy host the sampler itself waits for a core, so demand uses this figure instead",
                        l_busy / l_pgss.max(1e-9)),
                    _ => "Little's law the other way round: the mean number of statements executing".into(),
                }));
        }
        _ => {
            let why = match &pgss {
                Err(w) => w.clone(),
                Ok(_) => "pg_stat_statements could not be read".into(),
            };
            for (name, what) in [
                ("statements", "statement count"),
                ("W_exec_statement", "mean execution time per statement"),
                ("W_exec_transaction", "execution time per transaction"),
                ("L_from_statements", "L = λ·W from execution times"),
            ] {
                t.push(term(
                    "littles_law",
                    name,
                    None,
                    "",
                    "pg_stat_statements",
                    format!("not measured ({what}): {why}. Hint: {PGSS_HINT}"),
                ));
            }
        }
    }
    t.push(term("littles_law", "cpu_busy", cpu_busy, "fraction",
        if cpu_busy.is_some() { "Δ busy / Δ total jiffies of the cpu line in /proc/stat (the whole host)" } else { "unavailable: /proc/stat not readable" },
        format!("decides whether demand above core_bound is capped (cores saturated at ≥ {:.0}%) or let through (backends are waiting, not computing)", math::CPU_SATURATED * 100.0)));
    t.push(term("littles_law", "client_connections", Some(mean_clients), "connections",
        format!("mean client backends over the samples; peak {peak_clients}"),
        if mean_clients > 0.0 {
            format!("{:.1}% of connected backends were busy on average: the rest hold a backend (and a max_connections slot) for nothing, which is what a transaction pool reclaims", 100.0 * l_busy / mean_clients)
        } else {
            "no other client backends were connected".into()
        }));
    let cycle = if lambda > 0.0 && mean_clients > 0.0 {
        Some(mean_clients / lambda * 1000.0)
    } else {
        None
    };
    t.push(term("littles_law", "connection_cycle", cycle, "ms",
        "client_connections / λ: Little's law with every connected backend counted as busy",
        match (cycle, w_direct) {
            (Some(c), Some(w)) if w > 0.0 => format!(
                "time between transactions on one connection; {:.0}× W_from_L. If these backends are a full pool's server connections (SHOW POOLS cl_waiting > 0), each spends this per transaction and only W_from_L of it in the server: the rest is the round trip through the pooler and its queue, which server-side L cannot see",
                c / (w * 1000.0)),
            (Some(_), _) => "time between transactions on one connection".into(),
            _ => "undefined: no transactions or no other connections in the window".into(),
        }));
    t.push(term("littles_law", "pools", Some(pools as f64), "pools",
        "distinct (database, user) pairs with busy backends in the samples (at least 1)",
        "PgBouncer keeps one pool per (database, user): default_pool_size applies to each, so the server connections are split across them"));
    t.push(term("littles_law", "demand", Some(plan.demand as f64), "connections",
        format!("ceil(max(L_busy, L_from_statements) × headroom) = ceil({} × {})", fmt1(l_demand), p.headroom),
        "server connections the measured load needs with room for bursts: arrivals are not evenly spaced, and a pool running at 100% utilization queues without bound"));

    t.push(term(
        "memory",
        "ram",
        ram.map(|r| r as f64),
        "bytes",
        ram_source,
        match ram {
            Some(r) => mb(r),
            None => "unknown: the memory ceiling is skipped".into(),
        },
    ));
    t.push(term("memory", "shared_buffers", Some(settings.shared_buffers as f64), "bytes",
        "current_setting('shared_buffers')", "allocated once, shared by every backend; the rest of RAM is what backends and the page cache share"));
    t.push(term(
        "memory",
        "work_mem",
        Some(settings.work_mem as f64),
        "bytes",
        "current_setting('work_mem')",
        format!(
            "each sort or hash node may use this much; hash nodes up to × hash_mem_multiplier = {}",
            settings.hash_mem_multiplier
        ),
    ));
    t.push(term("memory", "nodes_per_query", Some(p.nodes as f64), "nodes",
        if p.nodes == 2 { "default 2 (parameter nodes_per_query)" } else { "parameter nodes_per_query" },
        "sort/hash nodes a busy query runs at once; an OLTP point query uses none, a report may use several (parallel workers each get their own)"));
    t.push(term(
        "memory",
        "backend_overhead",
        Some((overhead + page_tables) as f64),
        "bytes",
        format!(
            "{overhead_source}; plus page tables to map shared_buffers ({}, {})",
            mb(page_tables),
            settings.huge_pages_source
        ),
        format!(
            "{} private + {} page tables per backend",
            mb(overhead),
            mb(page_tables)
        ),
    ));
    t.push(term("memory", "per_backend_peak", Some(per_backend as f64), "bytes",
        format!("backend_overhead + work_mem × nodes_per_query × hash_mem_multiplier = {} + {} × {} × {}", mb(overhead + page_tables), mb(settings.work_mem), p.nodes, settings.hash_mem_multiplier),
        "worst case for one busy backend: every node a hash node at its full allowance"));
    t.push(term("memory", "memory_ceiling", ceiling.map(|c| c as f64), "connections",
        "floor((ram − shared_buffers) / per_backend_peak)",
        match ceiling {
            Some(c) => format!("at most {c} backends fit at their worst case; this leaves nothing for the OS page cache, so it is a hard ceiling, not a target"),
            None => "not computed: RAM is unknown on this platform".into(),
        }));

    let basis_txt = match plan.basis {
        math::Basis::QuietFallback => format!("the sample is too small, so the core-bound estimate ({bound}) stands in"),
        math::Basis::CoreBound => format!("measured demand {} fits under the core bound {bound}; the pool size is a ceiling (PgBouncer opens server connections only while clients wait and closes idle ones after server_idle_timeout), so it stays at the core bound: a smaller pool makes clients queue whenever round trips through the pooler, not work, keep connections busy", plan.demand),
        math::Basis::CoreCapped => format!("demand {} exceeds the core bound {bound} and the cores are busy ({}): capped at the core bound; the excess clients wait in PgBouncer", plan.demand,
            cpu_busy.map(|u| format!("{:.0}% CPU", u * 100.0)).unwrap_or_else(|| "CPU unknown".into())),
        math::Basis::DemandOverCores => format!("demand {} exceeds the core bound {bound} but the host CPU is only {:.0}% busy: backends are waiting, not computing, so the pool follows demand; if they wait on locks or on clients inside transactions, fix that instead of growing the pool",
            plan.demand, cpu_busy.unwrap_or(0.0) * 100.0),
    };
    let mem_note = if plan.memory_capped {
        "; capped by the memory ceiling"
    } else {
        ""
    };
    t.push(term(
        "recommendation",
        "default_pool_size",
        Some(plan.default_pool_size as f64),
        "connections per pool",
        format!(
            "basis {}: {} server connections / {pools} pool(s){mem_note}",
            plan.basis.as_str(),
            plan.server_connections
        ),
        basis_txt,
    ));
    t.push(term("recommendation", "max_connections", Some(plan.max_connections as f64), "connections",
        format!("ceil(default_pool_size × pools × headroom) + {} reserved slots (superuser_reserved_connections + reserved_connections){mem_note}", settings.reserved_slots),
        format!("room for the pools plus direct sessions (migrations, monitoring, an operator); the server has {} now, and each slot costs a backend's memory whether busy or not", settings.max_connections)));
    t.push(term("recommendation", "max_client_conn", Some(plan.max_client_conn as f64), "connections",
        match p.clients {
            Some(c) => format!("parameter clients {c} × headroom, rounded up to 100"),
            None => format!("max(peak client connections {peak_clients}, max_connections now {} × {}) × headroom, rounded up to 100", settings.max_connections, math::CLIENTS_PER_SERVER_SLOT),
        },
        "client slots are cheap in PgBouncer (a socket and a few kB each), so size the client side an order of magnitude above the server side; its open-file limit (ulimit -n) must exceed max_client_conn + the server connections"));
    t.push(term(
        "recommendation",
        "headroom",
        Some(p.headroom),
        "×",
        if p.headroom == 1.5 {
            "default 1.5 (parameter headroom)"
        } else {
            "parameter headroom"
        },
        "the multiplier applied to measured demand, to max_connections and to the client side",
    ));

    // summary / table / verdict are what capstone.report() renders for a capture
    let summary = format!(
        "default_pool_size {} per pool ({} pool(s), basis {}), max_connections {}, max_client_conn {}: λ = {} xact/s over {:.1} s, L_busy = {}, core bound {} ({cores} cores × {}).",
        plan.default_pool_size,
        pools,
        plan.basis.as_str(),
        plan.max_connections,
        plan.max_client_conn,
        fmt1(lambda),
        seconds,
        fmt1(l_busy),
        bound,
        p.core_factor
    );
    let table: Vec<Value> = t
        .iter()
        .map(|x| json!({"term": x.term, "value": x.value, "unit": x.unit, "source": x.source}))
        .collect();
    let payload = json!({
        "summary": summary,
        "table": table,
        "verdict": format!("recommended default_pool_size {} ({})", plan.default_pool_size, plan.basis.as_str()),
        "terms": t.iter().map(term_json).collect::<Vec<_>>(),
        "recommendation": plan_json(&plan),
        "window": {
            "seconds": seconds, "samples": samples.len(), "tick_ms": tick.as_millis() as u64,
            "transactions": xacts, "statements": calls, "exec_ms": exec_ms,
            "l_active": l_active, "l_busy": l_busy, "peak_clients": peak_clients,
            "pools": pool_keys.iter().collect::<Vec<_>>(), "cpu_busy": cpu_busy,
        },
        "pg_stat_statements": match &pgss { Ok(s) => json!({"schema": s}), Err(w) => json!({"missing": w}) },
    });
    let settings_json = json!({
        "work_mem": settings.work_mem, "shared_buffers": settings.shared_buffers,
        "hash_mem_multiplier": settings.hash_mem_multiplier,
        "max_connections": settings.max_connections,
        "cores": cores, "core_factor": p.core_factor, "headroom": p.headroom,
        "nodes_per_query": p.nodes,
    });
    let evidence_id = crate::infra::evidence::store(
        crate::infra::evidence::Gate::Pooling,
        Some("pool_size"),
        None,
        settings_json,
        payload,
    );
    Sizing {
        terms: t,
        plan,
        evidence_id,
    }
}

fn term_json(t: &Term) -> Value {
    json!({
        "section": t.section, "term": t.term, "value": t.value, "unit": t.unit,
        "source": t.source, "explanation": t.explanation,
    })
}

fn plan_json(p: &math::Plan) -> Value {
    json!({
        "basis": p.basis.as_str(),
        "default_pool_size": p.default_pool_size,
        "server_connections": p.server_connections,
        "max_connections": p.max_connections,
        "max_client_conn": p.max_client_conn,
        "demand": p.demand,
        "memory_capped": p.memory_capped,
    })
}

/// Pool sizing from concurrency math, one row per term. Samples the server for
/// `sample` (default 10 s) before answering.
#[pg_extern(volatile, parallel_unsafe)]
fn pool_size(
    sample: default!(Option<Interval>, "'10 s'"),
    cores: default!(Option<i32>, "NULL"),
    headroom: default!(Option<f64>, 1.5),
    core_factor: default!(Option<f64>, 2.0),
    nodes_per_query: default!(Option<i32>, 2),
    clients: default!(Option<i32>, "NULL"),
    require_statements: default!(Option<bool>, false),
) -> TableIterator<
    'static,
    (
        name!(section, String),
        name!(term, String),
        name!(value, Option<f64>),
        name!(unit, String),
        name!(source, String),
        name!(explanation, String),
    ),
> {
    let p = validate(
        sample,
        cores,
        headroom,
        core_factor,
        nodes_per_query,
        clients,
        require_statements,
    );
    let s = compute(&p);
    let mut rows: Vec<_> = s
        .terms
        .into_iter()
        .map(|t| {
            (
                t.section.to_string(),
                t.term.to_string(),
                t.value,
                t.unit.to_string(),
                t.source,
                t.explanation,
            )
        })
        .collect();
    rows.push((
        "recommendation".into(),
        "evidence_id".into(),
        Some(s.evidence_id as f64),
        "id".into(),
        "capstone.evidence".into(),
        "every term above, the samples and the settings, stored with gate 'pooling'".into(),
    ));
    TableIterator::new(rows)
}

/// The same sizing as one jsonb document: {recommendation, terms, evidence_id}.
#[pg_extern(volatile, parallel_unsafe)]
fn pool_size_json(
    sample: default!(Option<Interval>, "'10 s'"),
    cores: default!(Option<i32>, "NULL"),
    headroom: default!(Option<f64>, 1.5),
    core_factor: default!(Option<f64>, 2.0),
    nodes_per_query: default!(Option<i32>, 2),
    clients: default!(Option<i32>, "NULL"),
    require_statements: default!(Option<bool>, false),
) -> JsonB {
    let p = validate(
        sample,
        cores,
        headroom,
        core_factor,
        nodes_per_query,
        clients,
        require_statements,
    );
    let s = compute(&p);
    JsonB(json!({
        "recommendation": plan_json(&s.plan),
        "terms": s.terms.iter().map(term_json).collect::<Vec<_>>(),
        "evidence_id": s.evidence_id,
    }))
}

// ---------------------------------------------------------------- pooling_audit

/// One audit row.
#[derive(Debug, Clone)]
struct AuditRow {
    issue: String,
    risk: String,
    evidence: String,
    query: Option<String>,
    calls: Option<i64>,
    fix: String,
}

const PROTOCOL_FIX: &str = "named protocol-level prepared statements need PgBouncer 1.21+ with max_prepared_statements > 0; PgBouncer before 1.21 (this lab runs 1.18) hands the next Bind to a backend that never saw the Parse. There, use unnamed statements: JDBC prepareThreshold=0, pgx default_query_exec_mode=exec or simple_protocol, asyncpg statement_cache_size=0, psycopg 3 prepare_threshold=None, pgbench -M extended";

fn pgss_findings(schema: &str, all_databases: bool, rows: &mut Vec<AuditRow>) {
    let sql = format!(
        "SELECT query, sum(calls)::bigint
           FROM {}.pg_stat_statements
          WHERE $1 OR dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
          GROUP BY query",
        pgrx::spi::quote_identifier(schema)
    );
    let stmts: Vec<(String, i64)> = Spi::connect(|c| {
        let t = c.select(&sql, None, &[all_databases.into()])?;
        let mut v = Vec::new();
        for r in t {
            v.push((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<i64>(2)?.unwrap_or(0),
            ));
        }
        Ok::<_, pgrx::spi::Error>(v)
    })
    .unwrap_or_else(|e| {
        CapstoneError::PrerequisiteState(format!("could not read pg_stat_statements: {e}")).raise()
    });
    // One finding per (issue, risk, what): statements that differ only in their
    // constants (or in how a server version normalises them) are one finding,
    // shown by its most-called statement.
    let mut hidden = 0i64;
    let mut found: BTreeMap<(String, String, String), (i64, i64, i64, String)> = BTreeMap::new();
    for (q, calls) in &stmts {
        if q == "<insufficient privilege>" {
            hidden += 1;
            continue;
        }
        for f in audit::classify(q) {
            let e = found
                .entry((f.issue.name().to_string(), f.risk.to_string(), f.what))
                .or_insert((0, 0, -1, String::new()));
            e.0 += calls;
            e.1 += 1;
            if *calls > e.2 || (*calls == e.2 && q.as_str() < e.3.as_str()) {
                e.2 = *calls;
                e.3 = q.clone();
            }
        }
    }
    for ((issue, risk, what), (calls, statements, _, example)) in found {
        let fix = [
            audit::Issue::SessionSet,
            audit::Issue::SetRole,
            audit::Issue::SetConfig,
            audit::Issue::Listen,
            audit::Issue::SessionAdvisoryLock,
            audit::Issue::WithHoldCursor,
            audit::Issue::TempTable,
            audit::Issue::SqlPrepare,
        ]
        .into_iter()
        .find(|i| i.name() == issue)
        .map(|i| i.fix())
        .unwrap_or_default();
        rows.push(AuditRow {
            issue,
            risk,
            evidence: format!(
                "{what} — {calls} call(s) in {statements} statement(s) recorded by pg_stat_statements; query shows the most-called"
            ),
            query: Some(audit::excerpt(&example, 200)),
            calls: Some(calls),
            fix: fix.to_string(),
        });
    }
    if hidden > 0 {
        rows.push(AuditRow {
            issue: "query_text_hidden".into(),
            risk: "check".into(),
            evidence: format!("{hidden} statement(s) of other roles show <insufficient privilege> instead of their text and were not audited"),
            query: None,
            calls: None,
            fix: "run the audit as a member of pg_read_all_stats (or a superuser)".into(),
        });
    }

    // Protocol-level prepared statements leave no text of their own. With plan
    // tracking on, a statement executed far more often than it was planned is
    // running from a cached plan: a named prepared statement.
    let tracking = Spi::get_one::<String>(
        "SELECT pg_catalog.current_setting('pg_stat_statements.track_planning', true)",
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    if tracking == "on" {
        let sql = format!(
            "SELECT query, sum(calls)::bigint, sum(plans)::bigint
               FROM {}.pg_stat_statements
              WHERE toplevel AND ($1 OR dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()))
              GROUP BY query
             HAVING sum(plans) > 0 AND sum(calls) >= 10 AND sum(calls) >= 2 * sum(plans)
              ORDER BY sum(calls) DESC LIMIT 20",
            pgrx::spi::quote_identifier(schema)
        );
        let reused: Vec<(String, i64, i64)> = Spi::connect(|c| {
            let t = c.select(&sql, None, &[all_databases.into()])?;
            let mut v = Vec::new();
            for r in t {
                v.push((
                    r.get::<String>(1)?.unwrap_or_default(),
                    r.get::<i64>(2)?.unwrap_or(0),
                    r.get::<i64>(3)?.unwrap_or(0),
                ));
            }
            Ok::<_, pgrx::spi::Error>(v)
        })
        .unwrap_or_default();
        let mut any = false;
        for (q, calls, plans) in reused {
            if q.trim_start().to_ascii_lowercase().starts_with("prepare") {
                continue; // SQL-level PREPARE is reported above
            }
            any = true;
            rows.push(AuditRow {
                issue: "protocol_prepare".into(),
                risk: "high".into(),
                evidence: format!("executed {calls} times but planned only {plans}: runs from a cached plan, i.e. a named (protocol-level) prepared statement"),
                query: Some(audit::excerpt(&q, 200)),
                calls: Some(calls),
                fix: PROTOCOL_FIX.into(),
            });
        }
        if !any {
            rows.push(AuditRow {
                issue: "protocol_prepare".into(),
                risk: "low".into(),
                evidence: "pg_stat_statements.track_planning = on and no top-level statement ran from a cached plan (calls ≥ 2 × plans)".into(),
                query: None,
                calls: None,
                fix: PROTOCOL_FIX.into(),
            });
        }
    } else {
        rows.push(AuditRow {
            issue: "protocol_prepare".into(),
            risk: "check".into(),
            evidence: "not visible: pg_stat_statements keeps the same text for a statement whether it was sent unnamed or as a named prepared statement; with pg_stat_statements.track_planning = on, statements executed far more often than planned would show up here".into(),
            query: None,
            calls: None,
            fix: PROTOCOL_FIX.into(),
        });
    }
}

fn catalog_findings(all_databases: bool, rows: &mut Vec<AuditRow>) {
    // A backend that holds an advisory lock while idle outside any transaction
    // holds it at session level: proof, not a pattern match.
    let locks: Vec<(i32, String, String, i64)> = Spi::connect(|c| {
        let t = c.select(
            "SELECT a.pid, coalesce(a.usename::text, '?'), coalesce(a.datname::text, '?'), count(*)::bigint
               FROM pg_catalog.pg_locks l
               JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND l.granted AND a.state = 'idle'
                AND a.pid <> pg_catalog.pg_backend_pid()
                AND ($1 OR a.datname = pg_catalog.current_database())
              GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1 LIMIT 20",
            None,
            &[all_databases.into()],
        )?;
        let mut v = Vec::new();
        for r in t {
            v.push((
                r.get::<i32>(1)?.unwrap_or(0),
                r.get::<String>(2)?.unwrap_or_default(),
                r.get::<String>(3)?.unwrap_or_default(),
                r.get::<i64>(4)?.unwrap_or(0),
            ));
        }
        Ok::<_, pgrx::spi::Error>(v)
    })
    .unwrap_or_default();
    for (pid, user, db, n) in locks {
        rows.push(AuditRow {
            issue: audit::Issue::SessionAdvisoryLock.name().into(),
            risk: "high".into(),
            evidence: format!("backend {pid} ({user}@{db}) holds {n} advisory lock(s) while idle outside a transaction (pg_locks): session-level, held right now"),
            query: None,
            calls: None,
            fix: audit::Issue::SessionAdvisoryLock.fix().into(),
        });
    }

    // Temporary tables that exist now, in any session of this database.
    let temp = Spi::get_two::<i64, i64>(
        "SELECT count(*)::bigint, count(DISTINCT c.relnamespace)::bigint
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relpersistence = 't' AND c.relkind IN ('r', 'p')
            AND n.nspname LIKE 'pg\\_temp\\_%'",
    )
    .unwrap_or((None, None));
    if let (Some(tables), Some(sessions)) = temp {
        if tables > 0 {
            rows.push(AuditRow {
                issue: audit::Issue::TempTable.name().into(),
                risk: "high".into(),
                evidence: format!("{tables} temporary table(s) exist right now in {sessions} session temp schema(s) of this database (pg_class)"),
                query: None,
                calls: None,
                fix: audit::Issue::TempTable.fix().into(),
            });
        }
    }

    // Idle-in-transaction sessions pin a server connection for as long as they idle.
    let idle = Spi::get_two::<i64, f64>(
        "SELECT count(*)::bigint,
                coalesce(max(extract(epoch FROM pg_catalog.clock_timestamp() - state_change)), 0)::float8
           FROM pg_catalog.pg_stat_activity
          WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')
            AND backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()",
    )
    .unwrap_or((None, None));
    if let (Some(n), Some(longest)) = idle {
        if n > 0 {
            rows.push(AuditRow {
                issue: "idle_in_transaction".into(),
                risk: "medium".into(),
                evidence: format!("{n} session(s) idle inside an open transaction right now, the longest for {longest:.1} s (pg_stat_activity)"),
                query: None,
                calls: None,
                fix: "in transaction mode an open transaction pins its server connection however long the client idles: set idle_in_transaction_session_timeout and commit before doing slow client-side work".into(),
            });
        }
    }
}

/// What transaction pooling breaks for this workload: one row per finding.
#[pg_extern(volatile, parallel_unsafe)]
fn pooling_audit(
    all_databases: default!(Option<bool>, false),
) -> TableIterator<
    'static,
    (
        name!(issue, String),
        name!(risk, String),
        name!(evidence, String),
        name!(query, Option<String>),
        name!(calls, Option<i64>),
        name!(fix, String),
    ),
> {
    let all = all_databases.unwrap_or(false);
    let mut rows: Vec<AuditRow> = Vec::new();
    match pgss_schema() {
        Ok(schema) => pgss_findings(&schema, all, &mut rows),
        Err(why) => {
            notice_with_hint(
                format!("{why}: the audit sees only what the catalog shows right now"),
                PGSS_HINT,
            );
            rows.push(AuditRow {
                issue: "pg_stat_statements_missing".into(),
                risk: "check".into(),
                evidence: format!("{why}; statement history (session SET, LISTEN, advisory locks, WITH HOLD cursors, temp tables, PREPARE) cannot be audited"),
                query: None,
                calls: None,
                fix: PGSS_HINT.into(),
            });
            rows.push(AuditRow {
                issue: "protocol_prepare".into(),
                risk: "check".into(),
                evidence: "not measurable without pg_stat_statements (and its track_planning)"
                    .into(),
                query: None,
                calls: None,
                fix: PROTOCOL_FIX.into(),
            });
        }
    }
    catalog_findings(all, &mut rows);
    rows.sort_by(|a, b| {
        audit::risk_rank(&a.risk)
            .cmp(&audit::risk_rank(&b.risk))
            .then_with(|| a.issue.cmp(&b.issue))
            .then_with(|| b.calls.unwrap_or(-1).cmp(&a.calls.unwrap_or(-1)))
            .then_with(|| a.query.cmp(&b.query))
    });
    let high = rows.iter().filter(|r| r.risk == "high").count();
    let payload = json!({
        "summary": format!("{} finding(s), {high} of high risk, for transaction pooling", rows.len()),
        "verdict": format!("{} pooling audit finding(s), {high} high", rows.len()),
        "table": rows.iter().map(|r| json!({
            "issue": r.issue, "risk": r.risk, "calls": r.calls, "evidence": r.evidence,
        })).collect::<Vec<_>>(),
        "all_databases": all,
        "findings": rows.iter().map(|r| json!({
            "issue": r.issue, "risk": r.risk, "evidence": r.evidence,
            "query": r.query, "calls": r.calls,
        })).collect::<Vec<_>>(),
    });
    crate::infra::evidence::store(
        crate::infra::evidence::Gate::Pooling,
        Some("pooling_audit"),
        None,
        json!({}),
        payload,
    );
    TableIterator::new(
        rows.into_iter()
            .map(|r| (r.issue, r.risk, r.evidence, r.query, r.calls, r.fix)),
    )
}

// ---------------------------------------------------------------- pgbouncer_stats

/// SHOW POOLS columns by count, for the layouts known (1.18+ kept the first 16).
fn pools_columns(n: usize) -> Vec<String> {
    const V118: [&str; 17] = [
        "database",
        "user",
        "cl_active",
        "cl_waiting",
        "cl_active_cancel_req",
        "cl_waiting_cancel_req",
        "sv_active",
        "sv_active_cancel",
        "sv_being_canceled",
        "sv_idle",
        "sv_used",
        "sv_tested",
        "sv_login",
        "maxwait",
        "maxwait_us",
        "pool_mode",
        "load_balance_hosts",
    ];
    const V116: [&str; 13] = [
        "database",
        "user",
        "cl_active",
        "cl_waiting",
        "cl_cancel_req",
        "sv_active",
        "sv_idle",
        "sv_used",
        "sv_tested",
        "sv_login",
        "maxwait",
        "maxwait_us",
        "pool_mode",
    ];
    let known: &[&str] = match n {
        13 => &V116,
        16 | 17 => &V118[..n],
        _ => &["database", "user"],
    };
    (0..n)
        .map(|i| {
            known
                .get(i)
                .map(|s| s.to_string())
                .unwrap_or(format!("column_{}", i + 1))
        })
        .collect()
}

/// SHOW STATS columns by count (the 15-column layout of 1.8 through 1.22).
fn stats_columns(n: usize) -> Vec<String> {
    const V15: [&str; 15] = [
        "database",
        "total_xact_count",
        "total_query_count",
        "total_received",
        "total_sent",
        "total_xact_time",
        "total_query_time",
        "total_wait_time",
        "avg_xact_count",
        "avg_query_count",
        "avg_recv",
        "avg_sent",
        "avg_xact_time",
        "avg_query_time",
        "avg_wait_time",
    ];
    let known: &[&str] = if n == 15 { &V15 } else { &["database"] };
    (0..n)
        .map(|i| {
            known
                .get(i)
                .map(|s| s.to_string())
                .unwrap_or(format!("column_{}", i + 1))
        })
        .collect()
}

/// Run an admin-console command through dblink with `n` text columns.
/// Ok(None) when the column count does not match (SQLSTATE 42804).
fn admin_query(
    dblink: &str,
    conninfo: &str,
    command: &str,
    n: usize,
) -> Result<Option<Vec<Vec<Option<String>>>>, Box<pgrx::pg_sys::panic::CaughtError>> {
    let cols = (1..=n)
        .map(|i| format!("c{i} text"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT * FROM {}.dblink($1, $2) AS t({cols})",
        pgrx::spi::quote_identifier(dblink)
    );
    let r = subxact::run(Outcome::Commit, || {
        Spi::connect(|c| {
            let t = c.select(&sql, None, &[conninfo.into(), command.into()])?;
            let mut rows = Vec::new();
            for r in t {
                let mut row = Vec::with_capacity(n);
                for i in 1..=n {
                    row.push(r.get::<String>(i)?);
                }
                rows.push(row);
            }
            Ok::<_, pgrx::spi::Error>(rows)
        })
    });
    match r {
        Ok(Ok(rows)) => Ok(Some(rows)),
        Ok(Err(e)) => {
            CapstoneError::PrerequisiteState(format!("could not read {command}: {e}")).raise()
        }
        Err(e) => {
            let (state, _) = subxact::describe(&e);
            if state == "42804" {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// Find the column count of an admin command by trying the likely ones first.
fn admin_probe(
    dblink: &str,
    conninfo: &str,
    command: &str,
    likely: &[usize],
) -> (usize, Vec<Vec<Option<String>>>) {
    let mut order: Vec<usize> = likely.to_vec();
    order.extend((2..=40).filter(|n| !likely.contains(n)));
    for n in order {
        match admin_query(dblink, conninfo, command, n) {
            Ok(Some(rows)) => return (n, rows),
            Ok(None) => continue,
            Err(e) => (*e).rethrow(),
        }
    }
    CapstoneError::NotSupported(format!(
        "PgBouncer's {command} returned more than 40 columns"
    ))
    .raise_hint("read it with psql against the admin console")
}

/// SHOW POOLS and SHOW STATS of a PgBouncer admin console, one row per metric.
#[pg_extern(volatile, parallel_unsafe)]
fn pgbouncer_stats(
    conninfo: Option<String>,
) -> TableIterator<
    'static,
    (
        name!(source, String),
        name!(database, Option<String>),
        name!(username, Option<String>),
        name!(metric, String),
        name!(value, Option<String>),
    ),
> {
    let conninfo = required(conninfo, "conninfo");
    let dblink = Spi::get_one::<String>(
        "SELECT n.nspname::text FROM pg_catalog.pg_extension e
           JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
          WHERE e.extname = 'dblink'",
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| {
        CapstoneError::NotSupported("capstone.pgbouncer_stats needs the dblink extension".into())
            .raise_with(
                "PgBouncer's admin console is reached over a client connection, and capstone opens it with dblink (simple-query protocol, which the console requires)",
                "CREATE EXTENSION dblink; it ships with PostgreSQL's contrib modules. Or read the console with psql: psql -p 6432 -d pgbouncer -c 'SHOW POOLS'",
            )
    });
    // A PostgreSQL server has no SHOW VERSION; a PgBouncer console does.
    let version = match admin_query(&dblink, &conninfo, "SHOW VERSION", 1) {
        Ok(Some(rows)) => rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .unwrap_or_default(),
        Ok(None) => String::new(),
        Err(e) => {
            // 42704 "unrecognized configuration parameter": a PostgreSQL server answered.
            // Anything else (cannot connect, authentication, dblink's own checks) keeps
            // its SQLSTATE and message.
            let (state, msg) = subxact::describe(&e);
            if state != "42704" {
                (*e).rethrow()
            }
            CapstoneError::InvalidParameter(format!(
                "conninfo does not lead to a PgBouncer admin console (SHOW VERSION failed: {msg})"
            ))
            .raise_hint("connect to PgBouncer's virtual database pgbouncer as a user listed in admin_users or stats_users, e.g. 'host=127.0.0.1 port=6432 dbname=pgbouncer user=postgres'")
        }
    };
    if !version.starts_with("PgBouncer") {
        CapstoneError::InvalidParameter(format!(
            "conninfo does not lead to a PgBouncer admin console (SHOW VERSION said \"{version}\")"
        ))
        .raise_hint("connect to PgBouncer's virtual database pgbouncer, e.g. 'host=127.0.0.1 port=6432 dbname=pgbouncer user=postgres'");
    }
    let mut out: Vec<(
        String,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
    )> = vec![(
        "version".into(),
        None,
        None,
        "version".into(),
        Some(version),
    )];
    let (n, rows) = admin_probe(&dblink, &conninfo, "SHOW POOLS", &[16, 17, 13]);
    let names = pools_columns(n);
    for r in &rows {
        let db = r.first().cloned().flatten();
        let user = r.get(1).cloned().flatten();
        for (i, v) in r.iter().enumerate().skip(2) {
            out.push((
                "pools".into(),
                db.clone(),
                user.clone(),
                names[i].clone(),
                v.clone(),
            ));
        }
    }
    let (n, rows) = admin_probe(&dblink, &conninfo, "SHOW STATS", &[15, 17]);
    let names = stats_columns(n);
    for r in &rows {
        let db = r.first().cloned().flatten();
        for (i, v) in r.iter().enumerate().skip(1) {
            out.push((
                "stats".into(),
                db.clone(),
                None,
                names[i].clone(),
                v.clone(),
            ));
        }
    }
    TableIterator::new(out)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn quiet_server_falls_back_to_the_core_bound() {
        // Other backends of the test cluster flush their statistics late (up to 10 s
        // after going idle), so a short sample is usually, not always, quiet: judge the
        // outcome by the count the function itself measured.
        let (pool, bound, xacts, says) = Spi::connect(|c| {
            let t = c.select(
                "SELECT max(value) FILTER (WHERE term = 'default_pool_size'),
                        max(value) FILTER (WHERE term = 'core_bound'),
                        max(value) FILTER (WHERE term = 'transactions'),
                        max(explanation) FILTER (WHERE term = 'transactions')
                   FROM capstone.pool_size(sample => '200 ms', cores => 3)",
                Some(1),
                &[],
            )?;
            let r = t.first();
            Ok::<_, pgrx::spi::Error>((
                r.get::<f64>(1)?,
                r.get::<f64>(2)?,
                r.get::<f64>(3)?,
                r.get::<String>(4)?,
            ))
        })
        .unwrap();
        // 3 cores × 2 = 6
        assert_eq!(bound, Some(6.0));
        let says = says.unwrap_or_default();
        if xacts.unwrap_or(0.0) < crate::pooling::math::MIN_TRANSACTIONS {
            assert_eq!(
                pool,
                Some(6.0),
                "too small a sample falls back to the core bound"
            );
            assert!(says.starts_with("the sample is too small"), "{says}");
        } else {
            assert!(says.contains("λ is measured"), "{says}");
        }
    }

    #[pg_test]
    fn json_variant_and_evidence() {
        let (basis, id) = Spi::get_two::<String, i64>(
            "SELECT j -> 'recommendation' ->> 'basis', (j ->> 'evidence_id')::bigint
               FROM capstone.pool_size_json(sample => '100 ms', cores => 2) j",
        )
        .unwrap();
        assert_eq!(basis.as_deref(), Some("quiet_fallback"));
        let label = Spi::get_one_with_args::<String>(
            "SELECT label FROM capstone.evidence WHERE gate = 'pooling' AND id = $1",
            &[id.unwrap().into()],
        )
        .unwrap();
        assert_eq!(label.as_deref(), Some("pool_size"));
    }

    #[pg_test]
    fn every_section_is_written_out() {
        let sections = Spi::get_one::<String>(
            "SELECT string_agg(DISTINCT section, ',' ORDER BY section)
               FROM capstone.pool_size(sample => '50 ms')",
        )
        .unwrap();
        assert_eq!(
            sections.as_deref(),
            Some("cores,littles_law,memory,recommendation")
        );
    }

    #[pg_test(error = "sample must be greater than 0 and at most 1 hour (got 0 s)")]
    fn zero_sample() {
        Spi::run("SELECT * FROM capstone.pool_size(sample => '0 s')").unwrap();
    }

    #[pg_test(error = "sample must be greater than 0 and at most 1 hour (got -1 s)")]
    fn negative_sample() {
        Spi::run("SELECT * FROM capstone.pool_size(sample => '-1 s')").unwrap();
    }

    #[pg_test(error = "cores must be between 1 and 4096 (got 0)")]
    fn zero_cores() {
        Spi::run("SELECT * FROM capstone.pool_size(sample => '1 s', cores => 0)").unwrap();
    }

    #[pg_test(error = "cores must be between 1 and 4096 (got -4)")]
    fn negative_cores() {
        Spi::run("SELECT capstone.pool_size_json(cores => -4)").unwrap();
    }

    #[pg_test(error = "headroom must be between 1 and 10 (got 0.5)")]
    fn headroom_below_one() {
        Spi::run("SELECT * FROM capstone.pool_size(sample => '1 s', headroom => 0.5)").unwrap();
    }

    #[pg_test(error = "sample must not be NULL")]
    fn null_sample() {
        Spi::run("SELECT * FROM capstone.pool_size(sample => NULL)").unwrap();
    }

    #[pg_test]
    fn audit_flags_session_state() {
        Spi::run("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").unwrap();
        Spi::run("SELECT pg_stat_statements_reset()").unwrap();
        // SPI statements are nested: pg_stat_statements records them with track = 'all'
        Spi::run("SET pg_stat_statements.track = 'all'").unwrap();
        Spi::run("SET search_path = public, capstone").unwrap();
        Spi::run("SET LOCAL work_mem = '8MB'").unwrap();
        Spi::run("SELECT pg_advisory_lock(4242)").unwrap();
        Spi::run("SELECT pg_advisory_xact_lock(4243)").unwrap();
        Spi::run("SELECT pg_advisory_unlock(4242)").unwrap();
        Spi::run("CREATE TEMP TABLE audit_tmp (a int)").unwrap();
        let issues = Spi::get_one::<String>(
            "SELECT string_agg(DISTINCT issue, ',' ORDER BY issue) FROM capstone.pooling_audit()",
        )
        .unwrap()
        .unwrap_or_default();
        assert!(issues.contains("session_advisory_lock"), "{issues}");
        assert!(issues.contains("session_set"), "{issues}");
        assert!(issues.contains("temp_table"), "{issues}");
        assert!(issues.contains("protocol_prepare"), "{issues}");
        // SET LOCAL and the _xact_ lock are fine in transaction mode
        let local = Spi::get_one::<i64>(
            "SELECT count(*) FROM capstone.pooling_audit()
              WHERE query ILIKE '%set local%' OR query ILIKE '%xact_lock%'",
        )
        .unwrap();
        assert_eq!(local, Some(0));
    }

    #[pg_test(error = "capstone.pgbouncer_stats needs the dblink extension")]
    fn pgbouncer_stats_without_dblink() {
        Spi::run(
            "SELECT * FROM capstone.pgbouncer_stats('host=127.0.0.1 port=1 dbname=pgbouncer')",
        )
        .unwrap();
    }

    #[pg_test(error = "conninfo must not be NULL")]
    fn pgbouncer_stats_null_conninfo() {
        Spi::run("SELECT * FROM capstone.pgbouncer_stats(NULL)").unwrap();
    }

    #[pg_test]
    fn pgbouncer_stats_rejects_a_postgres_server() {
        // The PyPI PostgreSQL 17/18 trees ship a dblink.so whose RUNPATH misses the
        // tree's own libpq, so it only loads with LD_LIBRARY_PATH set for the server.
        let created = crate::infra::subxact::run(crate::infra::subxact::Outcome::Commit, || {
            Spi::run("CREATE EXTENSION IF NOT EXISTS dblink")
        });
        if let Err(e) = created {
            let (_, msg) = crate::infra::subxact::describe(&e);
            assert!(msg.contains("could not load library"), "{msg}");
            pgrx::warning!("dblink cannot be loaded on this server, test skipped: {msg}");
            return;
        }
        let port = Spi::get_one::<String>("SHOW port").unwrap().unwrap();
        let sock = Spi::get_one::<String>(
            "SELECT split_part(current_setting('unix_socket_directories'), ',', 1)",
        )
        .unwrap()
        .unwrap();
        let conninfo = format!(
            "host={sock} port={port} dbname=pgrx_tests user={}",
            whoami()
        );
        let r = crate::infra::subxact::run(crate::infra::subxact::Outcome::Rollback, || {
            Spi::run_with_args(
                "SELECT * FROM capstone.pgbouncer_stats($1)",
                &[conninfo.as_str().into()],
            )
        });
        let e = r.expect_err("a PostgreSQL server is not a PgBouncer console");
        let (state, msg) = crate::infra::subxact::describe(&e);
        assert_eq!(state, "22023", "{msg}");
        assert!(
            msg.starts_with("conninfo does not lead to a PgBouncer admin console"),
            "{msg}"
        );
    }

    fn whoami() -> String {
        Spi::get_one::<String>("SELECT current_user::text")
            .unwrap()
            .unwrap_or_default()
    }
}
