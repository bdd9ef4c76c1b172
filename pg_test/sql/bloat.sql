-- Bloat gate: who holds the xmin horizon (a held snapshot in another session, a
-- prepared transaction, a replication slot), the long-transaction scenario end to
-- end, estimate accuracy against pgstattuple, and bad input with SQLSTATEs.
-- Sizes and timings vary by version and run: everything is printed as booleans or
-- as exact counts.
SET client_min_messages = warning;
DROP ROLE IF EXISTS capstone_golden_viewer;
RESET client_min_messages;
CREATE EXTENSION capstone;

-- nothing holds the horizon in a quiet cluster
SELECT count(*) AS holders FROM capstone.xmin_holders();
-- exact mode needs pgstattuple, and says so
SELECT * FROM capstone.bloat_report(mode => 'exact');
\echo :LAST_ERROR_SQLSTATE
-- finishing a scenario that was never started
SELECT * FROM capstone.bloat_scenario_finish();
\echo :LAST_ERROR_SQLSTATE
CREATE EXTENSION pgstattuple;

-- == the long-transaction scenario ==
-- 1. a background worker takes a REPEATABLE READ snapshot and holds it; then every
--    row of a fresh scratch table is rewritten
CREATE TABLE started AS SELECT * FROM capstone.bloat_scenario(updates => 20000, hold => '5 min');
SELECT scenario_id, step, metric, value FROM started
 WHERE metric IN ('rows', 'holder_named_in_xmin_holders', 'rows_updated');
SELECT value > 90 AS heap_doubled FROM started WHERE metric = 'heap_growth_pct';
DROP TABLE started;
-- the holder is another session, named with the SQL that ends it
SELECT holder_kind, detail LIKE 'capstone bloat holder, idle in transaction since %' AS is_the_worker,
       pid <> pg_backend_pid() AS other_session, database = current_database() AS this_database,
       xmin_age_xids >= 0 AS has_xmin, held_for >= '0'::interval AS has_duration,
       fix = format('SELECT pg_catalog.pg_terminate_backend(%s);', pid) AS fix_is_runnable
  FROM capstone.xmin_holders();
-- while it holds, the dead row versions exist and VACUUM could not remove them
SELECT kind, dead_tuples, removable, est_bloat_pct > 40 AS half_bloated
  FROM capstone.bloat_report(rel => 'capstone_scratch.bloat_lab') WHERE kind = 'table';
-- 2. VACUUM (VERBOSE) in a worker while held, end the holder, VACUUM again, measure
CREATE TABLE finish AS SELECT * FROM capstone.bloat_scenario_finish();
SELECT step, metric, value FROM finish
 WHERE metric IN ('holder_named_in_xmin_holders', 'dead_tuples', 'removable', 'dead_not_yet_removable',
                  'removed', 'verbose_lines_not_yet_removable', 'holder_terminated')
 ORDER BY step <> 'held', step <> 'vacuum while held', step <> 'release', step <> 'vacuum after release', metric;
SELECT detail FROM finish WHERE metric = 'dead_not_yet_removable' ORDER BY step DESC;
SELECT bool_and(value > 0) AS has_free_space FROM finish
 WHERE step = 'after' AND metric IN ('fsm_free_bytes', 'pgstattuple_free_percent', 'est_bloat_pct');
SELECT abs(max(value) FILTER (WHERE metric = 'est_bloat_pct')
           - max(value) FILTER (WHERE metric = 'pgstattuple_free_percent')) <= 5 AS estimate_matches_pgstattuple
  FROM finish WHERE step = 'after';
DROP TABLE finish;
-- the holder is gone; every step is evidence
SELECT count(*) AS holders FROM capstone.xmin_holders();
SELECT label FROM capstone.evidence WHERE gate = 'bloat' ORDER BY id;
SELECT kind, dead_tuples, removable FROM capstone.bloat_report(rel => 'capstone_scratch.bloat_lab')
 WHERE kind = 'table';
-- a finished scenario cannot be finished again
SELECT * FROM capstone.bloat_scenario_finish();
\echo :LAST_ERROR_SQLSTATE

-- == a prepared transaction holds the horizon too ==
CREATE TABLE px_demo (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false);
INSERT INTO px_demo SELECT g, g FROM generate_series(1, 1000) g;
BEGIN;
SELECT count(*) AS read_in_prepared FROM px_demo;
PREPARE TRANSACTION 'capstone_golden_px';
DELETE FROM px_demo WHERE id <= 500;
SELECT holder_kind, holder, database = current_database() AS this_database, fix
  FROM capstone.xmin_holders();
SELECT dead_tuples, removable FROM capstone.bloat_report(rel => 'px_demo') WHERE kind = 'table';
ROLLBACK PREPARED 'capstone_golden_px';
SELECT count(*) AS holders FROM capstone.xmin_holders();
SELECT dead_tuples, removable FROM capstone.bloat_report(rel => 'px_demo') WHERE kind = 'table';

