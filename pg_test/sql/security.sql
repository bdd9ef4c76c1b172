-- Security: what PUBLIC may execute, no SECURITY DEFINER, a pinned search_path on every
-- function, a low-privilege role refused with 42501 wherever it should be, and shadow
-- objects (the CVE-2018-1058 class) that capstone never resolves to.
SET client_min_messages = warning;
DROP ROLE IF EXISTS capstone_sec_low;
DROP ROLE IF EXISTS capstone_sec_other;
RESET client_min_messages;
CREATE EXTENSION capstone;

-- 1. the catalog audit ------------------------------------------------------------------
-- no SECURITY DEFINER function at all
SELECT count(*) AS security_definer_functions
  FROM pg_proc WHERE pronamespace = 'capstone'::regnamespace AND prosecdef;

-- every function: executable by PUBLIC?, and its search_path. "(in code)" marks the
-- functions that run the caller's SQL: they pin the path themselves (src/search_path.rs).
CREATE ROLE capstone_sec_low;
SELECT p.proname AS function, pg_get_function_identity_arguments(p.oid) AS arguments,
       has_function_privilege('capstone_sec_low', p.oid, 'EXECUTE') AS public_may_execute,
       coalesce(array_to_string(p.proconfig, ', '), '(in code)') AS config
  FROM pg_proc p
 WHERE p.pronamespace = 'capstone'::regnamespace
 ORDER BY 1, 2;

-- what runs caller-supplied SQL, starts workers or changes data: none of it for PUBLIC
WITH privileged(name) AS (
  VALUES ('worker_smoke'), ('lab_install'), ('explain'), ('explain_diff'), ('plan_gate'),
         ('plan_gate_json'), ('assert_plans'), ('anomaly_demo'), ('isolation_matrix'), ('backfill_start'),
         ('backfill_pause'), ('backfill_resume'), ('backfill_cancel'), ('safe_ddl'),
         ('lock_watch'), ('pgbouncer_stats'), ('bloat_scenario'), ('bloat_scenario_finish'),
         ('index_advice'), ('index_prove'))
SELECT p.oid::regprocedure AS granted_to_public_by_mistake
  FROM pg_proc p JOIN privileged ON p.proname = privileged.name
 WHERE p.pronamespace = 'capstone'::regnamespace
   AND has_function_privilege('capstone_sec_low', p.oid, 'EXECUTE')
   AND NOT (p.proname = 'explain_diff' AND p.proargtypes[0] = 'bigint'::regtype);
SELECT p.oid::regprocedure AS runs_caller_sql_for_public
  FROM pg_proc p
 WHERE p.pronamespace = 'capstone'::regnamespace AND p.proname = 'estimate_gap'
   AND p.proargtypes[0] = 'text'::regtype
   AND has_function_privilege('capstone_sec_low', p.oid, 'EXECUTE');

-- tables: what PUBLIC holds on each (row-level security decides which rows)
SELECT c.relname AS relation, c.relrowsecurity AS row_security,
       (SELECT string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type)
          FROM aclexplode(c.relacl) a WHERE a.grantee = 0) AS public_privileges
  FROM pg_class c
 WHERE c.relnamespace = 'capstone'::regnamespace AND c.relkind IN ('r', 'p', 'v')
 ORDER BY 1;

