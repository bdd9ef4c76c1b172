-- Every granted path, as a role that is not a superuser and holds exactly what README's
-- Grants section says to grant: each stateful function works for it on tables it owns,
-- and another role granted the same can neither see nor touch its jobs, logs or evidence,
-- nor write capstone's records by hand.
SET client_min_messages = warning;
DROP ROLE IF EXISTS capstone_app_dba;
DROP ROLE IF EXISTS capstone_app_other;
RESET client_min_messages;
CREATE EXTENSION capstone;
CREATE EXTENSION pg_stat_statements;
CREATE ROLE capstone_app_dba LOGIN;
CREATE ROLE capstone_app_other LOGIN;
GRANT CREATE ON SCHEMA public TO capstone_app_dba, capstone_app_other;
-- README, "Grants": the gates' stateful functions, by name (every signature of each)
DO $grant$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN
    SELECT p.oid::regprocedure FROM pg_proc p
     WHERE p.pronamespace = 'capstone'::regnamespace
       AND p.proname IN ('explain', 'estimate_gap', 'explain_diff', 'plan_gate', 'plan_gate_json',
                         'assert_plans', 'backfill_start', 'backfill_pause', 'backfill_resume',
                         'backfill_cancel', 'safe_ddl', 'lock_watch', 'bloat_scenario',
                         'bloat_scenario_finish', 'anomaly_demo', 'isolation_matrix',
                         'index_advice', 'index_prove')
  LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO capstone_app_dba, capstone_app_other', f);
  END LOOP;
END
$grant$;
SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'capstone_app_dba';
-- README, "Grants": anomaly_demo runs on the lab's shop tables, which the role does not own;
-- it gets exactly what the demo's fixture and script need there
SELECT count(*) > 0 AS lab_loaded FROM capstone.lab_install(scale => 0.01, seed => 42, anchor => '2026-06-01 00:00+00');
GRANT USAGE ON SCHEMA shop TO capstone_app_dba;
GRANT SELECT, INSERT, DELETE ON shop.tenants, shop.customers, shop.products, shop.stock, shop.orders TO capstone_app_dba;
GRANT UPDATE ON shop.tenants, shop.stock, shop.orders TO capstone_app_dba;
GRANT SELECT ON shop.order_lines TO capstone_app_dba;

-- 1. the granted role, on its own table ---------------------------------------------------
SET ROLE capstone_app_dba;
CREATE TABLE public.app_t (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0, note text);
INSERT INTO public.app_t (id) SELECT g FROM generate_series(1, 20000) g;
ANALYZE public.app_t;

-- explain, estimate_gap, explain_diff (query + change, and two ids)
SELECT evidence_id AS eid FROM capstone.explain('SELECT * FROM public.app_t WHERE v = 7', 'app: before') \gset
SELECT gate, label, captured_by = current_user AS mine FROM capstone.evidence WHERE id = :eid;
SELECT count(*) > 0 AS gap_rows FROM capstone.estimate_gap('SELECT * FROM public.app_t WHERE v = 7');
SELECT kind, change FROM capstone.explain_diff('SELECT * FROM public.app_t WHERE v = 7',
                                               'CREATE INDEX app_t_v ON public.app_t (v)')
 WHERE kind = 'statement' ORDER BY change LIMIT 3;
SELECT indexrelid::regclass AS built_by_the_change FROM pg_index WHERE indrelid = 'public.app_t'::regclass AND NOT indisprimary;

-- index advice over its own statements, proven on its own table (the build runs as the role)
SELECT count(*) FROM public.app_t WHERE note = 'x';
SELECT count(*) FROM public.app_t WHERE note = 'y';
SELECT advice_id AS aid, create_index, statements FROM capstone.index_advice() WHERE table_name = 'public.app_t' \gset
\echo :create_index :statements
SELECT verdict, est_speedup > 1 AS est_faster
  FROM capstone.index_prove(:aid, concurrently => false, queries => ARRAY['SELECT count(*) FROM public.app_t WHERE note = ''x''']);
