-- capstone 0.2.0 → 0.3.0
-- 0.3.0: capstone's records are written only by capstone and read only by their author.
-- Evidence, DDL attempts and worker proofs lose PUBLIC's INSERT; job rows are written by
-- capstone as the owner of its tables, naming the caller; ddl_attempts and
-- worker_smoke_log get row-level security; each role keeps its own watch list; the report
-- shows only the reader's evidence unless asked for other roles.
\echo Use "ALTER EXTENSION capstone UPDATE TO '0.3.0'" to load this file. \quit

-- Evidence and logs: no role writes them by hand
REVOKE INSERT ON capstone.evidence FROM PUBLIC;
REVOKE INSERT ON capstone.ddl_attempts FROM PUBLIC;
REVOKE INSERT ON capstone.worker_smoke_log FROM PUBLIC;
COMMENT ON TABLE capstone.evidence IS
  'What each gate measured: one row per capture, with the query, the non-default settings, the server version and the raw payload (plan JSON, samples, figures). Written only by capstone''s functions, naming the role that ran them; each role reads its own rows (row-level security), and capstone.report() shows only the reader''s own unless asked for other roles.';
COMMENT ON TABLE capstone.worker_smoke_log IS
  'Rows written by capstone smoke workers; each names the database and role the worker ran as. Written only by capstone; each role reads its own.';
ALTER TABLE capstone.worker_smoke_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY worker_smoke_log_owner ON capstone.worker_smoke_log
    USING (role = current_user) WITH CHECK (role = current_user);
COMMENT ON TABLE capstone.ddl_attempts IS
  'Every capstone.safe_ddl attempt: the statement (redacted when it may carry a password or connection string), how long it waited, and its SQLSTATE. Written only by capstone; each role reads its own.';
ALTER TABLE capstone.ddl_attempts ENABLE ROW LEVEL SECURITY;
CREATE POLICY ddl_attempts_owner ON capstone.ddl_attempts
    USING (role_name = current_user) WITH CHECK (role_name = current_user);
DROP POLICY backfill_batches_owner ON capstone.backfill_batches;
CREATE POLICY backfill_batches_owner ON capstone.backfill_batches
    USING (EXISTS (SELECT 1 FROM capstone.backfill_jobs j WHERE j.id = job_id))
    WITH CHECK (EXISTS (SELECT 1 FROM capstone.backfill_jobs j WHERE j.id = job_id));

-- Watch lists per role: the rows of 0.2.0 belong to the role that runs this update (only
-- a superuser or the owner could write them before)
ALTER TABLE capstone.watched_queries ADD COLUMN owner name NOT NULL DEFAULT current_user;
ALTER TABLE capstone.watched_queries DROP CONSTRAINT watched_queries_pkey;
ALTER TABLE capstone.watched_queries ALTER COLUMN name SET NOT NULL;
ALTER TABLE capstone.watched_queries ADD CONSTRAINT watched_queries_pkey PRIMARY KEY (owner, name);
COMMENT ON TABLE capstone.watched_queries IS
  'Queries the plan gate runs, each for the role that owns it (row-level security: a role sees, adds and changes only its own, and plan_gate runs only the caller''s): a query fails when it seq-scans a table of more than seqscan_min_rows rows not listed in seqscan_allowed, when a node''s q-error exceeds max_q_error (default capstone.gap_threshold), or when it runs longer than max_ms.';
ALTER TABLE capstone.watched_queries ENABLE ROW LEVEL SECURITY;
CREATE POLICY watched_queries_owner ON capstone.watched_queries
    USING (owner = current_user) WITH CHECK (owner = current_user);
GRANT SELECT, INSERT, UPDATE, DELETE ON capstone.watched_queries TO PUBLIC;
COMMENT ON FUNCTION capstone.plan_gate() IS
  'Runs every enabled capstone.watched_queries entry of the calling role and returns pass/fail with reasons: a seq scan on a large table not allowed for it, a q-error above its limit, or a time over its budget.';

