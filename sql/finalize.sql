-- capstone: grants and comments, applied after every generated function exists.

-- Read-only reports are usable by anyone who can see the schema.
GRANT USAGE ON SCHEMA capstone TO PUBLIC;

COMMENT ON FUNCTION capstone.version() IS
  'capstone''s version, the server version it runs on, and the major version the library was built for.';

-- Starting background workers is not for PUBLIC: grant it deliberately.
REVOKE ALL ON FUNCTION capstone.worker_smoke() FROM PUBLIC;
COMMENT ON FUNCTION capstone.worker_smoke() IS
  'Starts a dynamic background worker in this database as the current role; it writes one row and exits. Returns what the worker saw.';
-- capstone's own records (evidence, job progress, DDL attempts, worker proofs) are written
-- only by capstone, as the owner of these tables (src/owner.rs), naming the role that ran
-- the function; no role may INSERT, UPDATE or DELETE them by hand. Each role reads only its
-- own rows (row-level security).
GRANT SELECT ON capstone.worker_smoke_log TO PUBLIC;
GRANT USAGE ON SEQUENCE capstone.worker_token_seq TO PUBLIC;
GRANT SELECT ON capstone.evidence TO PUBLIC;

-- The lab
REVOKE ALL ON FUNCTION capstone.lab_install(double precision, integer, timestamptz, boolean) FROM PUBLIC;
COMMENT ON FUNCTION capstone.lab_install(double precision, integer, timestamptz, boolean) IS
  'Creates the lab schema shop (multi-tenant orders + double-entry ledger) and loads it deterministically for (scale, seed, anchor): scale 1 is 1M orders. Refuses to load over an existing shop schema unless replace => true.';

-- Plans: functions that run caller-supplied SQL are granted deliberately, never to PUBLIC.
REVOKE ALL ON FUNCTION capstone.explain(text, text, integer, boolean) FROM PUBLIC;
COMMENT ON FUNCTION capstone.explain(text, text, integer, boolean) IS
  'EXPLAIN (ANALYZE, BUFFERS, VERBOSE, SETTINGS, FORMAT JSON) of exactly one SELECT/INSERT/UPDATE/DELETE/MERGE, run as the caller inside a subtransaction that is always rolled back; runs > 1 adds a warm-up and keeps the median run. Stored in capstone.evidence.';
REVOKE ALL ON FUNCTION capstone.estimate_gap(text, text) FROM PUBLIC;
COMMENT ON FUNCTION capstone.estimate_gap(text, text) IS
  'Runs the query (rolled back) and returns estimated vs actual rows per plan node, the q-error and its direction, nodes at or above capstone.gap_threshold, and the lowest misestimated node as the likely root cause.';
COMMENT ON FUNCTION capstone.estimate_gap(bigint) IS
  'estimate_gap on a stored capture or imported plan (an id from capstone.evidence).';
REVOKE ALL ON FUNCTION capstone.explain_diff(text, text, text, integer) FROM PUBLIC;
COMMENT ON FUNCTION capstone.explain_diff(text, text, text, integer) IS
  'Before/after proof: runs the query, applies change (kept; if it fails nothing of it is applied), runs the query again, and returns one row per changed plan node (scan method, join method, join order, time, buffers, rows) plus a statement summary.';
COMMENT ON FUNCTION capstone.explain_diff(bigint, bigint) IS
  'Diffs two stored plans, captured or imported (production plan vs a fix tried on staging), node by node, aligned by relation and position.';
-- Plans from elsewhere: plan_import executes nothing (it reads the pasted text) and stores
-- the plans as the caller's own evidence, like the other evidence writers for anyone.
COMMENT ON FUNCTION capstone.plan_import(text, text) IS
  'Reads a plan capstone did not run (EXPLAIN text as pasted from psql, with header, footer, + marks, frames or hard-wrapped lines; FORMAT JSON, YAML or XML; or auto_explain log entries, text or JSON, one plan each) and stores each plan as the caller''s evidence, marked imported. Nothing is executed. Returns the evidence id, the detected format, the plan''s number and node count, and auto_explain''s duration and query text. Unreadable text is 22P02 naming the line and what was expected.';
COMMENT ON FUNCTION capstone.plan_tips(bigint, integer) IS
  'Findings on a stored plan (captured or imported), scored by the time a fix could save (est_saving_ms): row misestimates charged with the nodes above that inherit them, filters discarding most rows read (missing index on a seq scan), sorts and hashes on disk with the work_mem that fits, heap fetches in index-only scans, lossy bitmaps, parallel workers not launched, JIT share, nested loops with many inner loops. Each row names the node, the evidence and the first fix; top_n rows (default 3).';
