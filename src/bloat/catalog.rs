//! What bloat_report reads through SPI: the relation a caller names (checked up front),
//! the relations in scope, their statistics and column statistics, and pgstattuple's
//! figures for exact mode. Read-only queries only (no xid); no arithmetic here.

use super::estimate::ColumnStats;
use crate::infra::error::{CapstoneError, Result};
use crate::infra::spi::{optional_row, read_failed as spi_err};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{FromDatum, IntoDatum};
use std::collections::HashMap;

/// What kind of relation a row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Table,
    Matview,
    Toast,
    Index,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Table => "table",
            Kind::Matview => "matview",
            Kind::Toast => "toast",
            Kind::Index => "index",
        }
    }

    pub fn is_heap(self) -> bool {
        self != Kind::Index
    }
}

/// One relation to report on.
#[derive(Debug, Clone)]
pub struct Target {
    pub oid: pg_sys::Oid,
    pub schema: String,
    pub relation: String,
    pub kind: Kind,
    /// The table a TOAST table or index belongs to (itself for a table).
    pub parent: pg_sys::Oid,
}

/// What pg_class and pg_stat_all_tables say about one relation.
#[derive(Debug, Clone, Default)]
pub struct RelStats {
    pub relpages: i64,
    pub reltuples: f64,
    pub reloptions: Vec<String>,
    pub n_live: Option<i64>,
    pub n_dead: Option<i64>,
    pub last_vacuum: Option<TimestampWithTimeZone>,
    pub last_autovacuum: Option<TimestampWithTimeZone>,
    /// The cumulative statistics have seen activity since their last reset, so
    /// n_live_tup / n_dead_tup mean something.
    pub has_stats: bool,
    pub partial_index: bool,
}
/// Check `rel` up front: it exists, it is a kind this report reads, and the caller
/// may read the table it belongs to. Returns its relkind.
pub fn check_relation(oid: pg_sys::Oid) -> Result<String> {
    let row = optional_row(
        "SELECT c.relkind::text, c.relname::text, am.amname::text,
                c.relpersistence = 't' AND c.relnamespace <> pg_catalog.pg_my_temp_schema(),
                pg_catalog.has_table_privilege(coalesce(i.indrelid, tc.oid, c.oid), 'SELECT')
           FROM pg_catalog.pg_class c
           LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
           LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
           LEFT JOIN pg_catalog.pg_class tc ON tc.reltoastrelid = c.oid AND c.relkind = 't'
          WHERE c.oid = $1",
        &[oid.into()],
        |r| {
            Ok((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
                r.get::<String>(3)?,
                r.get::<bool>(4)?.unwrap_or(false),
                r.get::<bool>(5)?.unwrap_or(false),
            ))
        },
    )
    .map_err(spi_err("the relation"))?;
    let Some((relkind, name, am, other_temp, may_read)) = row else {
        return Err(CapstoneError::UndefinedTable(format!(
            "relation with OID {} does not exist",
            oid.to_u32()
        ))
        .with_hint("it was dropped; pass a relation that exists, e.g. rel => 'shop.orders'"));
    };
    let what = match relkind.as_str() {
        "v" => Some("a view"),
        "S" => Some("a sequence"),
        "f" => Some("a foreign table"),
        "c" => Some("a composite type"),
        _ => None,
    };
    if let Some(what) = what {
        return Err(CapstoneError::WrongObjectType(format!("\"{name}\" is {what}")).with(
            "views, sequences, foreign tables and composite types have no heap pages to bloat",
            "pass a table, materialized view, TOAST table or btree index, or a partitioned table for all its partitions",
        ));
    }
    if relkind == "i" && am.as_deref() != Some("btree") {
        return Err(CapstoneError::NotSupported(format!(
            "index \"{name}\" is a {} index; bloat_report estimates btree indexes",
            am.unwrap_or_default()
        ))
        .with_hint(
            "pgstattuple's pgstatginindex() and pgstathashindex() measure other index kinds",
        ));
    }
    if other_temp {
        return Err(CapstoneError::NotSupported(format!(
            "\"{name}\" is a temporary table of another session"
        ))
        .with_hint("its pages live in that session's local buffers; run the report there"));
    }
    if !may_read {
        return Err(CapstoneError::InsufficientPrivilege(format!(
            "permission denied for table \"{name}\""
        ))
        .with_hint("bloat_report reads pages of tables the caller may SELECT from"));
    }
    Ok(relkind)
}

