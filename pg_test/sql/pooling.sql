-- Pooling gate: pool sizing on a quiet server (the sample is too small, so the
-- core-bound estimate stands in), the transaction-pooling audit, and bad input.
-- Only deterministic things are printed: term names, booleans, fixed inputs.
SET client_min_messages = warning;
DROP ROLE IF EXISTS capstone_golden_pooler;
RESET client_min_messages;
CREATE EXTENSION capstone;

-- pg_stat_statements is preloaded but not created here: pool_size still works and says so
SELECT section, term, unit, value IS NULL AS not_measured,
       explanation LIKE 'not measured%Hint: add pg_stat_statements%' AS hints_install
  FROM capstone.pool_size(sample => '1 s', cores => 2)
 WHERE section = 'littles_law';

-- every term, in order
SELECT section, term, unit FROM capstone.pool_size(sample => '1 s');

-- a quiet server: λ≈0, the explanation says why, and the core-bound estimate stands in
WITH s AS MATERIALIZED (SELECT * FROM capstone.pool_size(sample => '1 s', cores => 2))
SELECT (SELECT explanation LIKE 'the sample is too small:%' FROM s WHERE term = 'transactions') AS says_too_small,
       (SELECT value FROM s WHERE term = 'core_bound') AS core_bound,
       (SELECT value FROM s WHERE term = 'default_pool_size') AS default_pool_size,
       (SELECT source LIKE 'basis quiet_fallback:%' FROM s WHERE term = 'default_pool_size') AS fell_back,
       (SELECT value FROM s WHERE term = 'headroom') AS headroom,
       (SELECT value > 0 FROM s WHERE term = 'ram') AS knows_ram,
       (SELECT value >= 9 FROM s WHERE term = 'memory_ceiling') AS memory_fits;

-- the jsonb variant, and the evidence both left behind
SELECT j -> 'recommendation' ->> 'basis' AS basis,
       (j -> 'recommendation' ->> 'default_pool_size')::int AS default_pool_size,
       jsonb_array_length(j -> 'terms') AS terms
  FROM capstone.pool_size_json(sample => '1 s', cores => 4, core_factor => 1.5) j;
SELECT label, count(*) FROM capstone.evidence WHERE gate = 'pooling' GROUP BY label ORDER BY label;

-- bad input, each with its SQLSTATE (checked before any sampling)
SELECT * FROM capstone.pool_size(sample => '0 s');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.pool_size(sample => '-5 s');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.pool_size(sample => '2 hours');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.pool_size(cores => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.pool_size(cores => -2);
\echo :LAST_ERROR_SQLSTATE
SELECT capstone.pool_size_json(cores => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.pool_size(headroom => 0.9);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.pool_size(headroom => 'NaN');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.pool_size(nodes_per_query => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.pool_size(sample => NULL);
\echo :LAST_ERROR_SQLSTATE
-- asked for specifically, a missing pg_stat_statements is an error
SELECT * FROM capstone.pool_size(sample => '1 s', require_statements => true);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.pgbouncer_stats(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.pgbouncer_stats('host=127.0.0.1 port=6432 dbname=pgbouncer');
\echo :LAST_ERROR_SQLSTATE

-- the audit without pg_stat_statements: what the catalog shows, plus a hint
SELECT issue, risk FROM capstone.pooling_audit();

-- now with it: run what transaction pooling breaks, and what it does not
CREATE EXTENSION pg_stat_statements;
SELECT count(*) AS reset FROM (SELECT pg_stat_statements_reset()) r;
SET work_mem = '8MB';
SET search_path = public, capstone;
SET application_name = 'golden';
BEGIN;
SET LOCAL statement_timeout = '5s';
SELECT pg_advisory_xact_lock(7);
COMMIT;
LISTEN golden_channel;
SELECT pg_advisory_lock(42);
BEGIN;
DECLARE golden_cur CURSOR WITH HOLD FOR SELECT 1;
COMMIT;
CLOSE golden_cur;
CREATE TEMP TABLE golden_tmp (a int);
BEGIN;
CREATE TEMP TABLE golden_tmp_xact (a int) ON COMMIT DROP;
COMMIT;
PREPARE golden_stmt(int) AS SELECT $1 + 1;
EXECUTE golden_stmt(1);
SELECT set_config('capstone.gap_threshold', '20', false);
SELECT issue, risk, split_part(evidence, ' — ', 1) AS finding, calls > 0 AS seen
  FROM capstone.pooling_audit()
 ORDER BY issue, risk, finding;
-- SET LOCAL, the _xact_ lock and the ON COMMIT DROP table are not findings
SELECT count(*) AS false_alarms FROM capstone.pooling_audit()
 WHERE query ILIKE '%set local%' OR query ILIKE '%xact_lock%' OR query ILIKE '%on commit drop%';
SELECT pg_advisory_unlock_all();
UNLISTEN *;

-- with pg_stat_statements the sizing shows both ways round Little's law
SELECT term, value IS NOT NULL AS measured
  FROM capstone.pool_size(sample => '1 s', cores => 2)
 WHERE term IN ('statements', 'L_from_statements', 'L_busy', 'lambda');

-- values read like PostgreSQL's views: milliseconds to 3 decimals, the rest to 2
SELECT bool_and(value IS NULL
                OR value = round(value::numeric, CASE unit WHEN 'ms' THEN 3 ELSE 2 END)::float8) AS rounded
  FROM capstone.pool_size(sample => '1 s', cores => 2);
SELECT bool_and((t ->> 'value') IS NULL
                OR (t ->> 'value')::float8 = round((t ->> 'value')::numeric, CASE t ->> 'unit' WHEN 'ms' THEN 3 ELSE 2 END)::float8) AS json_rounded
  FROM capstone.pool_size_json(sample => '1 s', cores => 2) j, jsonb_array_elements(j -> 'terms') t;

-- none of the pooling functions is granted to PUBLIC
CREATE ROLE capstone_golden_pooler;
SET ROLE capstone_golden_pooler;
SELECT * FROM capstone.pool_size(sample => '1 s');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.pooling_audit();
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.pgbouncer_stats('dbname=pgbouncer');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE capstone_golden_pooler;
