//! Everything in the cluster that holds the xmin horizon back, so VACUUM cannot remove
//! dead tuples newer than it: read from the activity and replication views for
//! `capstone.xmin_holders()`. Reads only; it never ends a holder.

use crate::infra::error::Result;
use crate::infra::spi::read_failed;
use pgrx::datum::Interval;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// One holder.
#[derive(Debug, Clone)]
pub struct Holder {
    pub kind: String,
    pub holder: String,
    pub pid: Option<i32>,
    pub role: Option<String>,
    pub database: Option<String>,
    pub xmin_age: Option<i32>,
    pub held_for: Option<Interval>,
    pub detail: Option<String>,
    pub fix: Option<String>,
}

/// Backends, replication slots, prepared transactions and standby feedback that
/// hold an xmin or an xid. Walsenders are listed through their slot or their
/// feedback rather than as backends; autovacuum workers, this backend and its own
/// parallel workers are left out.
const HOLDERS_SQL: &str = r#"
SELECT kind, holder, pid, role, database, xmin_age, held_for, detail, fix FROM (
  SELECT CASE WHEN a.state LIKE 'idle in transaction%' THEN 'idle_in_transaction' ELSE 'backend' END AS kind,
         a.pid::text AS holder, a.pid, a.usename::text AS role, a.datname::text AS database,
         GREATEST(pg_catalog.age(a.backend_xmin), pg_catalog.age(a.backend_xid)) AS xmin_age,
         pg_catalog.clock_timestamp() - a.xact_start AS held_for,
         pg_catalog.format('%s%s, %s since %s; xmin %s, xid %s; query: %s',
                a.backend_type,
                CASE WHEN coalesce(a.application_name, '') <> '' THEN ' (' || a.application_name || ')' ELSE '' END,
                coalesce(a.state, 'no state'), coalesce(a.xact_start::text, '?'),
                coalesce(a.backend_xmin::text, '-'), coalesce(a.backend_xid::text, '-'),
                left(regexp_replace(coalesce(a.query, ''), '\s+', ' ', 'g'), 200)) AS detail,
         pg_catalog.format('SELECT pg_catalog.pg_terminate_backend(%s);', a.pid) AS fix
    FROM pg_catalog.pg_stat_activity a
   WHERE (a.backend_xmin IS NOT NULL OR a.backend_xid IS NOT NULL)
     AND a.pid <> pg_catalog.pg_backend_pid()
     AND a.leader_pid IS DISTINCT FROM pg_catalog.pg_backend_pid()
     AND a.backend_type NOT IN ('autovacuum worker', 'walsender')
  UNION ALL
  SELECT 'replication_slot', s.slot_name::text, s.active_pid, NULL, s.database::text,
         GREATEST(pg_catalog.age(s.xmin), pg_catalog.age(s.catalog_xmin)),
         NULL::interval,
         pg_catalog.format('%s slot%s, %s; xmin %s, catalog_xmin %s%s',
                s.slot_type, coalesce(' (' || s.plugin || ')', ''),
                CASE WHEN s.active THEN 'active (pid ' || s.active_pid || ')' ELSE 'inactive' END,
                coalesce(s.xmin::text, '-'), coalesce(s.catalog_xmin::text, '-'),
                CASE WHEN s.xmin IS NULL THEN '; holds back only system catalogs' ELSE '' END),
         CASE WHEN s.active_pid IS NOT NULL
              THEN pg_catalog.format('SELECT pg_catalog.pg_terminate_backend(%s); SELECT pg_catalog.pg_drop_replication_slot(%L);', s.active_pid, s.slot_name)
              ELSE pg_catalog.format('SELECT pg_catalog.pg_drop_replication_slot(%L);', s.slot_name) END
    FROM pg_catalog.pg_replication_slots s
   WHERE s.xmin IS NOT NULL OR s.catalog_xmin IS NOT NULL
  UNION ALL
  SELECT 'prepared_xact', p.gid, NULL, p.owner::text, p.database::text,
         pg_catalog.age(p.transaction),
         pg_catalog.clock_timestamp() - p.prepared,
         pg_catalog.format('prepared at %s, xid %s; COMMIT PREPARED or ROLLBACK PREPARED must run in database %s',
                p.prepared, p.transaction, p.database),
         pg_catalog.format('ROLLBACK PREPARED %L;', p.gid)
    FROM pg_catalog.pg_prepared_xacts p
  UNION ALL
  SELECT 'standby_feedback',
         coalesce(nullif(r.application_name, ''), r.client_addr::text, r.pid::text), r.pid, r.usename::text, NULL,
         pg_catalog.age(r.backend_xmin),
         NULL::interval,
         pg_catalog.format('hot_standby_feedback from %s (%s, %s); a query on the standby keeps xmin %s',
                coalesce(r.client_addr::text, 'local'), r.state, r.sync_state, r.backend_xmin),
         pg_catalog.format('-- on standby %s: end its long query (pg_stat_activity there), or set hot_standby_feedback = off; SELECT pg_catalog.pg_terminate_backend(%s) only drops the connection',
                coalesce(nullif(r.application_name, ''), r.client_addr::text, 'local'), r.pid)
    FROM pg_catalog.pg_stat_replication r
   WHERE r.backend_xmin IS NOT NULL
) h
ORDER BY xmin_age DESC NULLS LAST, held_for DESC NULLS LAST, kind, holder
"#;

/// Is this backend's xmin one PostgreSQL leaves out of the horizon? VACUUM's own
/// (lazy VACUUM sets PROC_IN_VACUUM) and logical decoding's (the slot carries it)
/// are; everything else counts.
fn ignored_by_horizon(pid: i32) -> bool {
    unsafe {
        let proc_ = pg_sys::BackendPidGetProc(pid);
        if proc_.is_null() {
            // gone since pg_stat_activity was read: holds nothing now
            return true;
        }
        let flags = u32::from((*proc_).statusFlags);
        flags & (pg_sys::PROC_IN_VACUUM | pg_sys::PROC_IN_LOGICAL_DECODING) != 0
    }
}

/// All current holders, oldest first.
pub fn list() -> Result<Vec<Holder>> {
    // a report inside a longer transaction must see the cluster now, not as first read
    unsafe { pg_sys::pgstat_clear_snapshot() };
    let rows = Spi::connect(|c| {
        let mut out = Vec::new();
        for r in c.select(HOLDERS_SQL, None, &[])? {
            out.push(Holder {
                kind: r.get::<String>(1)?.unwrap_or_default(),
                holder: r.get::<String>(2)?.unwrap_or_default(),
                pid: r.get::<i32>(3)?,
                role: r.get::<String>(4)?,
                database: r.get::<String>(5)?,
                xmin_age: r.get::<i32>(6)?,
                held_for: r.get::<Interval>(7)?,
                detail: r.get::<String>(8)?,
                fix: r.get::<String>(9)?,
            });
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .map_err(read_failed("the xmin holders"))?;
    Ok(rows
        .into_iter()
        .filter(|h| {
            !(matches!(h.kind.as_str(), "backend" | "idle_in_transaction")
                && h.pid.is_some_and(ignored_by_horizon))
        })
        .collect())
}