/// One value from a read-only query, or None. pgrx's `Spi::get_one*` run their
/// query read-write, which assigns the transaction an xid: a report must not take
/// one (it would hold back the horizon it reports on, and fails on a hot standby).
pub fn select_one<T: FromDatum + IntoDatum>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Option<T> {
    Spi::connect(|c| c.select(sql, Some(1), args)?.first().get_one::<T>())
        .ok()
        .flatten()
}

/// The OID of schema `name`, matched exactly.
pub fn schema_oid(name: &str) -> Result<pg_sys::Oid> {
    select_one::<pg_sys::Oid>(
        "SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1",
        &[name.into()],
    )
    .ok_or_else(|| {
        CapstoneError::UndefinedSchema(format!("schema \"{name}\" does not exist")).with_hint(
            "schema_name is matched exactly, as stored in pg_namespace (unquoted names are lower case)",
        )
    })
}

/// Tables (and materialized views) in scope, their TOAST tables and their valid
/// btree indexes, grouped by table; capstone's own schemas (capstone, capstone_scratch)
/// only when `schema_name` or `rel` names them. `rel` narrows it: a table or partitioned table
/// gives everything of it, an index or TOAST table only itself.
const TARGETS_SQL: &str = r#"
WITH tabs AS (
  SELECT c.oid, c.relname, n.nspname, c.relkind, c.reltoastrelid
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'm')
     AND (c.relpersistence <> 't' OR c.relnamespace = pg_catalog.pg_my_temp_schema())
     -- on a hot standby unlogged tables have no data to read
     AND NOT (c.relpersistence = 'u' AND pg_catalog.pg_is_in_recovery())
     AND ($1::oid IS NULL OR c.relnamespace = $1)
     AND n.nspname NOT IN ('pg_catalog', 'information_schema')
     AND n.nspname NOT LIKE 'pg\_toast%'
     -- capstone's own tables only when asked for by schema or relation
     AND ($1::oid IS NOT NULL OR $2::oid IS NOT NULL
          OR n.nspname NOT IN ('capstone', 'capstone_scratch'))
     AND pg_catalog.has_table_privilege(c.oid, 'SELECT')
     AND ($2::oid IS NULL OR c.oid = $2 OR c.reltoastrelid = $2
          OR c.oid IN (SELECT i.indrelid FROM pg_catalog.pg_index i WHERE i.indexrelid = $2)
          OR c.oid IN (SELECT t.relid FROM pg_catalog.pg_partition_tree($2::regclass) t)
          OR c.oid IN (SELECT i.indrelid FROM pg_catalog.pg_index i
                         JOIN pg_catalog.pg_partition_tree($2::regclass) t ON t.relid = i.indexrelid))
), found AS (
  SELECT t.oid, t.nspname, t.relname, CASE t.relkind WHEN 'm' THEN 'matview' ELSE 'table' END AS kind,
         t.oid AS parent, t.relname AS s1, 0 AS s2, ''::name AS s3
    FROM tabs t
  UNION ALL
  SELECT t.reltoastrelid, t.nspname, t.relname, 'toast', t.oid, t.relname, 1, ''::name
    FROM tabs t WHERE t.reltoastrelid <> 0
  UNION ALL
  SELECT ic.oid, t.nspname, ic.relname, 'index', t.oid, t.relname, 2, ic.relname
    FROM tabs t
    JOIN pg_catalog.pg_index i ON i.indrelid = t.oid
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_catalog.pg_am am ON am.oid = ic.relam
   WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready
)
SELECT oid, nspname::text, relname::text, kind, parent
  FROM found
 WHERE $2::oid IS NULL OR $3 IN ('r', 'm', 'p') OR oid = $2
    OR oid IN (SELECT relid FROM pg_catalog.pg_partition_tree($2::regclass))
 ORDER BY nspname, s1, s2, s3
"#;

