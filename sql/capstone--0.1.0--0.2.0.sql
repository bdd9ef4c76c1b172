-- capstone 0.1.0 → 0.2.0
-- Released: never edit this file (sql/released/SHA256SUMS pins it; CI checks).
-- 0.2.0 adds the sharding gate (shard_advice, shard_plan) and the reliability gate's
-- evidence, records a backfill's search_path with the job, and pins search_path on
-- every function.
\echo Use "ALTER EXTENSION capstone UPDATE TO '0.2.0'" to load this file. \quit

-- Migration gate: the submitter's search_path, for the clauses they wrote (jobs from
-- 0.1.0 keep NULL and run under the worker's default path, as before)
ALTER TABLE capstone.backfill_jobs ADD COLUMN search_path text;

-- The evidence store takes the reliability gate's captures (bench/load.sh)
ALTER TABLE capstone.evidence DROP CONSTRAINT evidence_gate_check;
ALTER TABLE capstone.evidence ADD CONSTRAINT evidence_gate_check CHECK (gate IN ('health', 'schema', 'index', 'statistics', 'plans',
    'isolation', 'pooling', 'migration', 'sharding', 'bloat', 'triage', 'reliability'));

-- Sharding gate
-- capstone::sharding::shard_advice
CREATE  FUNCTION "shard_advice"(
	"schema_name" name, /* Option < SqlName > */
	"shards" INT[] DEFAULT '{2,4,8,16,32}', /* :: std :: option :: Option < Vec < Option < i32 > > > */
	"top_n" INT DEFAULT 5 /* Option < i32 > */
) RETURNS TABLE (
	"rank" INT,  /* i32 */
	"key_column" TEXT,  /* String */
	"key_type" TEXT,  /* String */
	"tables" TEXT[],  /* Vec < String > */
	"reference_tables" TEXT[],  /* Vec < String > */
	"local_tables" TEXT[],  /* Vec < String > */
	"cardinality" bigint,  /* i64 */
	"top_value" TEXT,  /* Option < String > */
	"top_value_share" double precision,  /* Option < f64 > */
	"hot_values" TEXT[],  /* Vec < String > */
	"null_share" double precision,  /* f64 */
	"workload_routable_share" double precision,  /* Option < f64 > */
	"shards" INT[],  /* Vec < i32 > */
	"hottest_shard_share" double precision[],  /* Vec < f64 > */
	"colocated_joins" TEXT[],  /* Vec < String > */
	"cross_shard_joins" TEXT[],  /* Vec < String > */
	"fan_out_queries" TEXT[],  /* Vec < String > */
	"score" double precision,  /* f64 */
	"reasoning" TEXT,  /* String */
	"evidence_id" bigint  /* i64 */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'shard_advice_wrapper';

-- capstone::sharding::shard_plan
CREATE  FUNCTION "shard_plan"(
	"schema_name" name, /* Option < SqlName > */
	"key_column" name DEFAULT NULL, /* Option < SqlName > */
	"shards" INT DEFAULT 32 /* Option < i32 > */
) RETURNS TABLE (
	"step" INT,  /* i32 */
	"action" TEXT,  /* String */
	"object" TEXT,  /* String */
	"ddl" TEXT,  /* String */
	"why" TEXT  /* String */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'shard_plan_wrapper';

-- Sharding: catalog and statistics readers that store their ranking as evidence; for anyone.
COMMENT ON FUNCTION capstone.shard_advice(name, integer[], integer) IS
  'Ranks candidate shard keys of a schema (columns joined by foreign keys): tables carrying each, cardinality and skew from pg_stats, hot values, the expected hottest shard''s share at each shard count under hash distribution, co-located vs cross-shard joins, reference-table candidates, fan-out queries from pg_stat_statements, a score and the reasoning. Refuses to guess without statistics (55000). Stored in capstone.evidence.';
COMMENT ON FUNCTION capstone.shard_plan(name, name, integer) IS
  'The steps for distributing a schema by its best (or the named) shard key, each with the Citus DDL it maps to and why: shard count, reference tables, co-located distributed tables in foreign-key order, hot-key isolation, split and read replicas, fan-out queries, and a balance check.';

-- search_path: pinned on every function except the eight that run the caller's SQL,
-- which pin it in code (the same loop as sql/finalize.sql in 0.2.0)
DO $pin$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN
    SELECT p.oid::regprocedure
      FROM pg_catalog.pg_proc p
     WHERE p.pronamespace = 'capstone'::regnamespace
       AND NOT (p.proname IN ('explain', 'plan_gate', 'plan_gate_json', 'assert_plans', 'safe_ddl', 'backfill_start')
                OR (p.proname IN ('estimate_gap', 'explain_diff') AND p.proargtypes[0] = 'pg_catalog.text'::pg_catalog.regtype))
     ORDER BY p.oid
  LOOP
    EXECUTE pg_catalog.format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp', f);
  END LOOP;
END
$pin$;
