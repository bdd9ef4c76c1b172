#!/usr/bin/env bash
# Bloat estimates, measured: capstone.bloat_report in its default (fast) mode against
# pgstattuple over the same relations, in one run, on the lab plus a large event table.
#   bench/bloat.sh [lab_scale] [event_rows]     (defaults: 1 and 15,000,000 rows, about 2 GB)
# Induces bloat first: 25% and 50% of two lab tables deleted, 20% of orders rewritten,
# a TOAST-heavy table with a third deleted, a deduplicated index that lost half its rows;
# then plain VACUUM and ANALYZE, as a production table would look between rewrites.
# Prints, per relation: size, pgstattuple's figure, the fast estimate and the plain
# catalog-only estimate (capstone.bloat_sample_pages = 0) with their errors; then the
# time of each method and the ratio pgstattuple / fast (goal: 50x or more).
set -euo pipefail
. "$(dirname "$0")/common.sh"
SCALE=${1:-1}
EVENTS=${2:-15000000}
DB=bench_bloat
RUNS=${CAPSTONE_BENCH_RUNS:-3}
GOAL_POINTS=10   # every relation's fast estimate within this many points of pgstattuple
GOAL_SPEED=50    # pgstattuple time / fast time
SUMMARY=$(mktemp)
chmod 666 "$SUMMARY"
trap 'rm -f "$SUMMARY"' EXIT

"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
t0=$(now_s)
"${PSQL[@]}" -d "$DB" <<SQL
SET client_min_messages = warning;
CREATE EXTENSION capstone;
CREATE EXTENSION pgstattuple;
SELECT count(*) AS lab_tables FROM capstone.lab_install(scale => $SCALE, seed => 42);
-- churn on the lab: a fifth of the orders rewritten (full pages, so mostly not HOT)
UPDATE shop.orders SET updated_at = updated_at + interval '1 second' WHERE order_id % 5 = 0;
CREATE SCHEMA bench;
-- copies of lab tables without their constraints, so a quarter and a half of the rows can go
CREATE TABLE bench.postings_25 WITH (autovacuum_enabled = false) AS SELECT * FROM shop.postings;
CREATE INDEX ON bench.postings_25 (tenant_id, account_id);
DELETE FROM bench.postings_25 WHERE entry_id % 4 = 0;
CREATE TABLE bench.payments_50 WITH (autovacuum_enabled = false) AS SELECT * FROM shop.payments;
CREATE INDEX ON bench.payments_50 (status);
DELETE FROM bench.payments_50 WHERE payment_id % 2 = 0;
-- TOAST-heavy: 4-12 kB documents, a third deleted
CREATE TABLE bench.documents (id bigint PRIMARY KEY, body text NOT NULL) WITH (autovacuum_enabled = false);
INSERT INTO bench.documents
SELECT g, (SELECT string_agg(md5((g * 1000 + k)::text), '') FROM generate_series(1, 120 + g % 250) k)
  FROM generate_series(1, 10000) g;
DELETE FROM bench.documents WHERE id % 3 = 0;
-- the large table: append-only events with a low-cardinality (deduplicated) kind index
CREATE TABLE bench.events (id bigint, tenant_id int, kind text, payload text, at timestamptz)
  WITH (autovacuum_enabled = false);
INSERT INTO bench.events
SELECT g, 1 + g % 100, (ARRAY['view', 'click', 'cart', 'buy'])[1 + g % 4],
       'event ' || g || ' ' || repeat(chr(97 + g % 26), 40 + g % 40),
       timestamptz '2026-01-01 00:00+00' + g * interval '10 ms'
  FROM generate_series(1, $EVENTS) g;
CREATE INDEX events_kind_idx ON bench.events (kind);
CREATE INDEX events_id_idx ON bench.events (id);
SELECT pg_stat_force_next_flush() \g /dev/null
SQL
"${PSQL[@]}" -d "$DB" -c "VACUUM" -c "ANALYZE"
echo "bench: data ready in $(elapsed "$t0" "$(now_s)") s"

