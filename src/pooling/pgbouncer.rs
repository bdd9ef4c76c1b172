//! PgBouncer's admin console read through dblink: SHOW VERSION to recognise it, then
//! SHOW POOLS and SHOW STATS with their column layouts found by probing, one row per
//! metric. Errors are returned; the surface raises them (a server error as it came).

use crate::infra::error::{CapstoneError, Failure};
use crate::infra::spi::read_failed;
use crate::infra::subxact::{self, Outcome};
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;

/// One metric: (source, database, username, metric, value).
pub type StatRow = (
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

/// Why the console could not be read: capstone's own error, or the server's (dblink's)
/// kept with its SQLSTATE and message.
pub enum ConsoleError {
    Capstone(Failure),
    Server(Box<CaughtError>),
}

impl From<Failure> for ConsoleError {
    fn from(f: Failure) -> Self {
        ConsoleError::Capstone(f)
    }
}

impl ConsoleError {
    /// Raise at ERROR, at the SQL surface. Never returns.
    pub fn raise(self) -> ! {
        match self {
            ConsoleError::Capstone(f) => f.raise(),
            ConsoleError::Server(e) => (*e).rethrow(),
        }
    }
}

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
) -> Result<Option<Vec<Vec<Option<String>>>>, ConsoleError> {
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
        Ok(Err(e)) => Err(Failure::from(read_failed(command)(e)).into()),
        Err(e) => {
            let (state, _) = subxact::describe(&e);
            if state == "42804" {
                Ok(None)
            } else {
                Err(ConsoleError::Server(e))
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
) -> Result<(usize, Vec<Vec<Option<String>>>), ConsoleError> {
    let mut order: Vec<usize> = likely.to_vec();
    order.extend((2..=40).filter(|n| !likely.contains(n)));
    for n in order {
        match admin_query(dblink, conninfo, command, n) {
            Ok(Some(rows)) => return Ok((n, rows)),
            Ok(None) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(CapstoneError::NotSupported(format!(
        "PgBouncer's {command} returned more than 40 columns"
    ))
    .with_hint("read it with psql against the admin console")
    .into())
}

/// SHOW VERSION, SHOW POOLS and SHOW STATS of the console `conninfo` leads to.
pub fn stats(conninfo: &str) -> Result<Vec<StatRow>, ConsoleError> {
    let dblink = Spi::get_one::<String>(
        "SELECT n.nspname::text FROM pg_catalog.pg_extension e
           JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
          WHERE e.extname = 'dblink'",
    )
    .ok()
    .flatten()
    .ok_or_else(|| {
        CapstoneError::NotSupported("capstone.pgbouncer_stats needs the dblink extension".into())
            .with(
                "PgBouncer's admin console is reached over a client connection, and capstone opens it with dblink (simple-query protocol, which the console requires)",
                "CREATE EXTENSION dblink; it ships with PostgreSQL's contrib modules. Or read the console with psql: psql -p 6432 -d pgbouncer -c 'SHOW POOLS'",
            )
    })?;
    // A PostgreSQL server has no SHOW VERSION; a PgBouncer console does.
    let version = match admin_query(&dblink, conninfo, "SHOW VERSION", 1) {
        Ok(Some(rows)) => rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .unwrap_or_default(),
        Ok(None) => String::new(),
        Err(ConsoleError::Server(e)) => {
            // 42704 "unrecognized configuration parameter": a PostgreSQL server answered.
            // Anything else (cannot connect, authentication, dblink's own checks) keeps
            // its SQLSTATE and message.
            let (state, msg) = subxact::describe(&e);
            if state != "42704" {
                return Err(ConsoleError::Server(e));
            }
            return Err(CapstoneError::InvalidParameter(format!(
                "conninfo does not lead to a PgBouncer admin console (SHOW VERSION failed: {msg})"
            ))
            .with_hint("connect to PgBouncer's virtual database pgbouncer as a user listed in admin_users or stats_users, e.g. 'host=127.0.0.1 port=6432 dbname=pgbouncer user=postgres'")
            .into());
        }
        Err(e) => return Err(e),
    };
    if !version.starts_with("PgBouncer") {
        return Err(CapstoneError::InvalidParameter(format!(
            "conninfo does not lead to a PgBouncer admin console (SHOW VERSION said \"{version}\")"
        ))
        .with_hint("connect to PgBouncer's virtual database pgbouncer, e.g. 'host=127.0.0.1 port=6432 dbname=pgbouncer user=postgres'")
        .into());
    }
    let mut out: Vec<StatRow> = vec![(
        "version".into(),
        None,
        None,
        "version".into(),
        Some(version),
    )];
    let (n, rows) = admin_probe(&dblink, conninfo, "SHOW POOLS", &[16, 17, 13])?;
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
    let (n, rows) = admin_probe(&dblink, conninfo, "SHOW STATS", &[15, 17])?;
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
    Ok(out)
}