/// The relations in scope, grouped by table (see TARGETS_SQL).
pub fn targets(
    schema: Option<pg_sys::Oid>,
    rel: Option<pg_sys::Oid>,
    relkind: &str,
) -> Result<Vec<Target>> {
    Spi::connect(|c| {
        let mut out = Vec::new();
        for r in c.select(
            TARGETS_SQL,
            None,
            &[schema.into(), rel.into(), relkind.into()],
        )? {
            let kind = match r.get::<String>(4)?.as_deref() {
                Some("toast") => Kind::Toast,
                Some("index") => Kind::Index,
                Some("matview") => Kind::Matview,
                _ => Kind::Table,
            };
            out.push(Target {
                oid: r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid),
                schema: r.get::<String>(2)?.unwrap_or_default(),
                relation: r.get::<String>(3)?.unwrap_or_default(),
                kind,
                parent: r.get::<pg_sys::Oid>(5)?.unwrap_or(pg_sys::InvalidOid),
            });
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .map_err(|e| spi_err("the relations to report")(e).into())
}

/// pg_class and pg_stat_all_tables of `oids`, with this backend's unsent counts.
pub fn rel_stats(oids: &[pg_sys::Oid]) -> Result<HashMap<pg_sys::Oid, RelStats>> {
    Spi::connect(|c| {
        let mut out = HashMap::new();
        for r in c.select(
            "SELECT c.oid, c.relpages::bigint, c.reltuples::float8,
                    coalesce(c.reloptions, '{}')::text[],
                    s.n_live_tup + x.ins - x.del, s.n_dead_tup + x.upd + x.del,
                    s.last_vacuum, s.last_autovacuum,
                    coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del + s.n_live_tup + s.n_dead_tup
                             + s.vacuum_count + s.autovacuum_count + s.analyze_count + s.autoanalyze_count, 0)
                      + x.ins + x.upd + x.del > 0,
                    coalesce(i.indpred IS NOT NULL, false)
               FROM pg_catalog.pg_class c
               LEFT JOIN pg_catalog.pg_stat_all_tables s ON s.relid = c.oid
               LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
               -- this backend's changes the shared statistics have not been sent yet
               -- (this transaction's, and committed ones waiting for the next flush)
               CROSS JOIN LATERAL (SELECT pg_catalog.pg_stat_get_xact_tuples_inserted(c.oid) AS ins,
                                          pg_catalog.pg_stat_get_xact_tuples_updated(c.oid) AS upd,
                                          pg_catalog.pg_stat_get_xact_tuples_deleted(c.oid) AS del) x
              WHERE c.oid = ANY($1)",
            None,
            &[oids.to_vec().into()],
        )? {
            let oid = r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid);
            out.insert(
                oid,
                RelStats {
                    relpages: r.get::<i64>(2)?.unwrap_or(0),
                    reltuples: r.get::<f64>(3)?.unwrap_or(-1.0),
                    reloptions: r.get::<Vec<String>>(4)?.unwrap_or_default(),
                    n_live: r.get::<i64>(5)?,
                    n_dead: r.get::<i64>(6)?,
                    last_vacuum: r.get::<TimestampWithTimeZone>(7)?,
                    last_autovacuum: r.get::<TimestampWithTimeZone>(8)?,
                    has_stats: r.get::<bool>(9)?.unwrap_or(false),
                    partial_index: r.get::<bool>(10)?.unwrap_or(false),
                },
            );
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .map_err(|e| spi_err("relation statistics")(e).into())
}

/// Column statistics of tables (heap attributes) and indexes (index attributes,
/// with the table column's statistics, or the expression's own for expression
/// indexes), keyed by relation.
pub fn column_stats(
    tables: &[pg_sys::Oid],
    indexes: &[pg_sys::Oid],
) -> Result<HashMap<pg_sys::Oid, Vec<ColumnStats>>> {
    if tables.is_empty() && indexes.is_empty() {
        return Ok(HashMap::new());
    }
    Spi::connect(|c| {
        let mut out: HashMap<pg_sys::Oid, Vec<ColumnStats>> = HashMap::new();
        let heap = c.select(
            "SELECT a.attrelid, a.attlen, a.attalign::text, a.attisdropped,
                    s.avg_width::float8, s.null_frac::float8
               FROM pg_catalog.pg_attribute a
               JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN (SELECT * FROM pg_catalog.pg_stats
                           WHERE tablename = ANY (ARRAY(SELECT relname FROM pg_catalog.pg_class WHERE oid = ANY($1)))
                             AND NOT inherited) s
                      ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname
              WHERE a.attrelid = ANY($1) AND a.attnum > 0
              ORDER BY a.attrelid, a.attnum",
            None,
            &[tables.to_vec().into()],
        )?;
        let index = c.select(
            "SELECT x.indexrelid, ia.attlen, ia.attalign::text, false,
                    st.avg_width::float8, st.null_frac::float8
               FROM pg_catalog.pg_index x
               JOIN pg_catalog.pg_attribute ia ON ia.attrelid = x.indexrelid AND ia.attnum > 0
               JOIN pg_catalog.pg_class hc ON hc.oid = x.indrelid
               JOIN pg_catalog.pg_namespace hn ON hn.oid = hc.relnamespace
               JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
               LEFT JOIN pg_catalog.pg_attribute ha ON ha.attrelid = x.indrelid
                     AND ha.attnum = x.indkey[ia.attnum - 1] AND x.indkey[ia.attnum - 1] > 0
               LEFT JOIN (SELECT * FROM pg_catalog.pg_stats
                           WHERE tablename = ANY (ARRAY(
                                   SELECT c.relname FROM pg_catalog.pg_class c
                                    WHERE c.oid = ANY($1)
                                       OR c.oid IN (SELECT indrelid FROM pg_catalog.pg_index WHERE indexrelid = ANY($1))))
                             AND NOT inherited) st
                      ON st.schemaname = hn.nspname AND st.attname = coalesce(ha.attname, ia.attname)
                     AND st.tablename = CASE WHEN ha.attname IS NULL THEN ic.relname ELSE hc.relname END
              WHERE x.indexrelid = ANY($1)
              ORDER BY x.indexrelid, ia.attnum",
            None,
            &[indexes.to_vec().into()],
        )?;
        for r in heap.chain(index) {
            let oid = r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid);
            out.entry(oid).or_default().push(ColumnStats {
                attlen: r.get::<i16>(2)?.unwrap_or(-1),
                align: r
                    .get::<String>(3)?
                    .and_then(|s| s.bytes().next())
                    .unwrap_or(b'i'),
                dropped: r.get::<bool>(4)?.unwrap_or(false),
                avg_width: r.get::<f64>(5)?,
                null_frac: r.get::<f64>(6)?.unwrap_or(0.0),
            });
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .map_err(|e| spi_err("column statistics")(e).into())
}

/// The schema pgstattuple is installed in, if it is.
pub fn pgstattuple_schema() -> Option<String> {
    select_one::<String>(
        "SELECT n.nspname::text FROM pg_catalog.pg_extension e
           JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
          WHERE e.extname = 'pgstattuple'",
        &[],
    )
}
/// Five bigint columns of the one row `sql` returns for relation `oid`.
fn five(sql: &str, oid: pg_sys::Oid) -> Result<(i64, i64, i64, i64, i64)> {
    Spi::connect(|c| {
        let t = c.select(sql, Some(1), &[oid.into()])?;
        let r = t.first();
        Ok::<_, pgrx::spi::Error>((
            r.get::<i64>(1)?.unwrap_or(0),
            r.get::<i64>(2)?.unwrap_or(0),
            r.get::<i64>(3)?.unwrap_or(0),
            r.get::<i64>(4)?.unwrap_or(0),
            r.get::<i64>(5)?.unwrap_or(0),
        ))
    })
    .map_err(|e| spi_err("pgstattuple")(e).into())
}

/// pgstattuple of a heap (in schema `nsp`): table_len, tuple_count, dead_tuple_count,
/// dead_tuple_len, free_space.
pub fn heap_exact(nsp: &str, oid: pg_sys::Oid) -> Result<(i64, i64, i64, i64, i64)> {
    let sql = format!(
        "SELECT table_len, tuple_count, dead_tuple_count, dead_tuple_len, free_space
           FROM {}.pgstattuple($1::regclass)",
        pgrx::spi::quote_identifier(nsp)
    );
    five(&sql, oid)
}

/// pgstattuple and pgstatindex of a btree index (in schema `nsp`): table_len,
/// dead_tuple_count, dead_tuple_len, free_space, leaf_pages.
pub fn index_exact(nsp: &str, oid: pg_sys::Oid) -> Result<(i64, i64, i64, i64, i64)> {
    let nsp = pgrx::spi::quote_identifier(nsp);
    let sql = format!(
        "SELECT t.table_len, t.dead_tuple_count, t.dead_tuple_len, t.free_space, i.leaf_pages
           FROM {nsp}.pgstattuple($1::regclass) t, {nsp}.pgstatindex($1::regclass) i"
    );
    five(&sql, oid)
}