-- and concurrently, the default: the build worker runs as the role too
DROP INDEX capstone_advice_:aid;
SELECT verdict FROM capstone.index_prove(:aid, queries => ARRAY['SELECT count(*) FROM public.app_t WHERE note = ''x''']);
CREATE PROCEDURE pg_temp.await_build() LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..1200 LOOP
    EXIT WHEN EXISTS (SELECT 1 FROM capstone.evidence WHERE label = 'index_prove_build');
    COMMIT;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
CALL pg_temp.await_build();
SELECT payload->>'ok' AS built, captured_by = current_user AS built_as_me
  FROM capstone.evidence WHERE label = 'index_prove_build';
SELECT verdict, after_node IS NOT NULL AS measured_after
  FROM capstone.index_prove(:aid, queries => ARRAY['SELECT count(*) FROM public.app_t WHERE note = ''x''']);
SELECT count(*) >= 0 AS drop_advice_ran FROM capstone.index_drop_advice();

INSERT INTO capstone.watched_queries (name, sql) VALUES ('app point', 'SELECT * FROM public.app_t WHERE id = 7');
SELECT owner = current_user AS watched_query_is_mine FROM capstone.watched_queries;
SELECT name, passed FROM capstone.plan_gate();
SELECT (capstone.plan_gate_json()->>'passed')::boolean AS gate_json_passed;
SELECT capstone.assert_plans();

-- safe_ddl, and its log: the role's own attempt, as the role
SELECT attempt, outcome FROM capstone.safe_ddl('ALTER TABLE public.app_t ADD COLUMN w int');
SELECT role_name = current_user AS mine, ddl, sqlstate FROM capstone.ddl_attempts;
-- the linter needs no grant: it reads the catalog and runs nothing; safe_ddl's dry run neither runs
SELECT rule, severity, effect FROM capstone.lint_migration('ALTER TABLE public.app_t ADD COLUMN v float8 DEFAULT random(); ALTER TABLE public.app_t RENAME TO app_u') ORDER BY statement_no, rule;
SELECT attempt, outcome FROM capstone.safe_ddl('ALTER TABLE public.app_t ADD COLUMN v float8 DEFAULT random()', dry_run => true);

-- a backfill to done, pause / resume / cancel of a second one
SELECT capstone.backfill_start('public.app_t', 'w = id % 10', batch_size => 2000) AS job \gset
DO $$ BEGIN
  FOR i IN 1..600 LOOP
    EXIT WHEN (SELECT state FROM capstone.backfill_jobs ORDER BY id DESC LIMIT 1) IN ('done', 'failed', 'paused');
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT state, rows_done, batches, last_error, role = current_user AS runs_as_me FROM capstone.backfill_status(:job);
SELECT count(*) AS rows_backfilled FROM public.app_t WHERE w = id % 10;
SELECT count(*) AS batches_visible FROM capstone.backfill_batches WHERE job_id = :job;
SELECT capstone.backfill_start('public.app_t', 'v = v + 1', batch_size => 100, pause => '200ms') AS job2 \gset
SELECT capstone.backfill_pause(:job2) AS paused;
SELECT capstone.backfill_resume(:job2) AS resumed;
SELECT capstone.backfill_cancel(:job2) AS cancelled;

-- lock_watch: samples stored as its evidence
SELECT count(*) AS samples FROM capstone.lock_watch('300 ms', '100 ms', 'app: lock watch');

-- the bloat scenario on its own table: a worker holds a snapshot as this role
SELECT DISTINCT scenario_id AS sid FROM capstone.bloat_scenario(rel => 'public.app_t', hold => '1 min') \gset
SELECT DISTINCT step FROM capstone.bloat_scenario_finish(:sid) WHERE step LIKE 'vacuum%' ORDER BY 1;

-- anomaly_demo, granted: its two sessions are capstone background workers running as this
-- role (no dblink, no superuser), on the lab's tables with the grants above
SELECT step, session, left(statement, 60) AS statement, result, sqlstate
  FROM capstone.anomaly_demo('lost_update', 'read committed');
SELECT result FROM capstone.anomaly_demo('write_skew', 'serializable') WHERE session = 'check';
SELECT s->>'session' AS session, s->>'role' AS ran_as, s->>'role' = current_user AS as_me
  FROM capstone.evidence e, jsonb_array_elements(e.payload->'sessions') s
 WHERE e.id = (SELECT max(id) FROM capstone.evidence WHERE gate = 'isolation') ORDER BY 1;