-- The report reads the reader's own evidence unless asked for other roles
DROP FUNCTION capstone.report();
DROP FUNCTION capstone.report_charts();
CREATE FUNCTION "report"(
	"roles" TEXT[] DEFAULT NULL /* :: std :: option :: Option < Vec < String > > */
) RETURNS TEXT /* String */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'report_wrapper';
CREATE FUNCTION "report_charts"(
	"roles" TEXT[] DEFAULT NULL /* :: std :: option :: Option < Vec < String > > */
) RETURNS TABLE (
	"file_name" TEXT,  /* String */
	"title" TEXT,  /* String */
	"svg" TEXT,  /* String */
	"csv" TEXT,  /* String */
	"captured_by" TEXT  /* String */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'report_charts_wrapper';
ALTER FUNCTION capstone.report(text[]) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION capstone.report_charts(text[]) SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION capstone.report(text[]) IS
  'The evidence report as Markdown: for each gate the claim, the captured proof (plans before/after, gap tables, figures) and the verdict, or which gates have no evidence yet; ends with a live triage. Shows only evidence the reader captured, unless roles names others (e.g. report(roles => array[''alice'', current_user])): each other role''s evidence is a part of its own, every section and verdict naming the role.';
COMMENT ON FUNCTION capstone.report_charts(text[]) IS
  'The charts the report links, as SVG with their data as CSV (file_name.svg / file_name.csv), with the role whose evidence each draws; roles as in capstone.report.';

-- Isolation: the anomaly catalogue on scratch tables, and the matrix
COMMENT ON FUNCTION capstone.anomaly_demo(text, text) IS
  'Reproduces a concurrency anomaly with real concurrent sessions (capstone background workers running as the current role) in a fixed, lock-observed interleaving. The catalogue (g0, g1a, g1b, g1c, otv, pmp, pmp_write, p4, g_single, g_single_write, g2_item, g2, read_only, read_only_deferrable, or their descriptive aliases) runs on a scratch table in capstone_scratch under read committed, repeatable read or serializable, or at read committed with a fix where it reaches the conflict (for_update, for_share, atomic_update, advisory_lock, constraint; isolation_matrix lists each case''s options); lost_update and write_skew run on the lab''s tables, also under select for update, for no key update, atomic update or advisory lock. One row per statement with result, SQLSTATE and wait (and whom it waited for); the last row says whether the anomaly was observed or how it was prevented.';
CREATE  FUNCTION "isolation_matrix"() RETURNS TABLE (
	"anomaly" TEXT,  /* String */
	"alias" TEXT,  /* String */
	"read_committed" TEXT,  /* String */
	"repeatable_read" TEXT,  /* String */
	"serializable" TEXT,  /* String */
	"fix_options" TEXT  /* String */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'isolation_matrix_wrapper';
ALTER FUNCTION capstone.isolation_matrix() SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION capstone.isolation_matrix() FROM PUBLIC;
COMMENT ON FUNCTION capstone.isolation_matrix() IS
  'Runs every catalogue anomaly under read committed, repeatable read and serializable on three real sessions and scratch tables, and returns one row per anomaly: observed, or prevented and how (snapshot, blocked: which session waited for which, 40001, 40P01, a constraint), and its fix options besides the level (the ones anomaly_demo runs first). Stores the matrix in capstone.evidence.';

-- index advice: hypothetical indexes (seen only by plain EXPLAIN in the session that made them) and hidden indexes; PUBLIC may call them, they plan as the caller
CREATE  FUNCTION "hypo_index"(
	"create_index_sql" TEXT /* Option < & str > */
) RETURNS TABLE (
	"id" oid,  /* pg_sys :: Oid */
	"index_name" TEXT  /* String */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'hypo_index_wrapper';
COMMENT ON FUNCTION capstone.hypo_index(text) IS
  'Defines a hypothetical index from one CREATE INDEX statement (btree with several columns, INCLUDE, WHERE, expressions, DESC/NULLS; hash, brin, gist, gin, spgist; a name, CONCURRENTLY and IF NOT EXISTS are accepted). Only plain EXPLAIN in this session plans with it, never EXPLAIN ANALYZE or a real execution; it is gone at disconnect. Returns its id and the name EXPLAIN shows.';
CREATE  FUNCTION "hypo_indexes"() RETURNS TABLE (
	"id" oid,  /* pg_sys :: Oid */
	"index_name" TEXT,  /* String */
	"table_name" regclass,  /* RegClass */
	"access_method" TEXT,  /* String */
	"definition" TEXT  /* String */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'hypo_indexes_wrapper';
ALTER FUNCTION capstone.hypo_indexes() SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION capstone.hypo_indexes() IS
  'This session''s hypothetical indexes: id, name, table, access method and the CREATE INDEX they came from.';
CREATE  FUNCTION "hypo_drop"(
	"id" oid /* Option < pg_sys :: Oid > */
) RETURNS bool /* bool */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'hypo_drop_wrapper';
ALTER FUNCTION capstone.hypo_drop(oid) SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION capstone.hypo_drop(oid) IS
  'Forgets one hypothetical index of this session; false when the id is not one.';
CREATE  FUNCTION "hypo_reset"() RETURNS INT /* i32 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'hypo_reset_wrapper';
ALTER FUNCTION capstone.hypo_reset() SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION capstone.hypo_reset() IS
  'Forgets every hypothetical index of this session and unhides every hidden index; returns how many hypothetical indexes went.';
CREATE  FUNCTION "hypo_size"(
	"id" oid /* Option < pg_sys :: Oid > */
) RETURNS TABLE (
	"size_bytes" bigint,  /* i64 */
	"size_pretty" TEXT,  /* String */
	"estimated_rows" bigint  /* i64 */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'hypo_size_wrapper';
ALTER FUNCTION capstone.hypo_size(oid) SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION capstone.hypo_size(oid) IS
  'A hypothetical index''s estimated size (bytes and pretty) and rows, from the table''s current statistics (the same formulas as hypopg).';
CREATE  FUNCTION "hypo_hide"(
	"index" regclass /* Option < RegClass > */
) RETURNS bool /* bool */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'hypo_hide_wrapper';
ALTER FUNCTION capstone.hypo_hide(regclass) SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION capstone.hypo_hide(regclass) IS
  'Plain EXPLAIN in this session plans as if this index did not exist (to ask: can I drop it?); EXPLAIN ANALYZE and real executions still use it. False when already hidden.';
CREATE  FUNCTION "hypo_unhide"(
	"index" regclass /* Option < RegClass > */
) RETURNS bool /* bool */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'hypo_unhide_wrapper';
ALTER FUNCTION capstone.hypo_unhide(regclass) SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION capstone.hypo_unhide(regclass) IS
  'Undoes hypo_hide; false when the index was not hidden.';

-- bloat: bloat_report shows both sizes as pg_size_pretty beside the bytes (a new result
-- column changes the function's row type, so it is dropped and created again)
DROP FUNCTION capstone.bloat_report(text, regclass, bigint, text);
CREATE  FUNCTION "bloat_report"(
	"schema_name" TEXT DEFAULT NULL, /* Option < String > */
	"rel" regclass DEFAULT NULL, /* Option < RegClass > */
	"min_bytes" bigint DEFAULT 0, /* Option < i64 > */
	"mode" TEXT DEFAULT 'fast' /* Option < String > */
) RETURNS TABLE (
	"schema" TEXT,  /* String */
	"relation" TEXT,  /* String */
	"kind" TEXT,  /* String */
	"total_bytes" bigint,  /* i64 */
	"est_bloat_bytes" bigint,  /* i64 */
	"est_bloat_pct" double precision,  /* f64 */
	"total_pretty" TEXT,  /* String */
	"est_bloat_pretty" TEXT,  /* String */
	"live_tuples" bigint,  /* Option < i64 > */
	"dead_tuples" bigint,  /* Option < i64 > */
	"last_vacuum" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"last_autovacuum" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"removable" bool,  /* Option < bool > */
	"method" TEXT,  /* String */
	"relid" regclass  /* RegClass */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'bloat_report_wrapper';
ALTER FUNCTION capstone.bloat_report(text, regclass, bigint, text) SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION capstone.bloat_report(text, regclass, bigint, text) IS
  'One row per table, materialized view, TOAST table and btree index (in schema_name, or of rel), the most reclaimable bytes first, capstone''s own schemas only when named: total_bytes, est_bloat_bytes/est_bloat_pct (free plus dead space beyond the fillfactor reserve, as pgstattuple counts it; 1 decimal), both sizes as pg_size_pretty, live and dead tuples, last vacuums, removable (could VACUUM remove the dead tuples now, judged by PostgreSQL''s own HeapTupleSatisfiesVacuum against the current xmin horizon on the pages read) and method. mode fast (default) reads statistics plus capstone.bloat_sample_pages sampled pages per relation; approx reads the heap pages the visibility map does not cover and btree indexes in full; exact uses pgstattuple/pgstatindex. Rows with less than min_bytes of bloat are left out.';

-- migration lint: capstone.lint_migration (read-only, PUBLIC may run it; it resolves the
-- migration's names on the caller's search_path, so it pins its own path like safe_ddl),
-- and safe_ddl linted first: new parameters allow and dry_run
CREATE  FUNCTION "lint_migration"(
	"migration" TEXT, /* & str */
	"small_table_bytes" bigint DEFAULT 10485760, /* i64 */
	"throughput_mb_s" double precision DEFAULT 100.0 /* f64 */
) RETURNS TABLE (
	"statement_no" INT,  /* i32 */
	"line" INT,  /* i32 */
	"rule" TEXT,  /* String */
	"severity" TEXT,  /* String */
	"lock_mode" TEXT,  /* String */
	"blocks" TEXT,  /* String */
	"effect" TEXT,  /* String */
	"table_name" TEXT,  /* String */
	"table_bytes" bigint,  /* Option < i64 > */
	"estimated_ms" double precision,  /* Option < f64 > */
	"finding" TEXT,  /* String */
	"safe_alternative" TEXT,  /* String */
	"statement" TEXT  /* String */
)
STRICT STABLE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'lint_migration_wrapper';
COMMENT ON FUNCTION capstone.lint_migration(text, bigint, double precision) IS
  'Lints a migration without running it: splits it with PostgreSQL''s parser and scanner, walks each statement''s parse tree and grades it with the live catalog (volatility, validated checks, binary-coercible casts, domain constraints, PostgreSQL''s own partition-bound proof for ATTACH PARTITION, table sizes). One row per finding: statement number, line, rule, severity, the lock taken and what it blocks, rewrite/scan/none, the table and its size, the estimated lock time at throughput_mb_s, the finding and the safe alternative as SQL. Tracks BEGIN/COMMIT and SET/RESET of lock_timeout, statement_timeout and transaction_timeout; flags what makes a rerun of a half-applied migration fail, tables named without a schema (with the schema they resolve to) and identifiers over 63 bytes; tables created earlier in the migration are exempt; tables below small_table_bytes get a lower severity. A statement that does not parse gets its own 42601 row. Read-only; PUBLIC may run it.';
DROP FUNCTION capstone.safe_ddl(text, interval, integer);
CREATE  FUNCTION "safe_ddl"(
	"ddl" TEXT, /* Option < String > */
	"lock_timeout" interval DEFAULT '500ms', /* Option < Interval > */
	"max_retries" INT DEFAULT 10, /* Option < i32 > */
	"allow" TEXT[] DEFAULT ARRAY[]::text[], /* :: std :: option :: Option < Vec < String > > */
	"dry_run" bool DEFAULT false /* Option < bool > */
) RETURNS TABLE (
	"attempt" INT,  /* i32 */
	"waited_ms" double precision,  /* f64 */
	"outcome" TEXT,  /* String */
	"risk" TEXT,  /* String */
	"warnings" TEXT[]  /* Vec < String > */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'safe_ddl_wrapper';
REVOKE ALL ON FUNCTION capstone.safe_ddl(text, interval, integer, text[], boolean) FROM PUBLIC;
COMMENT ON FUNCTION capstone.safe_ddl(text, interval, integer, text[], boolean) IS
  'Runs one DDL statement under lock_timeout with exponential backoff and jitter, logging every attempt in capstone.ddl_attempts, so it never queues behind a lock while blocking everyone behind it. The statement is linted first (capstone.lint_migration): its findings are the warnings, and a rewrite or full scan under a write-blocking lock on a table of 10 MB or more is refused (55000, with the finding and the safe alternative) unless allow names it (''rewrite'', ''scan''). dry_run => true returns the findings without running anything.';
-- Plans from elsewhere: plan_import reads a pasted plan (text, JSON, YAML, XML,
-- auto_explain logs) without executing anything and stores it as the caller's imported
-- evidence; plan_tips scores findings on any stored plan. estimate_gap(bigint) and
-- explain_diff(bigint, bigint) read imported plans too.
CREATE  FUNCTION "plan_import"(
	"source" TEXT, /* Option < String > */
	"label" TEXT DEFAULT NULL /* Option < String > */
) RETURNS TABLE (
	"evidence_id" bigint,  /* i64 */
	"format" TEXT,  /* String */
	"plan_no" INT,  /* i32 */
	"plans" INT,  /* i32 */
	"nodes" INT,  /* i32 */
	"duration_ms" double precision,  /* Option < f64 > */
	"query_text" TEXT  /* Option < String > */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'plan_import_wrapper';
ALTER FUNCTION capstone.plan_import(text, text) SET search_path = pg_catalog, pg_temp;
CREATE  FUNCTION "plan_tips"(
	"evidence_id" bigint, /* Option < i64 > */
	"top_n" INT DEFAULT 3 /* Option < i32 > */
) RETURNS TABLE (
	"rank" INT,  /* i32 */
	"node_id" INT,  /* Option < i32 > */
	"node" TEXT,  /* String */
	"finding" TEXT,  /* String */
	"evidence" TEXT,  /* String */
	"first_fix" TEXT,  /* String */
	"est_saving_ms" double precision  /* Option < f64 > */
)
STABLE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'plan_tips_wrapper';
ALTER FUNCTION capstone.plan_tips(bigint, integer) SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION capstone.plan_import(text, text) IS
  'Reads a plan capstone did not run (EXPLAIN text as pasted from psql, with header, footer, + marks, frames or hard-wrapped lines; FORMAT JSON, YAML or XML; or auto_explain log entries, text or JSON, one plan each) and stores each plan as the caller''s evidence, marked imported. Nothing is executed. Returns the evidence id, the detected format, the plan''s number and node count, and auto_explain''s duration and query text. Unreadable text is 22P02 naming the line and what was expected.';
COMMENT ON FUNCTION capstone.plan_tips(bigint, integer) IS
  'Findings on a stored plan (captured or imported), scored by the time a fix could save (est_saving_ms): row misestimates charged with the nodes above that inherit them, filters discarding most rows read (missing index on a seq scan), sorts and hashes on disk with the work_mem that fits, heap fetches in index-only scans, lossy bitmaps, parallel workers not launched, JIT share, nested loops with many inner loops. Each row names the node, the evidence and the first fix; top_n rows (default 3).';
COMMENT ON FUNCTION capstone.estimate_gap(bigint) IS
  'estimate_gap on a stored capture or imported plan (an id from capstone.evidence).';
COMMENT ON FUNCTION capstone.explain_diff(bigint, bigint) IS
  'Diffs two stored plans, captured or imported (production plan vs a fix tried on staging), node by node, aligned by relation and position.';


-- index advice from the workload: index_advice (PUBLIC revoked: plans the caller's statements and writes evidence), index_drop_advice (PUBLIC: reads what the caller may see), index_prove (PUBLIC revoked: builds an index)
CREATE  FUNCTION "index_advice"(
	"min_calls" bigint DEFAULT 1, /* Option < i64 > */
	"min_savings_pct" double precision DEFAULT 50.0, /* Option < f64 > */
	"top_n" INT DEFAULT 10 /* Option < i32 > */
) RETURNS TABLE (
	"advice_id" bigint,  /* i64 */
	"table_name" TEXT,  /* String */
	"create_index" TEXT,  /* String */
	"statements" INT,  /* i32 */
	"queryids" bigint[],  /* Vec < i64 > */
	"served" TEXT[],  /* Vec < String > */
	"weighted_cost_before" double precision,  /* f64 */
	"weighted_cost_after" double precision,  /* f64 */
	"savings_pct" double precision,  /* f64 */
	"est_size_bytes" bigint,  /* i64 */
	"est_size" TEXT,  /* String */
	"write_overhead_bytes" bigint,  /* i64 */
	"why" TEXT  /* String */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'index_advice_wrapper';
COMMENT ON FUNCTION capstone.index_advice(bigint, double precision, integer) IS
  'Indexes worth adding for the caller''s workload in pg_stat_statements (its own statements; every role''s for a superuser): candidates from each statement''s WHERE/JOIN conditions, ORDER BY and GROUP BY (single, multi-column with equality keys first, covering, partial), costed as hypothetical indexes on the generic plans; an index is kept when the weighted cost (cost x calls) of the statements it serves drops by at least min_savings_pct, a small set is chosen greedily, and candidates an existing index prefix serves are skipped. Each row is stored as evidence; prove one with capstone.index_prove(advice_id).';
REVOKE ALL ON FUNCTION capstone.index_advice(bigint, double precision, integer) FROM PUBLIC;
CREATE  FUNCTION "index_drop_advice"() RETURNS TABLE (
	"index_name" TEXT,  /* String */
	"table_name" TEXT,  /* String */
	"reason" TEXT,  /* String */
	"detail" TEXT,  /* String */
	"size_bytes" bigint,  /* i64 */
	"size" TEXT,  /* String */
	"idx_scan" bigint,  /* Option < i64 > */
	"stats_reset" timestamp with time zone,  /* Option < pgrx :: datum :: TimestampWithTimeZone > */
	"drop_index" TEXT  /* String */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'index_drop_advice_wrapper';
COMMENT ON FUNCTION capstone.index_drop_advice() IS
  'Indexes that could go, on tables the caller may read: duplicates, btree prefixes of another index, never scanned since the statistics were reset (stats_reset shown), and those whose hiding leaves every watched plan of the caller unchanged. Never one that backs a constraint or the replica identity, or one another finding relies on. Reads and plans only.';
CREATE  FUNCTION "index_prove"(
	"advice_id" bigint, /* Option < i64 > */
	"concurrently" bool DEFAULT true, /* Option < bool > */
	"max_table_bytes" bigint DEFAULT 1073741824, /* Option < i64 > */
	"queries" TEXT[] DEFAULT NULL, /* :: std :: option :: Option < Vec < Option < String > > > */
	"runs" INT DEFAULT 3 /* Option < i32 > */
) RETURNS TABLE (
	"proof_id" bigint,  /* i64 */
	"query" TEXT,  /* String */
	"est_cost_before" double precision,  /* f64 */
	"est_cost_after" double precision,  /* f64 */
	"est_speedup" double precision,  /* f64 */
	"before_node" TEXT,  /* String */
	"after_node" TEXT,  /* String */
	"before_ms" double precision,  /* f64 */
	"after_ms" double precision,  /* f64 */
	"speedup" double precision,  /* f64 */
	"verdict" TEXT  /* String */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'index_prove_wrapper';
COMMENT ON FUNCTION capstone.index_prove(bigint, boolean, bigint, text[], integer) IS
  'Builds an advised index for real, as the caller, and runs each statement it serves, or each of queries, with EXPLAIN ANALYZE through capstone.explain before and after; returns the hypothetical estimate next to the measured times and a verdict from the measurements, and stores the proof as evidence. By default the build is CREATE INDEX CONCURRENTLY in a background worker, so it takes two calls: the first measures before and starts the build (verdict building), the second measures after once the index is valid (55000 while it builds; a failed build is reported with its error). concurrently => false builds it with a plain CREATE INDEX in the caller''s transaction, which blocks writes. A table over max_table_bytes is refused.';
REVOKE ALL ON FUNCTION capstone.index_prove(bigint, boolean, bigint, text[], integer) FROM PUBLIC;
