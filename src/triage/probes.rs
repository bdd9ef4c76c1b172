//! The seven probes: for each failure mode, the first diagnostic query an on-call
//! engineer would run, returning (finding, severity, first_fix). SQL text only;
//! running it under timeouts is `run`'s job.

/// One failure mode's first diagnostic: SQL returning (finding, severity, first_fix).
pub struct Probe {
    pub mode: &'static str,
    pub sql: &'static str,
}

pub const PROBES: &[Probe] = &[
    Probe {
        mode: "schema",
        sql: r#"WITH fk AS (
  SELECT c.oid, c.conrelid, c.conkey, c.conname
    FROM pg_catalog.pg_constraint c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.connamespace
   WHERE c.contype = 'f' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'capstone')
), missing AS (
  SELECT fk.* FROM fk
   WHERE NOT EXISTS (
     SELECT 1 FROM pg_catalog.pg_index i
      WHERE i.indrelid = fk.conrelid
        -- a partial index on "col IS NOT NULL" still serves the FK's equality lookups
        AND (i.indpred IS NULL OR pg_catalog.pg_get_expr(i.indpred, i.indrelid) ~ '^\(*[^()]* IS NOT NULL\)*$')
        AND (SELECT array_agg(x ORDER BY x) FROM unnest((i.indkey::int2[])[0:cardinality(fk.conkey) - 1]) x)
          = (SELECT array_agg(x ORDER BY x) FROM unnest(fk.conkey) x))
), nopk AS (
  SELECT count(*) AS n FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
   WHERE r.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'capstone')
     AND n.nspname NOT LIKE 'pg\_%'
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conrelid = r.oid AND k.contype = 'p')
), first AS (
  SELECT m.conrelid::regclass::text AS rel, m.conname,
         (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord)
            FROM unnest(m.conkey) WITH ORDINALITY k(attnum, ord)
            JOIN pg_catalog.pg_attribute a ON a.attrelid = m.conrelid AND a.attnum = k.attnum) AS cols
    FROM missing m ORDER BY pg_catalog.pg_relation_size(m.conrelid) DESC LIMIT 1
)
SELECT CASE WHEN (SELECT count(*) FROM missing) = 0 AND (SELECT n FROM nopk) = 0
            THEN 'every foreign key has a supporting index; every table has a primary key'
            ELSE format('%s FK(s) without a supporting index%s; %s table(s) without a primary key',
                        (SELECT count(*) FROM missing),
                        coalesce((SELECT format(' (largest: %s.%s on (%s))', rel, conname, cols) FROM first), ''),
                        (SELECT n FROM nopk)) END,
       CASE WHEN (SELECT count(*) FROM missing) > 0 OR (SELECT n FROM nopk) > 0 THEN 'warn' ELSE 'ok' END,
       coalesce((SELECT format('CREATE INDEX CONCURRENTLY ON %s (%s);', rel, cols) FROM first),
                'none needed')"#,
    },
    Probe {
        mode: "index",
        sql: r#"WITH t AS (
  SELECT s.relid, s.seq_scan, s.seq_tup_read, coalesce(s.idx_scan, 0) AS idx_scan, s.n_live_tup
    FROM pg_catalog.pg_stat_user_tables s
   WHERE s.n_live_tup >= 10000 AND s.seq_scan > 0 AND s.schemaname <> 'capstone'
   ORDER BY s.seq_tup_read DESC LIMIT 1
), unused AS (
  SELECT count(*) AS n, coalesce(sum(pg_catalog.pg_relation_size(i.indexrelid)), 0) AS bytes
    FROM pg_catalog.pg_stat_user_indexes i JOIN pg_catalog.pg_index x ON x.indexrelid = i.indexrelid
   WHERE i.idx_scan = 0 AND NOT x.indisunique AND i.schemaname <> 'capstone'
)
SELECT coalesce((SELECT format('%s: %s seq scans read %s rows (%s per scan; %s index scans)',
                               relid::regclass, seq_scan, seq_tup_read, seq_tup_read / seq_scan, idx_scan) FROM t),
                'no large table is read by sequential scans')
       || format('; %s unused non-unique index(es) holding %s', (SELECT n FROM unused),
                 pg_catalog.pg_size_pretty((SELECT bytes FROM unused))),
       CASE WHEN EXISTS (SELECT 1 FROM t WHERE seq_tup_read / seq_scan >= 10000 AND seq_scan >= 100) THEN 'warn'
            WHEN (SELECT n FROM unused) > 0 THEN 'info' ELSE 'ok' END,
       coalesce((SELECT format('-- find the query behind it, then prove the index:
SELECT * FROM capstone.explain_diff(''<query on %s>'', ''CREATE INDEX ...; ANALYZE %s'');', relid::regclass, relid::regclass)
                   FROM t WHERE seq_tup_read / seq_scan >= 10000 AND seq_scan >= 100), 'none needed')"#,
    },
    Probe {
        mode: "statistics",
        sql: r#"WITH t AS (
  SELECT s.relid, s.n_live_tup, s.n_mod_since_analyze,
         greatest(s.last_analyze, s.last_autoanalyze) AS analyzed
    FROM pg_catalog.pg_stat_user_tables s
   WHERE s.n_live_tup + s.n_mod_since_analyze >= 1000 AND s.schemaname <> 'capstone'
), worst AS (
  SELECT * FROM t ORDER BY (analyzed IS NULL) DESC, n_mod_since_analyze::float8 / greatest(n_live_tup, 1) DESC LIMIT 1
)
SELECT coalesce((SELECT CASE WHEN analyzed IS NULL THEN format('%s has never been analyzed (%s rows)', relid::regclass, n_live_tup)
                             ELSE format('%s: %s%% of rows changed since ANALYZE at %s', relid::regclass,
                                         round(100.0 * n_mod_since_analyze / greatest(n_live_tup, 1)), analyzed::timestamp(0)) END
                   FROM worst), 'no user tables of 1000+ rows')
       || format('; %s table(s) never analyzed', (SELECT count(*) FROM t WHERE analyzed IS NULL)),
       CASE WHEN EXISTS (SELECT 1 FROM t WHERE analyzed IS NULL) THEN 'warn'
            WHEN EXISTS (SELECT 1 FROM t WHERE n_mod_since_analyze > 0.2 * greatest(n_live_tup, 1)) THEN 'warn'
            ELSE 'ok' END,
       coalesce((SELECT format('ANALYZE %s;', relid::regclass) FROM worst
                  WHERE analyzed IS NULL OR n_mod_since_analyze > 0.2 * greatest(n_live_tup, 1)), 'none needed')"#,
    },
    Probe {
        mode: "bloat",
        sql: r#"WITH h AS (
  SELECT format('pid %s (%s, %s)', a.pid, a.usename, a.state) AS holder, age(a.backend_xmin) AS xids,
         now() - coalesce(a.xact_start, a.backend_start) AS held,
         format('SELECT pg_terminate_backend(%s);', a.pid) AS fix
    FROM pg_catalog.pg_stat_activity a
   WHERE a.backend_xmin IS NOT NULL AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
  UNION ALL
  SELECT format('prepared transaction %L', p.gid), age(p.transaction), now() - p.prepared,
         format('ROLLBACK PREPARED %L;', p.gid)
    FROM pg_catalog.pg_prepared_xacts p
  UNION ALL
  SELECT format('replication slot %L', s.slot_name),
         greatest(coalesce(age(s.xmin), 0), coalesce(age(s.catalog_xmin), 0)), NULL,
         format('SELECT pg_drop_replication_slot(%L);', s.slot_name)
    FROM pg_catalog.pg_replication_slots s
   WHERE s.xmin IS NOT NULL OR s.catalog_xmin IS NOT NULL
), oldest AS (SELECT * FROM h ORDER BY xids DESC LIMIT 1),
dead AS (
  SELECT s.relid, s.n_dead_tup, s.n_live_tup FROM pg_catalog.pg_stat_user_tables s
   ORDER BY s.n_dead_tup DESC LIMIT 1
)
SELECT coalesce((SELECT format('%s has held the xmin horizon for %s (%s xids)', holder,
                               coalesce(date_trunc('second', held)::text, 'an unknown time'), xids) FROM oldest),
                'nothing holds the xmin horizon back')
       || coalesce((SELECT format('; most dead tuples: %s (%s dead, %s live)', relid::regclass, n_dead_tup, n_live_tup)
                      FROM dead WHERE n_dead_tup > 0), ''),
       CASE WHEN EXISTS (SELECT 1 FROM oldest WHERE held > interval '1 hour' OR xids > 10000000) THEN 'critical'
            WHEN EXISTS (SELECT 1 FROM oldest WHERE held > interval '5 minutes' OR xids > 1000000) THEN 'warn'
            WHEN EXISTS (SELECT 1 FROM dead WHERE n_dead_tup > 0.2 * greatest(n_live_tup, 1000)) THEN 'info'
            ELSE 'ok' END,
       coalesce((SELECT fix FROM oldest WHERE held > interval '5 minutes' OR xids > 1000000),
                (SELECT format('VACUUM (VERBOSE) %s;', relid::regclass) FROM dead
                  WHERE n_dead_tup > 0.2 * greatest(n_live_tup, 1000)), 'none needed')"#,
    },
    Probe {
        mode: "pooling",
        sql: r#"WITH a AS (
  SELECT count(*) AS total,
         count(*) FILTER (WHERE state = 'idle') AS idle,
         count(*) FILTER (WHERE state LIKE 'idle in transaction%') AS idle_in_tx,
         count(*) FILTER (WHERE state = 'active') AS active
    FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend'
), m AS (SELECT current_setting('max_connections')::int AS max_conn,
                current_setting('superuser_reserved_connections')::int AS reserved)