-- == replication slots: a logical slot's catalog_xmin is named; a physical slot holds no xmin ==
SELECT slot_name FROM pg_create_physical_replication_slot('capstone_golden_phys', true);
SELECT count(*) AS holders_for_physical_slot FROM capstone.xmin_holders();
SELECT slot_name FROM pg_create_logical_replication_slot('capstone_golden_slot', 'pgoutput');
SELECT holder_kind, holder, database = current_database() AS this_database,
       detail LIKE '%holds back only system catalogs' AS catalogs_only, fix
  FROM capstone.xmin_holders();
SELECT pg_drop_replication_slot('capstone_golden_slot');
SELECT pg_drop_replication_slot('capstone_golden_phys');
SELECT count(*) AS holders FROM capstone.xmin_holders();

-- == estimates against pgstattuple ==
-- three identical lab-style tables with 0%, ~25% and ~50% induced bloat (DELETE, then
-- plain VACUUM), a deduplicated index on a low-cardinality column in each, a
-- TOAST-heavy table and a fillfactor-70 table
CREATE FUNCTION golden_orders(name text, n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, tenant_id int NOT NULL, status text NOT NULL,
                    total_cents bigint NOT NULL, note text, created_at timestamptz NOT NULL)
                  WITH (autovacuum_enabled = false)', name);
  EXECUTE format($f$INSERT INTO %I
                    SELECT g, 1 + g %% 50, (ARRAY['pending', 'paid', 'shipped', 'refunded'])[1 + g %% 4],
                           (g * 7919) %% 100000,
                           CASE WHEN g %% 10 = 0 THEN NULL ELSE 'note ' || repeat('x', g %% 30) END,
                           timestamptz '2026-01-01 00:00+00' + g * interval '1 minute'
                      FROM generate_series(1, %s) g$f$, name, n);
  EXECUTE format('CREATE INDEX %I ON %I (status)', name || '_status_idx', name);
END $$;
SELECT golden_orders('bloat_0', 200000), golden_orders('bloat_25', 200000), golden_orders('bloat_50', 200000);
DELETE FROM bloat_25 WHERE id % 4 = 0;
DELETE FROM bloat_50 WHERE id % 2 = 0;
CREATE TABLE toasty (id int PRIMARY KEY, doc text NOT NULL) WITH (autovacuum_enabled = false);
INSERT INTO toasty
SELECT g, (SELECT string_agg(md5((g * 1000 + k)::text), '') FROM generate_series(1, 40 + g % 200) k)
  FROM generate_series(1, 3000) g;
DELETE FROM toasty WHERE id % 3 = 0;
CREATE TABLE filled (id int PRIMARY KEY, v text) WITH (fillfactor = 70, autovacuum_enabled = false);
INSERT INTO filled SELECT g, md5(g::text) FROM generate_series(1, 60000) g;
-- this session's changes reach the shared statistics before VACUUM resets them
SELECT pg_stat_force_next_flush();
VACUUM bloat_0, bloat_25, bloat_50, toasty, filled;
ANALYZE bloat_0, bloat_25, bloat_50, toasty, filled;

CREATE TABLE est AS
SELECT f.relation, f.kind, f.relid, f.est_bloat_pct AS fast, a.est_bloat_pct AS approx,
       e.est_bloat_pct AS exact, f.method
  FROM capstone.bloat_report(schema_name => 'public') f
  JOIN capstone.bloat_report(schema_name => 'public', mode => 'approx') a USING (relid)
  JOIN capstone.bloat_report(schema_name => 'public', mode => 'exact') e USING (relid)
 WHERE f.total_bytes > 0 AND f.relation NOT LIKE 'px\_demo%';
SET capstone.bloat_sample_pages = 0;
ALTER TABLE est ADD COLUMN catalog float8;
UPDATE est SET catalog = c.est_bloat_pct
  FROM capstone.bloat_report(schema_name => 'public') c WHERE c.relid = est.relid;
RESET capstone.bloat_sample_pages;
-- default mode within 5 points of pgstattuple on heaps (TOAST included), 10 on
-- indexes (deduplication included); the catalog-only estimate misses TOAST chunk
-- packing and deduplicated indexes with free space
SELECT e.relation, e.kind, e.exact BETWEEN x.lo AND x.hi AS bloat_as_induced,
       abs(fast - exact) <= CASE WHEN e.kind = 'index' THEN 10 ELSE 5 END AS fast_ok,
       abs(approx - exact) <= 5 AS approx_ok,
       abs(catalog - exact) <= CASE WHEN e.kind = 'index' THEN 10 ELSE 5 END AS catalog_ok
  FROM est e
  LEFT JOIN (VALUES ('bloat_0', 'table', 0, 5), ('bloat_0_pkey', 'index', 0, 5), ('bloat_0_status_idx', 'index', 0, 5),
                    ('bloat_25', 'table', 18, 30), ('bloat_25_pkey', 'index', 18, 30), ('bloat_25_status_idx', 'index', 18, 30),
                    ('bloat_50', 'table', 40, 55), ('bloat_50_pkey', 'index', 40, 55), ('bloat_50_status_idx', 'index', 40, 55),
                    ('toasty', 'table', 25, 40), ('toasty', 'toast', 30, 50), ('toasty_pkey', 'index', 20, 40),
                    ('filled', 'table', 0, 5), ('filled_pkey', 'index', 0, 5)) x(relation, kind, lo, hi)
         ON x.relation = e.relation AND x.kind = e.kind
 ORDER BY e.relation, e.kind;
