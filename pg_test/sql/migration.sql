-- Migration gate: the backfill worker, safe DDL under lock_timeout, and bad input.
SET client_min_messages = warning;
DROP ROLE IF EXISTS capstone_golden_migrator;
CREATE EXTENSION capstone;
CREATE EXTENSION dblink;
CREATE TABLE mig (id bigint PRIMARY KEY, a int NOT NULL, b int, counter int NOT NULL DEFAULT 0);
INSERT INTO mig SELECT g, g, NULL FROM generate_series(1, 20000) g;
ANALYZE mig;
CREATE FUNCTION wait_job(j bigint, want text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..600 LOOP
    IF (SELECT state FROM capstone.backfill_jobs WHERE id = j) = want THEN RETURN want; END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN (SELECT state FROM capstone.backfill_jobs WHERE id = j);
END $$;
SELECT dblink_connect('holder', format('dbname=%s host=%s port=%s', current_database(),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'))) AS holder;

-- a job runs to completion; the counter proves each row was updated exactly once
SELECT capstone.backfill_start('mig', 'b = a * 2, counter = counter + 1', batch_size => 1000) AS job \gset
SELECT wait_job(:job, 'done') AS state;
SELECT state, rows_done, batches, pct FROM capstone.backfill_status(:job);
SELECT count(*) FILTER (WHERE b = a * 2) AS updated, min(counter) = 1 AND max(counter) = 1 AS exactly_once FROM mig;
SELECT count(*) AS batch_rows, sum(rows) AS rows FROM capstone.backfill_batches WHERE job_id = :job;

-- under a held conflicting lock the batches time out and retry, never waiting past lock_timeout,
-- and finish once the lock is released
SELECT dblink_exec('holder', 'BEGIN');
SELECT dblink_exec('holder', 'LOCK TABLE mig IN SHARE MODE');
SELECT capstone.backfill_start('mig', 'counter = counter + 1', batch_size => 5000,
       lock_timeout => '50ms', max_retries => 1000) AS job \gset
SELECT pg_sleep(1.5);
SELECT state, rows_done = 0 AS nothing_applied_yet, lock_timeouts > 0 OR retries > 0 AS retrying
  FROM capstone.backfill_jobs WHERE id = :job;
SELECT dblink_exec('holder', 'ROLLBACK');
SELECT wait_job(:job, 'done') AS state;
SELECT min(counter) = 2 AND max(counter) = 2 AS exactly_once_again FROM mig;
SELECT bool_and(ms < 50 + 1000) AS no_batch_waited_past_lock_timeout FROM capstone.backfill_batches WHERE job_id = :job;

-- retries exhausted: the job pauses with the reason; resume finishes it
SELECT dblink_exec('holder', 'BEGIN');
SELECT dblink_exec('holder', 'LOCK TABLE mig IN SHARE MODE');
SELECT capstone.backfill_start('mig', 'counter = counter + 1', lock_timeout => '20ms', max_retries => 1) AS job \gset
SELECT wait_job(:job, 'paused') AS state;
SELECT last_error LIKE '55P03:%' AS paused_for_lock_timeout FROM capstone.backfill_jobs WHERE id = :job;
SELECT dblink_exec('holder', 'ROLLBACK');
SELECT capstone.backfill_resume(:job);
SELECT wait_job(:job, 'done') AS state;
SELECT min(counter) = 3 AND max(counter) = 3 AS exactly_once_after_resume FROM mig;

-- pause and cancel between batches; committed batches stay
SELECT capstone.backfill_start('mig', 'counter = counter + 1', batch_size => 100, pause => '100ms') AS job \gset
SELECT pg_sleep(0.5);
SELECT capstone.backfill_pause(:job);
SELECT pg_sleep(1);
SELECT rows_done AS paused_at FROM capstone.backfill_jobs WHERE id = :job \gset
SELECT pg_sleep(0.4);
SELECT rows_done = :paused_at AS no_progress_while_paused, rows_done > 0 AS some_progress FROM capstone.backfill_jobs WHERE id = :job;
SELECT capstone.backfill_cancel(:job);
SELECT state FROM capstone.backfill_jobs WHERE id = :job;
SELECT count(*) FILTER (WHERE counter = 4) = (SELECT rows_done FROM capstone.backfill_jobs WHERE id = :job) AS committed_batches_kept FROM mig;
SELECT capstone.backfill_resume(:job);
\echo :LAST_ERROR_SQLSTATE

-- bad input, each with its SQLSTATE
SELECT capstone.backfill_start('no_such_table', 'b = 1');
\echo :LAST_ERROR_SQLSTATE
SELECT capstone.backfill_start(NULL, 'b = 1');
\echo :LAST_ERROR_SQLSTATE
SELECT capstone.backfill_start('mig', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT capstone.backfill_start('mig', 'b = 1', batch_size => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT capstone.backfill_start('mig', 'b = 1', batch_size => 1000001);
\echo :LAST_ERROR_SQLSTATE
SELECT capstone.backfill_start('mig', 'b = 1; DROP TABLE mig');
\echo :LAST_ERROR_SQLSTATE
SELECT capstone.backfill_start('mig', 'b = 1', where_clause => 'true; DROP TABLE mig; --');
\echo :LAST_ERROR_SQLSTATE
SELECT capstone.backfill_start('mig', 'no_such_column = 1');
\echo :LAST_ERROR_SQLSTATE
CREATE VIEW mig_v AS SELECT * FROM mig;
SELECT capstone.backfill_start('mig_v', 'b = 1');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE mig_part (id int PRIMARY KEY, b int) PARTITION BY RANGE (id);
SELECT capstone.backfill_start('mig_part', 'b = 1');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE nokey (a int);
SELECT capstone.backfill_start('nokey', 'a = 1');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.backfill_status(987654);
\echo :LAST_ERROR_SQLSTATE
SELECT capstone.backfill_pause(987654);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS mig_rows_still_there FROM mig;

-- a role without UPDATE on the table is refused, even when granted the function
CREATE ROLE capstone_golden_migrator LOGIN;
GRANT USAGE ON SCHEMA capstone TO capstone_golden_migrator;
GRANT EXECUTE ON FUNCTION capstone.backfill_start(regclass, text, text, integer, interval, interval, integer) TO capstone_golden_migrator;
GRANT SELECT ON mig TO capstone_golden_migrator;
SET ROLE capstone_golden_migrator;
SELECT capstone.backfill_start('mig', 'b = 0');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- safe_ddl: applied at once when the lock is free
SELECT attempt, outcome, risk, warnings FROM capstone.safe_ddl('ALTER TABLE mig ADD COLUMN c int');
-- ... and fails fast, retrying, while someone holds a conflicting lock
SELECT dblink_exec('holder', 'BEGIN');
SELECT dblink_exec('holder', 'LOCK TABLE mig IN SHARE MODE');
\set VERBOSITY terse
SELECT * FROM capstone.safe_ddl('ALTER TABLE mig ADD COLUMN d int', lock_timeout => '50ms', max_retries => 2);
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT dblink_exec('holder', 'ROLLBACK');
-- dangerous forms are named, with the safe form
SET client_min_messages = error;
SELECT attempt, outcome, split_part(risk, '(', 1) AS risk, split_part(warnings[1], ' (', 1) AS warning, warnings[1] LIKE '%safe: CREATE INDEX CONCURRENTLY%' AS names_safe_form
  FROM capstone.safe_ddl('CREATE INDEX mig_a_idx ON mig (a)');
SET client_min_messages = warning;
SELECT attempt, outcome, cardinality(warnings) AS warnings FROM capstone.safe_ddl('ALTER TABLE mig ADD CONSTRAINT mig_b_check CHECK (b IS NOT NULL) NOT VALID');
SELECT * FROM capstone.safe_ddl('ALTER TABLE mig ADD COLUMN e int; DROP TABLE mig');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.safe_ddl('SELECT 1');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.safe_ddl(NULL);
\echo :LAST_ERROR_SQLSTATE
-- the migration linter: PostgreSQL's parser and the live catalog, nothing executed
CREATE TABLE lint_big (id int PRIMARY KEY, c int, d int, v varchar(10), n numeric(10,2), ts timestamp);
INSERT INTO lint_big SELECT g, g, g, 'x', g, now() FROM generate_series(1, 200000) g;
ALTER TABLE lint_big ADD CONSTRAINT lint_big_c_nn CHECK (c IS NOT NULL);
CREATE TABLE lint_small (id bigint PRIMARY KEY, c int);
CREATE TABLE lint_ref (id int PRIMARY KEY);
INSERT INTO lint_ref SELECT g FROM generate_series(1, 100) g;
ANALYZE lint_big, lint_small, lint_ref;
SELECT statement_no AS n, line, rule, severity, lock_mode, blocks, effect, table_name,
       table_bytes > 0 AS sized, estimated_ms > 0 AS estimated, left(finding, 70) AS finding
  FROM capstone.lint_migration($m$
SET lock_timeout = '2s';
ALTER TABLE lint_big ALTER COLUMN c SET NOT NULL;                 -- harmless: a validated CHECK proves it
ALTER TABLE lint_big ALTER COLUMN d SET NOT NULL;                 -- full scan under ACCESS EXCLUSIVE
ALTER TABLE lint_big ADD COLUMN t1 timestamptz DEFAULT now();     -- stable default: no rewrite
ALTER TABLE lint_big ADD COLUMN t2 timestamptz DEFAULT clock_timestamp();
ALTER TABLE lint_big ALTER COLUMN v TYPE varchar(20);             -- widening: no rewrite
ALTER TABLE lint_big ALTER COLUMN v TYPE text;                    -- binary-coercible: no rewrite
ALTER TABLE lint_big ALTER COLUMN n TYPE numeric(12,2);           -- same scale: no rewrite
ALTER TABLE lint_big ALTER COLUMN id TYPE bigint;                 -- rewrite
ALTER TABLE lint_big ADD CONSTRAINT lint_big_ref FOREIGN KEY (d) REFERENCES lint_ref (id);
ALTER TABLE lint_big ADD CONSTRAINT lint_big_ref2 FOREIGN KEY (d) REFERENCES lint_ref (id) NOT VALID;
CREATE INDEX lint_big_d ON lint_big (d);
ALTER TABLE lint_small ALTER COLUMN c SET NOT NULL;               -- small table: lowered
RESET lock_timeout;
ALTER TABLE lint_big DROP COLUMN d;
CREATE TABLE lint_new (id serial PRIMARY KEY, name varchar(40), at timestamp);
CREATE INDEX lint_new_name ON lint_new (name);                    -- created above: exempt
BEGIN;
CREATE INDEX CONCURRENTLY lint_big_c ON lint_big (c);
$m$);
-- a statement that does not parse gets its own row; the rest is still linted
SELECT statement_no AS n, line, rule, severity, finding FROM capstone.lint_migration(
  E'SET lock_timeout = ''1s'';\nALTER TABEL lint_big ADD COLUMN z int;\nTRUNCATE lint_big;');
SELECT * FROM capstone.lint_migration(' -- nothing but a comment ;; ');
\echo :LAST_ERROR_SQLSTATE
-- safe_ddl refuses a rewrite of a large table, dry_run shows why, allow runs it
\set VERBOSITY terse
SELECT * FROM capstone.safe_ddl('ALTER TABLE lint_big ADD COLUMN t3 timestamptz DEFAULT clock_timestamp()');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT safe_alternative FROM capstone.lint_migration('ALTER TABLE lint_big ADD COLUMN t3 timestamptz DEFAULT clock_timestamp()') WHERE rule = 'adding-field-with-default';
SELECT attempt, outcome, cardinality(warnings) AS warnings FROM capstone.safe_ddl('ALTER TABLE lint_big ADD COLUMN t3 timestamptz DEFAULT clock_timestamp()', dry_run => true);
SET client_min_messages = error;
SELECT attempt, outcome FROM capstone.safe_ddl('ALTER TABLE lint_big ADD COLUMN t3 timestamptz DEFAULT clock_timestamp()', allow => array['rewrite']);
SET client_min_messages = warning;
SELECT attempt, outcome, warnings FROM capstone.safe_ddl('ALTER TABLE lint_big ALTER COLUMN c SET NOT NULL');
SELECT * FROM capstone.safe_ddl('ALTER TABLE lint_big ALTER COLUMN c SET NOT NULL', allow => array['everything']);
\echo :LAST_ERROR_SQLSTATE
DROP TABLE lint_big, lint_small, lint_ref;
SELECT dblink_disconnect('holder');
DROP OWNED BY capstone_golden_migrator;
DROP ROLE capstone_golden_migrator;