SELECT format('%s of %s connections in use (%s active, %s idle, %s idle in transaction)',
              a.total, m.max_conn, a.active, a.idle, a.idle_in_tx),
       CASE WHEN a.total >= 0.9 * (m.max_conn - m.reserved) THEN 'critical'
            WHEN a.total >= 0.7 * (m.max_conn - m.reserved) OR a.idle_in_tx >= 5 THEN 'warn'
            WHEN a.idle > 20 AND a.idle > 4 * greatest(a.active, 1) THEN 'info'
            ELSE 'ok' END,
       CASE WHEN a.total >= 0.7 * (m.max_conn - m.reserved) OR (a.idle > 20 AND a.idle > 4 * greatest(a.active, 1))
            THEN '-- put clients behind PgBouncer (transaction mode) sized from measured concurrency
SELECT * FROM capstone.pool_size();'
            WHEN a.idle_in_tx >= 5 THEN 'ALTER SYSTEM SET idle_in_transaction_session_timeout = ''1min''; SELECT pg_reload_conf();'
            ELSE 'none needed' END
  FROM a, m"#,
    },
    Probe {
        mode: "migration",
        sql: r#"WITH w AS (
  SELECT a.pid, pg_catalog.pg_blocking_pids(a.pid) AS blockers, now() - a.query_start AS waiting,
         l.mode, l.relation
    FROM pg_catalog.pg_stat_activity a
    JOIN pg_catalog.pg_locks l ON l.pid = a.pid AND NOT l.granted
), q AS (
  SELECT w.pid, w.mode, w.relation, w.waiting, w.blockers,
         (SELECT count(*) FROM w w2 WHERE w.pid = ANY (w2.blockers)) AS queued_behind
    FROM w
), top AS (SELECT * FROM q ORDER BY queued_behind DESC, waiting DESC LIMIT 1)
SELECT coalesce((SELECT format('%s session(s) waiting on locks; pid %s waits for %s%s for %s, blocked by %s, with %s session(s) queued behind it',
                               (SELECT count(*) FROM w), pid, mode,
                               coalesce(' on ' || relation::regclass::text, ''), date_trunc('second', waiting),
                               blockers, queued_behind) FROM top),
                'no session is waiting on a lock'),
       CASE WHEN EXISTS (SELECT 1 FROM top WHERE queued_behind >= 5) THEN 'critical'
            WHEN EXISTS (SELECT 1 FROM w WHERE waiting > interval '5 seconds') THEN 'warn'
            WHEN EXISTS (SELECT 1 FROM w) THEN 'info' ELSE 'ok' END,
       coalesce((SELECT format('SELECT pg_cancel_backend(%s);  -- then retry the DDL with SET lock_timeout = ''500ms''', pid)
                   FROM top WHERE queued_behind > 0 AND mode = 'AccessExclusiveLock'),
                (SELECT format('SELECT pg_cancel_backend(%s);', blockers[1]) FROM top WHERE waiting > interval '5 seconds'),
                'none needed')"#,
    },
    Probe {
        mode: "sharding",
        sql: r#"WITH db AS (SELECT pg_catalog.pg_database_size(current_database()) AS bytes),
big AS (
  SELECT c.oid::regclass AS rel, pg_catalog.pg_total_relation_size(c.oid) AS bytes
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   ORDER BY 2 DESC LIMIT 1
), x AS (SELECT sum(xact_commit + xact_rollback) AS xacts,
                extract(epoch FROM now() - min(stats_reset)) AS secs
           FROM pg_catalog.pg_stat_database WHERE datname = current_database())
SELECT format('database %s; largest table %s (%s, %s%% of it); %s transactions since stats reset',
              pg_catalog.pg_size_pretty(db.bytes), coalesce(big.rel::text, 'none'),
              pg_catalog.pg_size_pretty(coalesce(big.bytes, 0)),
              round(100.0 * coalesce(big.bytes, 0) / greatest(db.bytes, 1)), x.xacts),
       CASE WHEN db.bytes > 2::numeric * 1024 ^ 4 THEN 'warn'
            WHEN db.bytes > 512::numeric * 1024 ^ 3 THEN 'info' ELSE 'ok' END,
       CASE WHEN db.bytes > 512::numeric * 1024 ^ 3
            THEN '-- measure the single-node ceiling before sharding; rank shard keys from the data:
SELECT * FROM capstone.shard_advice(''public'');'
            ELSE 'none needed: far below a single node''s ceiling' END
  FROM db LEFT JOIN big ON true, x"#,
    },
];

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn one_probe_per_failure_mode() {
        let modes: Vec<&str> = PROBES.iter().map(|p| p.mode).collect();
        assert_eq!(
            modes,
            [
                "schema",
                "index",
                "statistics",
                "bloat",
                "pooling",
                "migration",
                "sharding"
            ]
        );
    }
}
