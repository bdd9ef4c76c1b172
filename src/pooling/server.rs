//! What the pool sizing reads from the server and the host: settings, whether
//! pg_stat_statements can be read, cumulative counters, pg_stat_activity samples, and
//! cores / RAM / backend overhead from /proc. Reads only; no sizing arithmetic here.

use super::math;
use crate::infra::error::{CapstoneError, Result};
use crate::infra::spi::{optional_row, read_failed};
use crate::infra::subxact::{self, Outcome};
use crate::infra::worker::wait_latch;
use pgrx::prelude::*;
use std::time::{Duration, Instant};

/// Per-backend overhead assumed when /proc/self/smaps_rollup cannot be read.
const DEFAULT_BACKEND_OVERHEAD: u64 = 8 * 1024 * 1024;

/// Settings the sizing reads, in bytes where they are sizes.
pub struct Settings {
    pub work_mem: u64,
    pub hash_mem_multiplier: f64,
    pub shared_buffers: u64,
    pub max_connections: u32,
    pub reserved_slots: u32,
    pub huge_pages: bool,
    pub huge_pages_source: String,
}

/// The settings, as one row; 55000 when they cannot be read.
pub fn read_settings() -> Result<Settings> {
    let row = optional_row(
        "SELECT pg_catalog.pg_size_bytes(pg_catalog.current_setting('work_mem'))::float8,
                pg_catalog.current_setting('hash_mem_multiplier')::float8,
                pg_catalog.pg_size_bytes(pg_catalog.current_setting('shared_buffers'))::float8,
                pg_catalog.current_setting('max_connections')::int,
                pg_catalog.current_setting('superuser_reserved_connections')::int
                  + coalesce(pg_catalog.current_setting('reserved_connections', true), '0')::int,
                pg_catalog.current_setting('huge_pages'),
                pg_catalog.current_setting('huge_pages_status', true)",
        &[],
        |row| {
            let status: Option<String> = row.get(7)?;
            let setting: String = row.get(6)?.unwrap_or_default();
            let (huge, source) = match status.as_deref() {
                Some(s) => (s == "on", format!("huge_pages_status = {s}")),
                None => (
                    setting == "on",
                    format!("huge_pages = {setting} (huge_pages_status needs PostgreSQL 17+; 'try' counts as off)"),
                ),
            };
            Ok(Settings {
                work_mem: row.get::<f64>(1)?.unwrap_or(4.0 * 1024.0 * 1024.0) as u64,
                hash_mem_multiplier: row.get::<f64>(2)?.unwrap_or(2.0),
                shared_buffers: row.get::<f64>(3)?.unwrap_or(0.0) as u64,
                max_connections: row.get::<i32>(4)?.unwrap_or(100).max(0) as u32,
                reserved_slots: row.get::<i32>(5)?.unwrap_or(3).max(0) as u32,
                huge_pages: huge,
                huge_pages_source: source,
            })
        },
    )
    .map_err(read_failed("server settings"))?;
    row.ok_or_else(|| {
        CapstoneError::PrerequisiteState("could not read server settings: no row".into()).into()
    })
}

/// Where pg_stat_statements can be read from, or why it cannot.
pub fn pgss_schema() -> Result<String, String> {
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

pub const PGSS_HINT: &str = "add pg_stat_statements to shared_preload_libraries (restart), then CREATE EXTENSION pg_stat_statements in this database";

/// Cumulative counters at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Counters {
    pub xacts: f64,
    pub calls: Option<f64>,
    pub exec_ms: Option<f64>,
    pub cpu: Option<(u64, u64)>,
    pub at: Instant,
}

pub fn read_counters(pgss: Option<&str>) -> Counters {
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
pub struct Sample {
    pub active: u32,
    pub idle_in_xact: u32,
    pub clients: u32,
    pub hidden: u32,
    pub pools: Vec<String>,
}

pub fn sample_activity() -> Sample {
    let _ = Spi::run("SELECT pg_catalog.pg_stat_clear_snapshot()");
    optional_row(
        "SELECT count(*) FILTER (WHERE state IN ('active', 'fastpath function call'))::int,
                count(*) FILTER (WHERE state IN ('idle in transaction', 'idle in transaction (aborted)'))::int,
                count(*)::int,
                count(*) FILTER (WHERE state IS NULL)::int,
                pg_catalog.string_agg(DISTINCT datname || '/' || usename, E'\\n')
                  FILTER (WHERE state IN ('active', 'fastpath function call',
                                          'idle in transaction', 'idle in transaction (aborted)'))
           FROM pg_catalog.pg_stat_activity
          WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()",
        &[],
        |r| {
            Ok(Sample {
                active: r.get::<i32>(1)?.unwrap_or(0).max(0) as u32,
                idle_in_xact: r.get::<i32>(2)?.unwrap_or(0).max(0) as u32,
                clients: r.get::<i32>(3)?.unwrap_or(0).max(0) as u32,
                hidden: r.get::<i32>(4)?.unwrap_or(0).max(0) as u32,
                pools: r
                    .get::<String>(5)?
                    .map(|s| s.lines().map(str::to_string).collect())
                    .unwrap_or_default(),
            })
        },
    )
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// Sleep on our latch, interruptibly (a cancel or terminate ends the call).
pub fn nap(d: Duration) {
    wait_latch(d.as_millis().max(1) as i64);
    check_for_interrupts!();
}

pub fn detect_cores() -> (u32, String) {
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
pub fn detect_ram() -> (Option<u64>, String) {
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
pub fn detect_backend_overhead() -> (u64, String) {
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