SELECT count(*) AS fixture_tenants FROM shop.tenants WHERE slug LIKE 'capstone-demo-%';

-- its evidence is its own
SELECT count(*) > 0 AS has_evidence, bool_and(captured_by = current_user) AS all_mine FROM capstone.evidence;

-- capstone's records cannot be written by hand, even one's own
INSERT INTO capstone.evidence (gate, label, payload) VALUES ('plans', 'forged', '{"verdict": "forged"}');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO capstone.ddl_attempts (ddl, attempt, waited_ms) VALUES ('forged', 1, 0);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO capstone.worker_smoke_log (token, pid, database, role) VALUES (-1, 0, 'x', 'capstone_app_dba');
\echo :LAST_ERROR_SQLSTATE
UPDATE capstone.backfill_jobs SET rows_done = 0 WHERE id = :job;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM capstone.evidence;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- 2. another role granted the same sees none of it and touches none of it ------------------
SET ROLE capstone_app_other;
SELECT count(*) AS others_jobs FROM capstone.backfill_status();
SELECT * FROM capstone.backfill_status(:job);
\echo :LAST_ERROR_SQLSTATE
SELECT capstone.backfill_pause(:job);
\echo :LAST_ERROR_SQLSTATE
SELECT capstone.backfill_cancel(:job2);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS others_ddl_attempts FROM capstone.ddl_attempts;
SELECT count(*) AS others_evidence FROM capstone.evidence;
SELECT count(*) AS others_watched_queries FROM capstone.watched_queries;
SELECT count(*) AS others_gate_rows FROM capstone.plan_gate();
SELECT * FROM capstone.estimate_gap(:eid);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS others_advice FROM capstone.index_advice() WHERE table_name = 'public.app_t';
SELECT * FROM capstone.index_prove(:aid, concurrently => false);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO capstone.watched_queries (name, sql, owner) VALUES ('as someone else', 'SELECT 1', 'capstone_app_dba');
\echo :LAST_ERROR_SQLSTATE
-- granted anomaly_demo but none of the lab grants: refused before anything runs, saying what it lacks
SELECT * FROM capstone.anomaly_demo('lost_update', 'read committed');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- 3. the superuser's report shows only its own evidence unless asked, and says whose ------
SELECT position('app: before' IN capstone.report()) AS others_label_in_my_report;
SELECT capstone.report(roles => array['capstone_app_dba']) AS md \gset
SELECT position('Evidence captured by role `capstone_app_dba`' IN :'md') > 0 AS named_part,
       position('## Plans (captured by `capstone_app_dba`)' IN :'md') > 0 AS section_named,
       position('**Verdict (from `capstone_app_dba`''s evidence).**' IN :'md') > 0 AS verdict_named,
       position('**app: lock watch**' IN :'md') > position('Evidence captured by role `capstone_app_dba`' IN :'md')
         AS its_capture_in_its_part,
       position('**Verdict.** no evidence yet.' IN :'md') > 0 AS readers_own_sections_empty;
-- reading another role's capture by id says whose it is
SELECT count(*) > 0 AS read FROM capstone.estimate_gap(:eid);
SELECT count(*) > 0 AS charts_say_whose, bool_and(captured_by = 'capstone_app_dba' AND file_name LIKE 'by_capstone_app_dba__%') AS named
  FROM capstone.report_charts(roles => array['capstone_app_dba']);

-- clean up
SELECT count(*) AS left_running FROM capstone.backfill_jobs WHERE state IN ('queued', 'running');
DROP TABLE public.app_t;
DELETE FROM capstone.evidence;
DELETE FROM capstone.watched_queries;
DELETE FROM capstone.ddl_attempts;
DELETE FROM capstone.backfill_jobs;
REVOKE CREATE ON SCHEMA public FROM capstone_app_dba, capstone_app_other;
DROP OWNED BY capstone_app_dba, capstone_app_other;
DROP ROLE capstone_app_dba;
DROP ROLE capstone_app_other;