"${PSQL[@]}" -d "$DB" -v runs="$RUNS" -v summary="$SUMMARY" <<'SQL'
\pset pager off
-- one run of each method over the same relations (shop and bench schemas), in ms
CREATE TEMP TABLE timings (method text, run int, ms float8);
CREATE FUNCTION pg_temp.time_it(method text, sql text, runs int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE t timestamptz; i int;
BEGIN
  EXECUTE sql;  -- warm-up: same cache state for every method
  FOR i IN 1 .. runs LOOP
    t := clock_timestamp();
    EXECUTE sql;
    INSERT INTO timings VALUES (method, i, extract(epoch FROM clock_timestamp() - t) * 1000);
  END LOOP;
END $$;
CREATE TEMP TABLE rels AS
SELECT relid, schema, relation, kind FROM capstone.bloat_report(schema_name => 'shop')
UNION ALL SELECT relid, schema, relation, kind FROM capstone.bloat_report(schema_name => 'bench');
DELETE FROM rels WHERE pg_relation_size(relid) = 0;
\echo '== the relations measured: tables, TOAST tables and btree indexes of schemas shop and bench =='
SELECT count(*) AS relations, pg_size_pretty(sum(pg_relation_size(relid))) AS total,
       pg_size_pretty(max(pg_relation_size(relid))) AS largest FROM rels;
\o /dev/null
SET capstone.bloat_sample_pages = 0;
SELECT pg_temp.time_it('catalog only', $q$SELECT count(*) FROM (SELECT * FROM capstone.bloat_report(schema_name => 'shop') UNION ALL SELECT * FROM capstone.bloat_report(schema_name => 'bench')) r$q$, :runs);
RESET capstone.bloat_sample_pages;
SELECT pg_temp.time_it('fast (default)', $q$SELECT count(*) FROM (SELECT * FROM capstone.bloat_report(schema_name => 'shop') UNION ALL SELECT * FROM capstone.bloat_report(schema_name => 'bench')) r$q$, :runs);
SELECT pg_temp.time_it('approx', $q$SELECT count(*) FROM (SELECT * FROM capstone.bloat_report(schema_name => 'shop', mode => 'approx') UNION ALL SELECT * FROM capstone.bloat_report(schema_name => 'bench', mode => 'approx')) r$q$, :runs);
SELECT pg_temp.time_it('pgstattuple', $q$SELECT count(*) FROM rels, pgstattuple(relid)$q$, :runs);
\o

-- accuracy: every relation, against pgstattuple (exact mode = pgstattuple less the fillfactor reserve)
CREATE TEMP TABLE est AS
SELECT r.schema, r.relation, r.kind, pg_relation_size(r.relid) AS bytes,
       e.est_bloat_pct AS exact, f.est_bloat_pct AS fast, a.est_bloat_pct AS approx
  FROM rels r
  JOIN capstone.bloat_report(schema_name => 'shop', mode => 'exact') e USING (relid)
  JOIN capstone.bloat_report(schema_name => 'shop') f USING (relid)
  JOIN capstone.bloat_report(schema_name => 'shop', mode => 'approx') a USING (relid)
UNION ALL
SELECT r.schema, r.relation, r.kind, pg_relation_size(r.relid),
       e.est_bloat_pct, f.est_bloat_pct, a.est_bloat_pct
  FROM rels r
  JOIN capstone.bloat_report(schema_name => 'bench', mode => 'exact') e USING (relid)
  JOIN capstone.bloat_report(schema_name => 'bench') f USING (relid)
  JOIN capstone.bloat_report(schema_name => 'bench', mode => 'approx') a USING (relid);
SET capstone.bloat_sample_pages = 0;
ALTER TABLE est ADD COLUMN catalog float8;
UPDATE est SET catalog = c.est_bloat_pct
  FROM (SELECT * FROM capstone.bloat_report(schema_name => 'shop')
        UNION ALL SELECT * FROM capstone.bloat_report(schema_name => 'bench')) c
 WHERE c.schema = est.schema AND c.relation = est.relation AND c.kind = est.kind;
RESET capstone.bloat_sample_pages;

\echo '== per relation: bloat % (free + dead beyond the fillfactor reserve) and each estimate''s error in points =='
SELECT schema || '.' || relation AS relation, kind, round(bytes / 1048576.0, 1) AS mb,
       round(exact::numeric, 1) AS pgstattuple, round(fast::numeric, 1) AS fast,
       round((fast - exact)::numeric, 1) AS fast_err, round((catalog - exact)::numeric, 1) AS catalog_err,
       round((approx - exact)::numeric, 1) AS approx_err
  FROM est ORDER BY schema, relation, kind;
\echo '== error summary (points): max |error| by relation kind =='
SELECT kind, count(*) AS relations,
       round(max(abs(fast - exact))::numeric, 1) AS fast_max_err,
       round(max(abs(catalog - exact))::numeric, 1) AS catalog_max_err,
       round(max(abs(approx - exact))::numeric, 1) AS approx_max_err
  FROM est GROUP BY kind ORDER BY kind;
\echo '== time per method (median of runs, warm cache), over the same relations =='
WITH m AS (SELECT method, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM timings GROUP BY method)
SELECT method, round(ms::numeric, 1) AS median_ms,
       round(((SELECT ms FROM m WHERE method = 'pgstattuple') / nullif(ms, 0))::numeric, 1) AS pgstattuple_over_this
  FROM m ORDER BY ms;
-- the figures of the benchmark table: worst error over all relations, and the speed ratio
WITH m AS (SELECT method, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms,
                  min(ms) AS lo, max(ms) AS hi FROM timings GROUP BY method)
SELECT (SELECT round(max(abs(fast - exact))::numeric, 1) FROM est),
       (SELECT string_agg(schema || '.' || relation || ' ' || kind, ', ')
          FROM est WHERE abs(fast - exact) = (SELECT max(abs(fast - exact)) FROM est)),
       (SELECT count(*) FROM est),
       (SELECT format('%s ms [%s–%s]', round(ms::numeric, 1), round(lo::numeric, 1), round(hi::numeric, 1)) FROM m WHERE method = 'pgstattuple'),
       (SELECT format('%s ms [%s–%s]', round(ms::numeric, 1), round(lo::numeric, 1), round(hi::numeric, 1)) FROM m WHERE method = 'fast (default)'),
       round(((SELECT ms FROM m WHERE method = 'pgstattuple') / nullif((SELECT ms FROM m WHERE method = 'fast (default)'), 0))::numeric, 1)
\g (format=unaligned tuples_only fieldsep='|') :summary
SQL
IFS='|' read -r worst worst_rel nrel pst fast speed < "$SUMMARY"
bench_row "bloat_report default vs pgstattuple: worst error of $nrel relations (points)" "pgstattuple (exact)" \
  "$worst ($worst_rel)" "$worst" "<= $GOAL_POINTS" "$(verdict_of "$worst" "<=" "$GOAL_POINTS")"
bench_row "bloat_report default: time ÷ pgstattuple's, same $nrel relations" "$pst" "$fast" "$speed" \
  ">= $GOAL_SPEED× faster" "$(verdict_of "$speed" ">=" "$GOAL_SPEED")"