-- against pgstattuple itself (free + dead): heaps at fillfactor 100, the TOAST table included
SELECT e.relation, e.kind, abs(e.fast - (p.free_percent + p.dead_tuple_percent)) <= 5 AS within_5_points
  FROM est e, pgstattuple(e.relid) p
 WHERE e.kind IN ('table', 'toast') AND e.relation <> 'filled'
 ORDER BY 1, 2;
-- the fillfactor reserve is not bloat: pgstattuple reports ~30% free on a fresh fillfactor-70 table
SELECT p.free_percent > 25 AS pgstattuple_free_over_25, e.fast < 5 AS fast_under_5, e.exact < 5 AS exact_under_5
  FROM est e, pgstattuple(e.relid) p WHERE e.relation = 'filled' AND e.kind = 'table';
-- heap and TOAST together: one figure for the table as it sits on disk
SELECT abs(sum(fast / 100 * pg_relation_size(relid)) - sum(exact / 100 * pg_relation_size(relid)))
         / sum(pg_relation_size(relid)) * 100 <= 5 AS heap_plus_toast_within_5_points
  FROM est WHERE relation = 'toasty' AND kind IN ('table', 'toast');
-- a freshly built deduplicated index is about 3x smaller than one index tuple per row
SELECT pg_relation_size('bloat_0_status_idx') * 2 < pg_relation_size('bloat_0_pkey') AS dedup_is_compact;
DROP TABLE est;

-- min_bytes leaves out the rows with less bloat; a schema filter narrows to one schema
SELECT relation, kind FROM capstone.bloat_report(schema_name => 'public', min_bytes => 3000000)
 ORDER BY relation, kind;
SELECT DISTINCT schema FROM capstone.bloat_report(schema_name => 'capstone_scratch');
-- the default order is the useful one: most reclaimable bytes first, shares to 1 decimal,
-- and capstone's own schemas only when named (the schema filter above names one)
SELECT bool_and(est_bloat_bytes >= coalesce(next_bytes, 0)) AS biggest_first,
       bool_and(est_bloat_pct = round(est_bloat_pct::numeric, 1)::float8) AS pct_one_decimal,
       count(*) FILTER (WHERE schema IN ('capstone', 'capstone_scratch')) AS own_rows
  FROM (SELECT schema, est_bloat_bytes, est_bloat_pct,
               lead(est_bloat_bytes) OVER () AS next_bytes
          FROM capstone.bloat_report()) r;
-- a partitioned table reports its partitions
CREATE TABLE parted (id int, v text) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (1000);
CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (1000) TO (2000);
SELECT relation, kind FROM capstone.bloat_report(rel => 'parted') ORDER BY relation, kind;

-- == bad input, each with its SQLSTATE ==
SELECT * FROM capstone.bloat_report(mode => 'slow');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.bloat_report(mode => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.bloat_report(min_bytes => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.bloat_report(min_bytes => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.bloat_report(schema_name => 'no_such_schema');
\echo :LAST_ERROR_SQLSTATE
CREATE VIEW a_view AS SELECT 1 AS x;
SELECT * FROM capstone.bloat_report(rel => 'a_view');
\echo :LAST_ERROR_SQLSTATE
CREATE SEQUENCE a_sequence;
SELECT * FROM capstone.bloat_report(rel => 'a_sequence');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE tags (id int, labels int[]);
CREATE INDEX tags_gin ON tags USING gin (labels);
SELECT * FROM capstone.bloat_report(rel => 'tags_gin');
\echo :LAST_ERROR_SQLSTATE
-- a dropped relation (its OID differs per run, so only the SQLSTATE is shown)
CREATE TABLE soon_gone (id int);
SELECT 'soon_gone'::regclass::oid AS gone \gset
DROP TABLE soon_gone;
\set VERBOSITY sqlstate
SELECT * FROM capstone.bloat_report(rel => :gone::regclass);
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.bloat_scenario(updates => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.bloat_scenario(hold => '0 s');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.bloat_scenario(hold => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.bloat_scenario(rel => 'a_view');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.bloat_scenario_finish(999999);
\echo :LAST_ERROR_SQLSTATE
-- a role that may not read a table gets 42501 for it; starting workers is not granted to PUBLIC
CREATE ROLE capstone_golden_viewer;
SET ROLE capstone_golden_viewer;
SELECT count(*) FILTER (WHERE schema <> 'capstone') AS tables_it_cannot_read_shown FROM capstone.bloat_report();
SELECT * FROM capstone.bloat_report(rel => 'bloat_0');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.bloat_scenario();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS holders FROM capstone.xmin_holders();
RESET ROLE;
DROP ROLE capstone_golden_viewer;