-- Each role keeps its own watch list (row-level security); plan_gate runs only the caller's.
GRANT SELECT, INSERT, UPDATE, DELETE ON capstone.watched_queries TO PUBLIC;
REVOKE ALL ON FUNCTION capstone.plan_gate() FROM PUBLIC;
REVOKE ALL ON FUNCTION capstone.plan_gate_json() FROM PUBLIC;
REVOKE ALL ON FUNCTION capstone.assert_plans() FROM PUBLIC;
COMMENT ON FUNCTION capstone.plan_gate() IS
  'Runs every enabled capstone.watched_queries entry of the calling role and returns pass/fail with reasons: a seq scan on a large table not allowed for it, a q-error above its limit, or a time over its budget.';
COMMENT ON FUNCTION capstone.plan_gate_json() IS 'The plan gate''s verdict as one jsonb document.';
COMMENT ON FUNCTION capstone.assert_plans() IS
  'Raises an error (so psql -v ON_ERROR_STOP=1 exits non-zero) when any watched query fails the plan gate.';

-- Sharding: catalog and statistics readers that store their ranking as evidence; for anyone.
COMMENT ON FUNCTION capstone.shard_advice(name, integer[], integer) IS
  'Ranks candidate shard keys of a schema (columns joined by foreign keys): tables carrying each, cardinality and skew from pg_stats, hot values, the expected hottest shard''s share at each shard count under hash distribution, co-located vs cross-shard joins, reference-table candidates, fan-out queries from pg_stat_statements, a score and the reasoning. Refuses to guess without statistics (55000). Stored in capstone.evidence.';
COMMENT ON FUNCTION capstone.shard_plan(name, name, integer) IS
  'The steps for distributing a schema by its best (or the named) shard key, each with the Citus DDL it maps to and why: shard count, reference tables, co-located distributed tables in foreign-key order, hot-key isolation, split and read replicas, fan-out queries, and a balance check.';

-- Triage: read-only, for anyone (each probe sees what the caller may see).
COMMENT ON FUNCTION capstone.triage(integer) IS
  'On-call first look: one row per failure mode (schema, index, statistics, bloat, pooling, migration, sharding), each from a live diagnostic query run under a lock timeout and a statement timeout (probe_timeout_ms), with what it found, a severity and the first fix as SQL.';

-- The report: reads the caller's own evidence (and, when asked, other roles' that the
-- caller may see) and runs triage.
COMMENT ON FUNCTION capstone.report(text[]) IS
  'The evidence report as Markdown: for each gate the claim, the captured proof (plans before/after, gap tables, figures) and the verdict, or which gates have no evidence yet; ends with a live triage. Shows only evidence the reader captured, unless roles names others (e.g. report(roles => array[''alice'', current_user])): each other role''s evidence is a part of its own, every section and verdict naming the role.';
COMMENT ON FUNCTION capstone.report_charts(text[]) IS
  'The charts the report links, as SVG with their data as CSV (file_name.svg / file_name.csv), with the role whose evidence each draws; roles as in capstone.report.';

-- Isolation: opens sessions and writes fixture rows: granted deliberately.
REVOKE ALL ON FUNCTION capstone.anomaly_demo(text, text) FROM PUBLIC;
COMMENT ON FUNCTION capstone.anomaly_demo(text, text) IS
  'Reproduces a concurrency anomaly with real concurrent sessions (capstone background workers running as the current role) in a fixed, lock-observed interleaving. The catalogue (g0, g1a, g1b, g1c, otv, pmp, pmp_write, p4, g_single, g_single_write, g2_item, g2, read_only, read_only_deferrable, or their descriptive aliases) runs on a scratch table in capstone_scratch under read committed, repeatable read or serializable, or at read committed with a fix where it reaches the conflict (for_update, for_share, atomic_update, advisory_lock, constraint; isolation_matrix lists each case''s options); lost_update and write_skew run on the lab''s tables, also under select for update, for no key update, atomic update or advisory lock. One row per statement with result, SQLSTATE and wait (and whom it waited for); the last row says whether the anomaly was observed or how it was prevented.';
