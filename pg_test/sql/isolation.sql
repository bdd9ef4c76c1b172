-- Isolation gate: two real sessions, a fixed interleaving, the same outcome every run.
SET client_min_messages = warning;
CREATE EXTENSION capstone;
-- before the lab exists the demo says what it needs (its sessions are capstone's own
-- background workers: no dblink)
SELECT * FROM capstone.anomaly_demo('lost_update', 'read committed');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) > 0 AS loaded FROM capstone.lab_install(scale => 0.01, seed => 42, anchor => '2026-06-01 00:00+00');
SELECT shop.lab_checksum() AS checksum_before \gset

-- one run, step by step
SELECT step, session, left(statement, 60) AS statement, result, sqlstate
  FROM capstone.anomaly_demo('lost_update', 'read committed');

-- every anomaly x mode, 100 consecutive runs each: exactly one outcome per pair
CREATE TEMP TABLE outcomes (anomaly text, mode text, verdict text);
DO $$
DECLARE a text; m text;
BEGIN
  FOREACH a IN ARRAY ARRAY['lost_update', 'write_skew'] LOOP
    FOREACH m IN ARRAY ARRAY['read committed', 'repeatable read', 'serializable', 'select for update',
                             'for no key update', 'atomic update', 'advisory lock'] LOOP
      FOR i IN 1..100 LOOP
        INSERT INTO outcomes
        SELECT a, m, result
          FROM capstone.anomaly_demo(a, m) WHERE session = 'check';
      END LOOP;
    END LOOP;
  END LOOP;
END $$;
SELECT anomaly, mode, count(*) AS runs, count(DISTINCT verdict) AS distinct_outcomes, min(verdict) AS outcome
  FROM outcomes GROUP BY anomaly, mode ORDER BY anomaly, mode;

-- nothing left behind: no fixture rows, no demo sessions, lab data unchanged
SELECT count(*) AS fixture_tenants FROM shop.tenants WHERE slug LIKE 'capstone-demo-%';
SELECT count(*) AS demo_sessions FROM pg_stat_activity WHERE application_name = 'capstone_demo';
SELECT shop.lab_checksum() = :'checksum_before' AS lab_data_unchanged;

-- bad input: the hint lists the valid values
SELECT * FROM capstone.anomaly_demo('phantom', 'read committed');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.anomaly_demo('lost_update', 'snapshot');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.anomaly_demo(NULL, 'read committed');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.anomaly_demo('write_skew', NULL);
\echo :LAST_ERROR_SQLSTATE

-- a second demo while one runs is refused, not mixed in (a dblink session holds the lock)
CREATE EXTENSION dblink;
SELECT dblink_connect('holder', format('dbname=%s host=%s port=%s', current_database(),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port')));
SELECT dblink_exec('holder', 'BEGIN');
SELECT * FROM dblink('holder', $$SELECT pg_advisory_xact_lock(hashtext('capstone.anomaly_demo'))::text$$) AS t(x text);
SELECT * FROM capstone.anomaly_demo('lost_update', 'read committed');
\echo :LAST_ERROR_SQLSTATE
SELECT dblink_exec('holder', 'ROLLBACK');
SELECT dblink_disconnect('holder');

-- after the lab's migration gate (customers.full_name contracted into first_name + last_name)
-- the demo still sets up its fixture: it fills the columns the table has now
ALTER TABLE shop.customers ADD COLUMN first_name text, ADD COLUMN last_name text;
UPDATE shop.customers SET first_name = split_part(full_name, ' ', 1), last_name = substr(full_name, strpos(full_name, ' ') + 1);
ALTER TABLE shop.customers ALTER COLUMN first_name SET NOT NULL, ALTER COLUMN last_name SET NOT NULL;
ALTER TABLE shop.customers DROP COLUMN full_name;
SELECT session, result FROM capstone.anomaly_demo('write_skew', 'serializable') WHERE session IN ('setup', 'check');
-- a NOT NULL column the demo cannot fill is named, with 55000
ALTER TABLE shop.customers ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
ALTER TABLE shop.customers ALTER COLUMN tags DROP DEFAULT;
SELECT * FROM capstone.anomaly_demo('write_skew', 'serializable');
\echo :LAST_ERROR_SQLSTATE
