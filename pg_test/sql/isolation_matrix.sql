-- The anomaly catalogue on capstone's own scratch tables: no lab needed. Real concurrent
-- sessions (two, or three for otv and the read-only anomaly), a fixed interleaving
-- observed through pg_blocking_pids, a verdict computed from what the sessions saw.
SET client_min_messages = warning;
CREATE EXTENSION capstone;

-- one run, step by step: a dirty write is blocked at read committed
SELECT step, session, regexp_replace(statement, 'isolation_[0-9]+', 'isolation_N') AS statement,
       regexp_replace(result, 'isolation_[0-9]+', 'isolation_N') AS result, sqlstate
  FROM capstone.anomaly_demo('g0', 'read committed');
-- three sessions: C never sees B's write vanish
SELECT step, session, regexp_replace(statement, 'isolation_[0-9]+', 'isolation_N') AS statement, result, sqlstate
  FROM capstone.anomaly_demo('otv', 'read committed');
-- the read-only anomaly: observed at repeatable read, 40001 at serializable, and
-- SERIALIZABLE READ ONLY DEFERRABLE makes the report wait for a safe snapshot instead
SELECT step, session, regexp_replace(statement, 'isolation_[0-9]+', 'isolation_N') AS statement, result, sqlstate
  FROM capstone.anomaly_demo('read_only_anomaly', 'repeatable read');
SELECT step, session, regexp_replace(statement, 'isolation_[0-9]+', 'isolation_N') AS statement, result, sqlstate
  FROM capstone.anomaly_demo('read_only', 'serializable');
SELECT step, session, regexp_replace(statement, 'isolation_[0-9]+', 'isolation_N') AS statement, result, sqlstate
  FROM capstone.anomaly_demo('read_only_deferrable', 'serializable');

-- fixes besides the level, each run at read committed where the anomaly happens: a lost
-- update with FOR UPDATE on the read, step by step (B waits for A, then reads A's value)
SELECT step, session, regexp_replace(statement, 'isolation_[0-9]+', 'isolation_N') AS statement, result, sqlstate
  FROM capstone.anomaly_demo('p4', 'for_update');
-- g2 with a unique index over its predicate: the second insert waits, then fails 23505
SELECT step, session, regexp_replace(statement, 'isolation_[0-9]+', 'isolation_N', 'g') AS statement,
       regexp_replace(result, 'isolation_[0-9]+', 'isolation_N', 'g') AS result, sqlstate
  FROM capstone.anomaly_demo('g2', 'constraint');
-- every runnable fix, verdict only (the level's own verdict first for comparison)
SELECT f.anomaly, f.mode, d.result AS verdict
  FROM (VALUES (1, 'p4', 'read committed'), (2, 'p4', 'for_share'), (3, 'p4', 'atomic_update'),
               (4, 'p4', 'advisory_lock'), (5, 'g_single', 'read committed'), (6, 'g_single', 'for_update'),
               (7, 'g_single', 'for_share'), (8, 'g_single_write', 'for_update'),
               (9, 'g_single_write', 'advisory_lock'), (10, 'g2_item', 'read committed'),
               (11, 'g2_item', 'for_update'), (12, 'g2_item', 'for_share'), (13, 'g2_item', 'advisory_lock'),
               (14, 'pmp', 'advisory_lock'), (15, 'pmp_write', 'advisory_lock'), (16, 'g2', 'read committed'),
               (17, 'g2', 'advisory_lock')) f(n, anomaly, mode),
       LATERAL (SELECT result FROM capstone.anomaly_demo(f.anomaly, f.mode) WHERE session = 'check') d
 ORDER BY f.n;

-- the matrix
SELECT * FROM capstone.isolation_matrix();
SELECT payload->>'summary' AS summary, jsonb_array_length(payload->'matrix') AS anomalies
  FROM capstone.evidence WHERE label = 'isolation matrix' ORDER BY id DESC LIMIT 1;

-- determinism: 20 matrices, each cell one outcome every time
CREATE TEMP TABLE cells (anomaly text, level text, cell text);
DO $$
BEGIN
  FOR i IN 1..20 LOOP
    INSERT INTO cells
    SELECT m.anomaly, l.level, l.cell
      FROM capstone.isolation_matrix() m,
           LATERAL (VALUES ('read committed', m.read_committed), ('repeatable read', m.repeatable_read),
                           ('serializable', m.serializable)) l(level, cell);
  END LOOP;
END $$;
SELECT count(*) AS cells, min(runs) AS min_runs, max(runs) AS max_runs, max(outcomes) AS max_distinct_outcomes
  FROM (SELECT anomaly, level, count(*) AS runs, count(DISTINCT cell) AS outcomes
          FROM cells GROUP BY anomaly, level) c;

-- nothing left behind: no scratch tables, no sessions
SELECT count(*) AS scratch_tables FROM pg_tables WHERE schemaname = 'capstone_scratch';
SELECT count(*) AS demo_sessions FROM pg_stat_activity WHERE application_name = 'capstone_demo';

-- a run cut short leaves its table; the next run sweeps it and says so
CREATE TABLE capstone_scratch.isolation_999999 (id integer PRIMARY KEY, value integer NOT NULL);
SET client_min_messages = notice;
SELECT result FROM capstone.anomaly_demo('g1a', 'read committed') WHERE session = 'check';
SET client_min_messages = warning;
SELECT count(*) AS scratch_tables FROM pg_tables WHERE schemaname = 'capstone_scratch';

-- bad input: the hint lists the valid values
SELECT * FROM capstone.anomaly_demo('g3', 'serializable');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.anomaly_demo('g0', 'select for update');
\echo :LAST_ERROR_SQLSTATE
-- a fix that cannot reach the conflict is refused with the case's options
SELECT * FROM capstone.anomaly_demo('g2', 'for_update');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.anomaly_demo('read_only', 'for_share');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.anomaly_demo('g0', 'snapshot');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.anomaly_demo('g0', NULL);
\echo :LAST_ERROR_SQLSTATE

-- a role without CREATE on the database or the scratch schema hears what it lacks
CREATE ROLE capstone_iso_low LOGIN;
GRANT EXECUTE ON FUNCTION capstone.anomaly_demo(text, text), capstone.isolation_matrix() TO capstone_iso_low;
SET ROLE capstone_iso_low;
SELECT * FROM capstone.anomaly_demo('g0', 'serializable');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- granted USAGE and CREATE on the schema, it runs the matrix as itself
GRANT USAGE, CREATE ON SCHEMA capstone_scratch TO capstone_iso_low;
SET ROLE capstone_iso_low;
SELECT anomaly, serializable FROM capstone.isolation_matrix() WHERE anomaly IN ('g2_item', 'g2');
SELECT payload->'sessions' AS sessions FROM capstone.evidence WHERE label = 'isolation matrix' ORDER BY id DESC LIMIT 1;
RESET ROLE;
DROP OWNED BY capstone_iso_low;
DROP ROLE capstone_iso_low;