REVOKE ALL ON FUNCTION capstone.isolation_matrix() FROM PUBLIC;
COMMENT ON FUNCTION capstone.isolation_matrix() IS
  'Runs every catalogue anomaly under read committed, repeatable read and serializable on three real sessions and scratch tables, and returns one row per anomaly: observed, or prevented and how (snapshot, blocked: which session waited for which, 40001, 40P01, a constraint), and its fix options besides the level (the ones anomaly_demo runs first). Stores the matrix in capstone.evidence.';

-- Migration: starting jobs and running DDL change data and schema: granted deliberately.
GRANT SELECT ON capstone.backfill_jobs, capstone.backfill_batches TO PUBLIC;
GRANT SELECT ON capstone.ddl_attempts TO PUBLIC;
REVOKE ALL ON FUNCTION capstone.backfill_start(regclass, text, text, integer, interval, interval, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION capstone.backfill_pause(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION capstone.backfill_resume(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION capstone.backfill_cancel(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION capstone.safe_ddl(text, interval, integer, text[], boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION capstone.lock_watch(interval, interval, text) FROM PUBLIC;
COMMENT ON FUNCTION capstone.backfill_start(regclass, text, text, integer, interval, interval, integer) IS
  'Queues UPDATE rel SET set_clause WHERE where_clause as a backfill job: keyset batches over the primary key (or a unique NOT NULL integer key), one transaction each under lock_timeout, retried with backoff on 55P03, run by a background worker as the calling role. Validated now under your privileges. Returns the job id.';
COMMENT ON FUNCTION capstone.backfill_status(bigint) IS 'Progress of your backfill jobs: percent, rows/s, ETA, batches, retries, lock timeouts, state, last error.';
COMMENT ON FUNCTION capstone.backfill_pause(bigint) IS 'Pauses a job after its current batch; backfill_resume continues from the last committed batch.';
COMMENT ON FUNCTION capstone.backfill_resume(bigint) IS 'Resumes a paused or failed job from its last committed batch.';
COMMENT ON FUNCTION capstone.backfill_cancel(bigint) IS 'Cancels a job after its current batch; committed batches stay applied.';
COMMENT ON FUNCTION capstone.safe_ddl(text, interval, integer, text[], boolean) IS
  'Runs one DDL statement under lock_timeout with exponential backoff and jitter, logging every attempt in capstone.ddl_attempts, so it never queues behind a lock while blocking everyone behind it. The statement is linted first (capstone.lint_migration): its findings are the warnings, and a rewrite or full scan under a write-blocking lock on a table of 10 MB or more is refused (55000, with the finding and the safe alternative) unless allow names it (''rewrite'', ''scan''). dry_run => true returns the findings without running anything.';
COMMENT ON FUNCTION capstone.lock_snapshot() IS 'Locks held and awaited now, with blocking pids and how many sessions queue behind each holder.';
COMMENT ON FUNCTION capstone.lock_watch(interval, interval, text) IS 'Samples lock_snapshot every `every` for `duration` and stores the samples (and a chart) as migration evidence.';

-- Pooling: pool_size holds a backend for its sampling window, and all three store evidence
-- (as lock_watch does); pgbouncer_stats opens network connections through dblink.
-- Granted deliberately, e.g. to pg_monitor.
REVOKE ALL ON FUNCTION capstone.pool_size(interval, integer, double precision, double precision, integer, integer, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION capstone.pool_size_json(interval, integer, double precision, double precision, integer, integer, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION capstone.pooling_audit(boolean) FROM PUBLIC;
COMMENT ON FUNCTION capstone.pool_size(interval, integer, double precision, double precision, integer, integer, boolean) IS
  'Pool sizing written out term by term: samples pg_stat_database, pg_stat_activity and pg_stat_statements for the sample window, then shows the core-bound estimate (cores x core_factor), Little''s law L = lambda x W measured both ways, the memory ceiling (work_mem x nodes_per_query + per-backend overhead against RAM) and the recommended default_pool_size, max_client_conn and max_connections with headroom. A quiet server falls back to the core-bound estimate and says why. Stored in capstone.evidence.';
COMMENT ON FUNCTION capstone.pool_size_json(interval, integer, double precision, double precision, integer, integer, boolean) IS
  'capstone.pool_size as one jsonb document: {recommendation, terms, evidence_id}.';
COMMENT ON FUNCTION capstone.pooling_audit(boolean) IS
  'What PgBouncer transaction pooling breaks for this workload, from pg_stat_statements and the catalog: session-level SET, SET ROLE, set_config(..., false), LISTEN, session advisory locks, WITH HOLD cursors, temp tables, SQL PREPARE and protocol-level prepared statements (PgBouncer < 1.21), idle-in-transaction sessions. One row per finding with evidence, risk and fix; stored in capstone.evidence.';
REVOKE ALL ON FUNCTION capstone.pgbouncer_stats(text) FROM PUBLIC;
COMMENT ON FUNCTION capstone.pgbouncer_stats(text) IS
  'SHOW VERSION, SHOW POOLS and SHOW STATS of a PgBouncer admin console (conninfo to its virtual database pgbouncer), one row per metric, read through dblink. Needs CREATE EXTENSION dblink.';

-- Bloat: the reports are read-only and for everyone (they read pages only of tables the
-- caller may SELECT); the scenario starts workers and rewrites rows: granted deliberately.
COMMENT ON FUNCTION capstone.bloat_report(text, regclass, bigint, text) IS
  'One row per table, materialized view, TOAST table and btree index (in schema_name, or of rel), the most reclaimable bytes first, capstone''s own schemas only when named: total_bytes, est_bloat_bytes/est_bloat_pct (free plus dead space beyond the fillfactor reserve, as pgstattuple counts it; 1 decimal), both sizes as pg_size_pretty, live and dead tuples, last vacuums, removable (could VACUUM remove the dead tuples now, judged by PostgreSQL''s own HeapTupleSatisfiesVacuum against the current xmin horizon on the pages read) and method. mode fast (default) reads statistics plus capstone.bloat_sample_pages sampled pages per relation; approx reads the heap pages the visibility map does not cover and btree indexes in full; exact uses pgstattuple/pgstatindex. Rows with less than min_bytes of bloat are left out.';
COMMENT ON FUNCTION capstone.xmin_holders() IS
  'Everything in the cluster holding back the xmin horizon, oldest first: sessions with an old snapshot or transaction (backend, idle_in_transaction), replication slots (xmin and catalog_xmin), prepared transactions and hot_standby_feedback from standbys, each with the SQL that releases it. Leaves out this session, its parallel workers, autovacuum workers and backends PostgreSQL itself ignores (VACUUM, logical decoding).';
REVOKE ALL ON FUNCTION capstone.bloat_scenario(regclass, integer, interval) FROM PUBLIC;
COMMENT ON FUNCTION capstone.bloat_scenario(regclass, integer, interval) IS
  'Starts the long-transaction scenario: a background worker opens a REPEATABLE READ transaction and holds its snapshot (at most hold), then every row of rel (default: a fresh scratch table capstone_scratch.bloat_lab with that many rows) is updated. Returns and stores the sizes before and after. Finish it with capstone.bloat_scenario_finish() in a later statement.';
REVOKE ALL ON FUNCTION capstone.bloat_scenario_finish(bigint) FROM PUBLIC;
COMMENT ON FUNCTION capstone.bloat_scenario_finish(bigint) IS
  'Finishes a bloat scenario (default: the latest): shows the holder in xmin_holders and removable = false, runs VACUUM (VERBOSE) in a worker while the snapshot is held (dead tuples not yet removable), ends the holder, runs VACUUM again and reports the dead tuples removed, the free space left and removable = true. Every step is stored in capstone.evidence.';

-- index advice: per-session state, read-only for the database; PUBLIC may EXECUTE (they plan as the caller)
COMMENT ON FUNCTION capstone.hypo_index(text) IS
  'Defines a hypothetical index from one CREATE INDEX statement (btree with several columns, INCLUDE, WHERE, expressions, DESC/NULLS; hash, brin, gist, gin, spgist; a name, CONCURRENTLY and IF NOT EXISTS are accepted). Only plain EXPLAIN in this session plans with it, never EXPLAIN ANALYZE or a real execution; it is gone at disconnect. Returns its id and the name EXPLAIN shows.';
COMMENT ON FUNCTION capstone.hypo_indexes() IS
  'This session''s hypothetical indexes: id, name, table, access method and the CREATE INDEX they came from.';
COMMENT ON FUNCTION capstone.hypo_drop(oid) IS
  'Forgets one hypothetical index of this session; false when the id is not one.';
COMMENT ON FUNCTION capstone.hypo_reset() IS
  'Forgets every hypothetical index of this session and unhides every hidden index; returns how many hypothetical indexes went.';
COMMENT ON FUNCTION capstone.hypo_size(oid) IS
  'A hypothetical index''s estimated size (bytes and pretty) and rows, from the table''s current statistics (the same formulas as hypopg).';
COMMENT ON FUNCTION capstone.hypo_hide(regclass) IS
  'Plain EXPLAIN in this session plans as if this index did not exist (to ask: can I drop it?); EXPLAIN ANALYZE and real executions still use it. False when already hidden.';
COMMENT ON FUNCTION capstone.hypo_unhide(regclass) IS
  'Undoes hypo_hide; false when the index was not hidden.';

COMMENT ON FUNCTION capstone.lint_migration(text, bigint, double precision) IS
  'Lints a migration without running it: splits it with PostgreSQL''s parser and scanner, walks each statement''s parse tree and grades it with the live catalog (volatility, validated checks, binary-coercible casts, domain constraints, PostgreSQL''s own partition-bound proof for ATTACH PARTITION, table sizes). One row per finding: statement number, line, rule, severity, the lock taken and what it blocks, rewrite/scan/none, the table and its size, the estimated lock time at throughput_mb_s, the finding and the safe alternative as SQL. Tracks BEGIN/COMMIT and SET/RESET of lock_timeout, statement_timeout and transaction_timeout; flags what makes a rerun of a half-applied migration fail, tables named without a schema (with the schema they resolve to) and identifiers over 63 bytes; tables created earlier in the migration are exempt; tables below small_table_bytes get a lower severity. A statement that does not parse gets its own 42601 row. Read-only; PUBLIC may run it.';

-- index advice from the workload
COMMENT ON FUNCTION capstone.index_advice(bigint, double precision, integer) IS
  'Indexes worth adding for the caller''s workload in pg_stat_statements (its own statements; every role''s for a superuser): candidates from each statement''s WHERE/JOIN conditions, ORDER BY and GROUP BY (single, multi-column with equality keys first, covering, partial), costed as hypothetical indexes on the generic plans; an index is kept when the weighted cost (cost x calls) of the statements it serves drops by at least min_savings_pct, a small set is chosen greedily, and candidates an existing index prefix serves are skipped. Each row is stored as evidence; prove one with capstone.index_prove(advice_id).';
REVOKE ALL ON FUNCTION capstone.index_advice(bigint, double precision, integer) FROM PUBLIC;
COMMENT ON FUNCTION capstone.index_drop_advice() IS
  'Indexes that could go, on tables the caller may read: duplicates, btree prefixes of another index, never scanned since the statistics were reset (stats_reset shown), and those whose hiding leaves every watched plan of the caller unchanged. Never one that backs a constraint or the replica identity, or one another finding relies on. Reads and plans only.';
COMMENT ON FUNCTION capstone.index_prove(bigint, boolean, bigint, text[], integer) IS
  'Builds an advised index for real, as the caller, and runs each statement it serves, or each of queries, with EXPLAIN ANALYZE through capstone.explain before and after; returns the hypothetical estimate next to the measured times and a verdict from the measurements, and stores the proof as evidence. By default the build is CREATE INDEX CONCURRENTLY in a background worker, so it takes two calls: the first measures before and starts the build (verdict building), the second measures after once the index is valid (55000 while it builds; a failed build is reported with its error). concurrently => false builds it with a plain CREATE INDEX in the caller''s transaction, which blocks writes. A table over max_table_bytes is refused.';
REVOKE ALL ON FUNCTION capstone.index_prove(bigint, boolean, bigint, text[], integer) FROM PUBLIC;

-- search_path: every capstone function runs with search_path = pg_catalog, pg_temp, so a
-- view, function or operator a user creates (public.pg_stat_activity, an "=" in a schema
-- listed before pg_catalog) can never stand in for one capstone uses. The functions that
-- run SQL the caller wrote are the exception at this level: that SQL must resolve names
-- as the caller would. They pin the path themselves for their own statements and restore
-- the caller's only around the caller's SQL (src/search_path.rs).
DO $pin$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN
    SELECT p.oid::regprocedure
      FROM pg_catalog.pg_proc p
     WHERE p.pronamespace = 'capstone'::regnamespace
       AND NOT (p.proname IN ('explain', 'plan_gate', 'plan_gate_json', 'assert_plans', 'safe_ddl', 'backfill_start', 'hypo_index', 'lint_migration', 'index_advice', 'index_drop_advice', 'index_prove')
                OR (p.proname IN ('estimate_gap', 'explain_diff') AND p.proargtypes[0] = 'pg_catalog.text'::pg_catalog.regtype))
     ORDER BY p.oid
  LOOP
    EXECUTE pg_catalog.format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp', f);
  END LOOP;
END
$pin$;
