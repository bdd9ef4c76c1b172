//! What pooling_audit finds: pg_stat_statements' history classified by `audit`, and
//! what the catalog shows right now (advisory locks held while idle, temp tables,
//! idle-in-transaction sessions), ordered by risk. SPI reads and rows; the text
//! classifier itself is `audit` and stays free of server reads.

use super::audit;
use super::server::{pgss_schema, PGSS_HINT};
use crate::infra::error::{notice_hint, Result};
use crate::infra::spi::read_failed;
use pgrx::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One audit row.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub issue: String,
    pub risk: String,
    pub evidence: String,
    pub query: Option<String>,
    pub calls: Option<i64>,
    pub fix: String,
}

const PROTOCOL_FIX: &str = "named protocol-level prepared statements need PgBouncer 1.21+ with max_prepared_statements > 0; PgBouncer before 1.21 (this lab runs 1.18) hands the next Bind to a backend that never saw the Parse. There, use unnamed statements: JDBC prepareThreshold=0, pgx default_query_exec_mode=exec or simple_protocol, asyncpg statement_cache_size=0, psycopg 3 prepare_threshold=None, pgbench -M extended";

fn pgss_findings(schema: &str, all_databases: bool, rows: &mut Vec<AuditRow>) -> Result<()> {
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
    .map_err(read_failed("pg_stat_statements"))?;
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
    Ok(())
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

/// Every finding for this database (or all of them), most risky first.
pub fn audit(all: bool) -> Result<Vec<AuditRow>> {
    let mut rows: Vec<AuditRow> = Vec::new();
    match pgss_schema() {
        Ok(schema) => pgss_findings(&schema, all, &mut rows)?,
        Err(why) => {
            notice_hint(
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
    Ok(rows)
}

/// The evidence payload of an audit.
pub fn payload(rows: &[AuditRow], all: bool) -> Value {
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
    payload
}