-- 2. a low-privilege role ------------------------------------------------------------------
CREATE SCHEMA sec;
CREATE TABLE sec.t (id bigint PRIMARY KEY, v int);
INSERT INTO sec.t SELECT g, g FROM generate_series(1, 1000) g;
CREATE TABLE sec.secret (id bigint PRIMARY KEY, note text);
INSERT INTO sec.secret SELECT g, 'x' FROM generate_series(1, 1000) g;
DELETE FROM sec.secret WHERE id % 2 = 0;
ANALYZE sec.t, sec.secret;
GRANT USAGE ON SCHEMA sec TO capstone_sec_low;
GRANT SELECT ON sec.t TO capstone_sec_low;
SELECT count(*) > 0 AS superuser_has_evidence FROM capstone.estimate_gap('SELECT count(*) FROM sec.t');
SELECT max(id) AS superuser_capture FROM capstone.evidence WHERE payload ? 'plan' \gset
-- state another role must not see: a superuser's job, watched query, DDL attempt, and a
-- prepared transaction holding the xmin horizon (xmin_holders names it to everyone)
CREATE TABLE sec.jobs_t (id bigint PRIMARY KEY, v int);
INSERT INTO sec.jobs_t SELECT g, 0 FROM generate_series(1, 100) g;
SELECT capstone.backfill_start('sec.jobs_t', 'v = 1') AS superuser_job \gset
INSERT INTO capstone.watched_queries (name, sql) VALUES ('superuser point', 'SELECT * FROM sec.t WHERE id = 1');
SELECT attempt, outcome FROM capstone.safe_ddl('ALTER TABLE sec.jobs_t ADD COLUMN note text');
BEGIN;
INSERT INTO sec.jobs_t VALUES (1000, 0);
PREPARE TRANSACTION 'capstone_sec_px';
-- and another session holding a lock that lock_snapshot shows (it leaves out the caller)
CREATE EXTENSION dblink;
SELECT public.dblink_connect('sec_holder', format('host=%s port=%s dbname=%s',
         split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
         current_database())) AS holder_connected;
SELECT public.dblink_exec('sec_holder', 'BEGIN; LOCK TABLE sec.t IN SHARE MODE') AS holder_locked;

