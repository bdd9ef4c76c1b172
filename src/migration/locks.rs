//! Lock evidence: who holds and who waits for which lock (one SPI read of pg_locks and
//! pg_stat_activity), and the sampling behind `lock_watch` with the evidence it stores.
//! It only reads and records; it never cancels or terminates a session.

use super::worker;
use pgrx::prelude::*;
use serde_json::json;
use std::time::{Duration, Instant};

const LOCK_SNAPSHOT_SQL: &str = "
SELECT a.pid, a.usename::text, l.mode, coalesce(l.relation::regclass::text, l.locktype), l.granted,
       CASE WHEN l.granted THEN NULL ELSE round(extract(epoch FROM clock_timestamp() - a.state_change)::numeric * 1000, 1)::float8 END,
       pg_catalog.pg_blocking_pids(a.pid),
       (SELECT count(*) FROM pg_catalog.pg_stat_activity w WHERE a.pid = ANY (pg_catalog.pg_blocking_pids(w.pid)))::int,
       left(a.query, 200),
       EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity d
                WHERE d.pid = ANY (pg_catalog.pg_blocking_pids(a.pid)) AND d.query ILIKE '%capstone.safe_ddl%')
  FROM pg_catalog.pg_locks l
  JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype IN ('relation', 'transactionid', 'tuple', 'advisory', 'object')
   AND a.pid <> pg_backend_pid()
   AND (NOT l.granted OR l.mode IN ('AccessExclusiveLock', 'ExclusiveLock', 'ShareRowExclusiveLock', 'ShareLock')
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity w WHERE a.pid = ANY (pg_catalog.pg_blocking_pids(w.pid))))
 ORDER BY l.granted, 6 DESC NULLS LAST, a.pid";

/// pid, role, mode, object, granted, waiting ms, blocked by, queued behind, query,
/// and whether a capstone DDL is among its blockers.
pub type LockRow = (
    i32,
    Option<String>,
    String,
    String,
    bool,
    Option<f64>,
    Vec<i32>,
    i32,
    Option<String>,
    bool,
);

/// The locks that matter now: waited for, strong, or blocking someone.
pub fn snapshot() -> Vec<LockRow> {
    Spi::connect(|c| {
        let mut out = Vec::new();
        for r in c.select(LOCK_SNAPSHOT_SQL, None, &[])? {
            out.push((
                r.get::<i32>(1)?.unwrap_or(0),
                r.get::<String>(2)?,
                r.get::<String>(3)?.unwrap_or_default(),
                r.get::<String>(4)?.unwrap_or_default(),
                r.get::<bool>(5)?.unwrap_or(true),
                r.get::<f64>(6)?,
                r.get::<Vec<i32>>(7)?.unwrap_or_default(),
                r.get::<i32>(8)?.unwrap_or(0),
                r.get::<String>(9)?,
                r.get::<bool>(10)?.unwrap_or(false),
            ));
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_default()
}

/// One sample of `lock_watch`: sample, ms since start, sessions waiting, longest wait,
/// longest queue, longest wait behind a capstone DDL, who waits on whom.
pub type WatchRow = (i32, f64, i32, Option<f64>, i32, Option<f64>, Vec<String>);

/// Sample the locks every `step_ms` for `dur_ms`; the samples are also stored as evidence.
pub fn watch(dur_ms: i64, step_ms: i64, label: Option<&str>) -> Vec<WatchRow> {
    let start = Instant::now();
    let mut out: Vec<WatchRow> = Vec::new();
    let mut n = 0;
    while start.elapsed().as_millis() as i64 <= dur_ms {
        n += 1;
        unsafe { pg_sys::pgstat_clear_snapshot() };
        let rows = snapshot();
        let waiting: Vec<&LockRow> = rows.iter().filter(|r| !r.4).collect();
        let max_wait = waiting.iter().filter_map(|r| r.5).reduce(f64::max);
        let max_queue = rows.iter().map(|r| r.7).max().unwrap_or(0);
        let behind_ddl = waiting
            .iter()
            .filter(|r| r.9)
            .filter_map(|r| r.5)
            .reduce(f64::max);
        let blocked = waiting
            .iter()
            .map(|r| format!("pid {} waits {} on {} behind {:?}", r.0, r.2, r.3, r.6))
            .collect::<Vec<String>>();
        out.push((
            n,
            (start.elapsed().as_secs_f64() * 100_000.0).round() / 100.0,
            waiting.len() as i32,
            max_wait,
            max_queue,
            behind_ddl,
            blocked,
        ));
        worker::sleep_interruptible(Duration::from_millis(step_ms as u64));
    }
    let worst = out.iter().filter_map(|r| r.3).reduce(f64::max);
    let worst_ddl = out.iter().filter_map(|r| r.5).reduce(f64::max);
    crate::infra::evidence::store(
        crate::infra::evidence::Gate::Migration,
        Some(label.unwrap_or("lock_watch")),
        None,
        json!({}),
        json!({
            "summary": format!("{} samples over {} ms: at most {} session(s) waiting, longest wait {} ms, longest queue {}; longest wait behind a capstone DDL: {} ms",
                out.len(), dur_ms, out.iter().map(|r| r.2).max().unwrap_or(0),
                worst.map(|w| format!("{w:.0}")).unwrap_or_else(|| "0".into()),
                out.iter().map(|r| r.4).max().unwrap_or(0),
                worst_ddl.map(|w| format!("{w:.0}")).unwrap_or_else(|| "0".into())),
            "max_wait_ms": worst,
            "max_wait_behind_ddl_ms": worst_ddl,
            "chart": {
                "title": "Sessions waiting on locks during the watch",
                "kind": "line", "x_label": "time since start (ms)", "y_label": "sessions waiting (count)",
                "series": [{"name": "waiting", "points": out.iter().map(|r| [r.1, r.2 as f64]).collect::<Vec<_>>()}],
            },
        }),
    );
    out
}