SET ROLE capstone_sec_low;
-- refused, each with 42501
SELECT * FROM capstone.worker_smoke();
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.lab_install(0.01);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.explain('SELECT 1');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.estimate_gap('SELECT 1');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.explain_diff('SELECT 1', 'ANALYZE sec.t');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.plan_gate();
\echo :LAST_ERROR_SQLSTATE
SELECT capstone.plan_gate_json();
\echo :LAST_ERROR_SQLSTATE
SELECT capstone.assert_plans();
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.anomaly_demo('lost_update', 'read_committed');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.isolation_matrix();
\echo :LAST_ERROR_SQLSTATE
SELECT capstone.backfill_start('sec.t', 'v = v + 1');
\echo :LAST_ERROR_SQLSTATE
SELECT capstone.backfill_pause(1);
\echo :LAST_ERROR_SQLSTATE
SELECT capstone.backfill_resume(1);
\echo :LAST_ERROR_SQLSTATE
SELECT capstone.backfill_cancel(1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.safe_ddl('ALTER TABLE sec.t ADD COLUMN w int');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.lock_watch('1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.pgbouncer_stats('host=127.0.0.1 dbname=pgbouncer');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.bloat_scenario('sec.t');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.bloat_scenario_finish();
\echo :LAST_ERROR_SQLSTATE
-- capstone's records cannot be written or changed behind capstone's back, by anyone
INSERT INTO capstone.evidence (gate, label, payload, captured_by)
  VALUES ('sharding', 'forged', '{"verdict": "shard now", "ceiling_tps": 1}', 'capstone_sec_low');
\echo :LAST_ERROR_SQLSTATE
UPDATE capstone.evidence SET label = 'forged';
\echo :LAST_ERROR_SQLSTATE
INSERT INTO capstone.ddl_attempts (ddl, attempt, waited_ms) VALUES ('forged', 1, 0);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO capstone.worker_smoke_log (token, pid, database, role) VALUES (-1, 0, 'x', 'capstone_sec_low');
\echo :LAST_ERROR_SQLSTATE
DELETE FROM capstone.backfill_jobs;
\echo :LAST_ERROR_SQLSTATE
-- a watch list is per role: its own rows only, never as another role
INSERT INTO capstone.watched_queries (name, sql, owner) VALUES ('x', 'SELECT 1', 'postgres');
\echo :LAST_ERROR_SQLSTATE
-- another role's evidence, jobs, DDL log and watch list are not visible
SELECT count(*) AS evidence_rows_visible FROM capstone.evidence;
SELECT * FROM capstone.estimate_gap(:superuser_capture);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS jobs_visible FROM capstone.backfill_status();
SELECT count(*) AS job_rows_visible FROM capstone.backfill_jobs;
SELECT count(*) AS ddl_attempts_visible FROM capstone.ddl_attempts;
SELECT count(*) AS watched_queries_visible FROM capstone.watched_queries;
SELECT count(*) AS smoke_rows_visible FROM capstone.worker_smoke_log;
-- the read-only reports work, on what this role may see
SELECT extension IS NOT NULL AS version_ok FROM capstone.version();
SELECT holder_kind, holder FROM capstone.xmin_holders() WHERE holder_kind = 'prepared_xact';
SELECT role, mode, object, granted FROM capstone.lock_snapshot() WHERE object = 'sec.t';
SELECT count(*) = 7 AS triage_ok FROM capstone.triage();
SELECT position('No evidence yet' IN capstone.report()) > 0 AS report_has_none_of_the_superusers,
       position('forged' IN capstone.report()) = 0 AS nothing_forged;
SELECT count(*) AS report_charts_visible FROM capstone.report_charts();
-- bloat_report reads pages only of tables this role may SELECT: sec.t yes, sec.secret no
SELECT relation FROM capstone.bloat_report('sec') ORDER BY 1;
SELECT * FROM capstone.bloat_report(rel => 'sec.secret');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.bloat_report('sec', mode => 'exact');
\echo :LAST_ERROR_SQLSTATE
SELECT rank, key_column FROM capstone.shard_advice('sec') ORDER BY rank;
RESET ROLE;
ROLLBACK PREPARED 'capstone_sec_px';
SELECT public.dblink_exec('sec_holder', 'COMMIT') AS holder_released;

-- 3. shadow objects ---------------------------------------------------------------------
-- A schema ahead of pg_catalog in the path holds look-alikes of catalog views, functions
-- and operators. Each one warns when it is used; capstone must never use one.
CREATE SCHEMA evil;
CREATE FUNCTION evil.trip(what text) RETURNS boolean LANGUAGE plpgsql AS
$$ BEGIN RAISE WARNING 'hijacked through %', what; RETURN true; END $$;
DO $$
DECLARE v text;
BEGIN
  FOREACH v IN ARRAY ARRAY['pg_stat_activity', 'pg_locks', 'pg_class', 'pg_namespace',
                           'pg_stat_user_tables', 'pg_stat_all_tables', 'pg_database', 'pg_settings',
                           'pg_prepared_xacts', 'pg_replication_slots', 'pg_index',
                           'pg_constraint', 'pg_roles', 'pg_stat_database', 'pg_stat_replication',
                           'pg_extension', 'pg_proc', 'pg_tables', 'pg_indexes']
  LOOP
    EXECUTE format('CREATE VIEW evil.%I AS SELECT * FROM pg_catalog.%I WHERE evil.trip(%L)', v, v, v);
  END LOOP;
END $$;
-- pg_stats and pg_attribute have anyarray columns a view cannot expose: the others
CREATE VIEW evil.pg_attribute AS
  SELECT attrelid, attname, atttypid, attnum, attnotnull, attisdropped, attidentity, attgenerated
    FROM pg_catalog.pg_attribute WHERE evil.trip('pg_attribute');
CREATE VIEW evil.pg_stats AS
  SELECT schemaname, tablename, attname, inherited, null_frac, avg_width, n_distinct,
         most_common_freqs, correlation
    FROM pg_catalog.pg_stats WHERE evil.trip('pg_stats');
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.trip('now()'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION evil.current_setting(text) RETURNS text LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.trip('current_setting()'); RETURN pg_catalog.current_setting($1); END $$;
CREATE FUNCTION evil.current_database() RETURNS name LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.trip('current_database()'); RETURN pg_catalog.current_database(); END $$;
CREATE FUNCTION evil.pg_backend_pid() RETURNS integer LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.trip('pg_backend_pid()'); RETURN pg_catalog.pg_backend_pid(); END $$;
CREATE FUNCTION evil.lower(text) RETURNS text LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.trip('lower()'); RETURN pg_catalog.lower($1); END $$;
CREATE FUNCTION evil.pg_size_pretty(bigint) RETURNS text LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.trip('pg_size_pretty()'); RETURN pg_catalog.pg_size_pretty($1); END $$;
CREATE FUNCTION evil.pg_total_relation_size(regclass) RETURNS bigint LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.trip('pg_total_relation_size()'); RETURN pg_catalog.pg_total_relation_size($1); END $$;
CREATE FUNCTION evil.pg_relation_size(regclass) RETURNS bigint LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.trip('pg_relation_size()'); RETURN pg_catalog.pg_relation_size($1); END $$;
CREATE FUNCTION evil.to_regclass(text) RETURNS regclass LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.trip('to_regclass()'); RETURN pg_catalog.to_regclass($1); END $$;
CREATE FUNCTION evil.set_config(text, text, boolean) RETURNS text LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.trip('set_config()'); RETURN pg_catalog.set_config($1, $2, $3); END $$;
CREATE FUNCTION evil.eq_text(text, text) RETURNS boolean LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.trip('=(text, text)'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.eq_text);
CREATE FUNCTION evil.eq_int8(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.trip('=(bigint, bigint)'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.eq_int8);
CREATE FUNCTION evil.eq_int4(integer, integer) RETURNS boolean LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.trip('=(integer, integer)'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR evil.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = evil.eq_int4);
CREATE FUNCTION evil.eq_oid(oid, oid) RETURNS boolean LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.trip('=(oid, oid)'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR evil.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = evil.eq_oid);
CREATE FUNCTION evil.gt_int8(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.trip('>(bigint, bigint)'); RETURN $1 OPERATOR(pg_catalog.>) $2; END $$;
CREATE OPERATOR evil.> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.gt_int8);
CREATE FUNCTION evil.like_text(text, text) RETURNS boolean LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.trip('~~(text, text)'); RETURN $1 OPERATOR(pg_catalog.~~) $2; END $$;
CREATE OPERATOR evil.~~ (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.like_text);
CREATE FUNCTION evil.cat_text(text, text) RETURNS text LANGUAGE plpgsql AS
$$ BEGIN PERFORM evil.trip('||(text, text)'); RETURN $1 OPERATOR(pg_catalog.||) $2; END $$;
CREATE OPERATOR evil.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.cat_text);
-- and the classic: a same-named view in public
CREATE VIEW public.pg_stat_activity AS
  SELECT * FROM pg_catalog.pg_stat_activity WHERE evil.trip('public.pg_stat_activity');

-- the tripwires work: a query that resolves through the path trips them
SET search_path = evil, public, pg_catalog;
SELECT count(*) > 0 AS tripwire_works FROM (SELECT 1 FROM pg_locks LIMIT 1) l;
SELECT 'a'::text = 'a'::text AS operator_tripwire_works;
-- capstone's functions under that path: no warning may appear below
SELECT extension IS NOT NULL AS version_ok FROM capstone.version();
BEGIN;
INSERT INTO sec.jobs_t VALUES (1001, 0);
PREPARE TRANSACTION 'capstone_sec_px2';
SELECT holder_kind, holder FROM capstone.xmin_holders() WHERE holder_kind OPERATOR(pg_catalog.=) 'prepared_xact';
ROLLBACK PREPARED 'capstone_sec_px2';
SELECT public.dblink_exec('sec_holder', 'BEGIN; LOCK TABLE sec.jobs_t IN SHARE MODE') AS holder_locked;
SELECT role, mode, object, granted FROM capstone.lock_snapshot() WHERE object OPERATOR(pg_catalog.=) 'sec.jobs_t';
SELECT public.dblink_exec('sec_holder', 'COMMIT') AS holder_released;
SELECT count(*) AS backfill_status_rows FROM capstone.backfill_status(:superuser_job);
SELECT count(*) > 0 AS bloat_report_ok FROM capstone.bloat_report('sec');
SELECT count(*) > 0 AS bloat_report_approx_ok FROM capstone.bloat_report('sec', mode => 'approx');
SELECT count(*) > 0 AS pooling_audit_ok FROM capstone.pooling_audit();
SELECT count(*) > 0 AS pool_size_ok FROM capstone.pool_size();
SELECT count(*) > 0 AS shard_advice_ok FROM capstone.shard_advice('sec');
SELECT count(*) > 0 AS shard_plan_ok FROM capstone.shard_plan('sec');
SELECT count(*) FILTER (WHERE status <> 'ok') AS triage_probes_not_ok FROM capstone.triage();
SELECT position('## Plans' IN capstone.report()) > 0 AS report_ok;
SELECT count(*) > 0 AS report_charts_ok FROM capstone.report_charts();
-- the functions that run the caller's SQL: capstone's own statements stay pinned, the
-- caller's statement sees the caller's path (sec.t is found; nothing of evil is used)
SELECT count(*) > 0 AS explain_ok FROM capstone.explain('SELECT count(*) FROM sec.t');
SELECT count(*) > 0 AS estimate_gap_ok FROM capstone.estimate_gap('SELECT count(*) FROM sec.t');
SELECT count(*) > 0 AS explain_diff_ok FROM capstone.explain_diff('SELECT count(*) FROM sec.t', 'ANALYZE sec.t');
SELECT count(*) > 0 AS estimate_gap_evidence_ok FROM capstone.estimate_gap(:superuser_capture);
SELECT attempt, outcome FROM capstone.safe_ddl('ALTER TABLE sec.t ADD COLUMN w int');
SELECT name, passed FROM capstone.plan_gate();
SELECT capstone.plan_gate_json()->'passed' AS plan_gate_json_passed;
SELECT capstone.assert_plans();
SELECT max(id) AS last_capture FROM capstone.evidence WHERE payload ? 'plan' \gset
SELECT count(*) > 0 AS explain_diff_ids_ok FROM capstone.explain_diff(:superuser_capture, :last_capture);
SELECT capstone.backfill_start('sec.jobs_t', 'v = 2') AS shadow_job \gset
DO $$ BEGIN
  FOR i IN 1..200 LOOP
    EXIT WHEN (SELECT state FROM capstone.backfill_jobs ORDER BY id DESC LIMIT 1) OPERATOR(pg_catalog.=) 'done';
    PERFORM pg_catalog.pg_sleep(0.05);
  END LOOP;
END $$;
SELECT state, rows_done FROM capstone.backfill_status(:shadow_job);
-- the caller's statement does resolve through the caller's path (by design)
SET search_path = sec, pg_catalog;
SELECT count(*) > 0 AS unqualified_query_ok FROM capstone.estimate_gap('SELECT count(*) FROM t');
SELECT attempt, outcome FROM capstone.safe_ddl('ALTER TABLE t DROP COLUMN w');
RESET search_path;
-- and the path the caller had is the path the caller has afterwards
SET search_path = evil, public, pg_catalog;
SELECT count(*) > 0 AS ran FROM capstone.estimate_gap('SELECT 1');
SHOW search_path;
RESET search_path;

DROP VIEW public.pg_stat_activity;
DROP SCHEMA evil CASCADE;
DROP SCHEMA sec CASCADE;
DROP OWNED BY capstone_sec_low;
DROP ROLE capstone_sec_low;
