#!/usr/bin/env bash
# The index advisor on the lab and at scale, in a throwaway cluster of its own.
#  1. Recall: the lab (scale CAPSTONE_ADVICE_SCALE, default 0.2) with every index beyond the
#     keys dropped, the seven statements its proven indexes serve (docs/plans.md) run with
#     literals for several tenants; index_advice must rediscover each proven index (same
#     table, the proven key columns in order among the advised keys), and index_prove must
#     confirm each advised index with a measured speedup on tenant 1's statement.
#  2. Scale: index_advice over N generated statements on T generated tables
#     (50/10, 100/20, 200/30); goal: 200 statements on 30 tables under 10 s.
#   CAPSTONE_PG=18 bench/advice.sh      (run it under the build lock: nothing compiles meanwhile)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/env.sh"
MAJOR=${CAPSTONE_PG:-18}
PORT=${CAPSTONE_ADVICE_PORT:-29118}
SCALE=${CAPSTONE_ADVICE_SCALE:-0.2}
DIR=$(server_dir_for "$ROOT")/pgtest/bench-advice-$MAJOR
BIN=$(pg_bindir_for "$MAJOR")
stop_test_cluster "$MAJOR" "$DIR" >/dev/null 2>&1 || true
start_test_cluster "$MAJOR" "$DIR" "$PORT"
trap 'stop_test_cluster "$MAJOR" "$DIR" >/dev/null 2>&1 || true' EXIT
PSQL=("$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres)
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS bench_advice" -c "CREATE DATABASE bench_advice"
Q=("${PSQL[@]}" -d bench_advice)

echo "== 1. lab recall (scale $SCALE, PostgreSQL $MAJOR) =="
"${Q[@]}" <<SQL
SET client_min_messages = warning;
CREATE EXTENSION capstone;
CREATE EXTENSION pg_stat_statements;
SELECT count(*) > 0 AS lab FROM capstone.lab_install(scale => $SCALE, seed => 42);
CREATE TABLE proven (index_name text, tbl text, keys text[], served text);
INSERT INTO proven SELECT c.relname, format('%I.%I', n.nspname, t.relname),
       ARRAY(SELECT a.attname::text FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY k(att, o)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.att ORDER BY k.o),
       NULL
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = 'shop' AND c.relname IN ('orders_tenant_created_idx', 'orders_customer_idx', 'orders_open_idx',
       'order_lines_product_idx', 'payments_order_idx', 'journal_entries_order_idx', 'postings_account_idx');
DROP INDEX shop.orders_tenant_created_idx, shop.orders_customer_idx, shop.orders_open_idx,
           shop.order_lines_product_idx, shop.payments_order_idx, shop.journal_entries_order_idx,
           shop.postings_account_idx;
VACUUM ANALYZE;
-- the statements, with literals (pg_stat_statements keeps them as \$n); the concrete one is tenant 1's
CREATE TABLE work (index_name text, tmpl text);
INSERT INTO work VALUES
 ('orders_tenant_created_idx', 'SELECT order_id, status, total_cents, created_at FROM shop.orders WHERE tenant_id = %1\$s ORDER BY created_at DESC, order_id DESC LIMIT 20'),
 ('orders_customer_idx', 'SELECT order_id, order_no, status, total_cents, created_at FROM shop.orders WHERE tenant_id = %1\$s AND customer_id = %2\$s ORDER BY created_at DESC LIMIT 50'),
 ('orders_open_idx', 'SELECT order_id, customer_id, fulfillment_status, created_at FROM shop.orders WHERE tenant_id = %1\$s AND status = ''paid'' ORDER BY created_at LIMIT 100'),
 ('order_lines_product_idx', 'SELECT count(*), sum(quantity) FROM shop.order_lines WHERE tenant_id = %1\$s AND product_id = %3\$s'),
 ('payments_order_idx', 'SELECT payment_id, status, amount_cents FROM shop.payments WHERE tenant_id = %1\$s AND order_id = %4\$s'),
 ('journal_entries_order_idx', 'SELECT entry_id, memo, posted_at FROM shop.journal_entries WHERE tenant_id = %1\$s AND order_id = %4\$s'),
 ('postings_account_idx', 'SELECT sum(amount_cents) AS balance_cents FROM shop.postings WHERE tenant_id = %1\$s AND account_id = %5\$s');
CREATE TABLE args AS
SELECT r.tenant_id, r.customer_lo AS cust, r.product_lo AS prod,
       (SELECT max(order_id) FROM shop.orders o WHERE o.tenant_id = r.tenant_id) AS ord, r.account_cash AS cash
  FROM shop.lab_tenant_ranges r WHERE r.tenant_id <= 5;
SELECT pg_stat_statements_reset() IS NOT NULL AS reset;
SQL
"${Q[@]}" -At -c "SELECT format(w.tmpl, a.tenant_id, a.cust, a.prod, a.ord, a.cash) || ';' FROM work w, args a, generate_series(1, 3) ORDER BY w.index_name, a.tenant_id" \
  | "${Q[@]}" >/dev/null
"${Q[@]}" <<'SQL'
\pset pager off
\timing on
CREATE TABLE advice AS SELECT * FROM capstone.index_advice();
\timing off
SELECT table_name, create_index, statements, round(savings_pct::numeric, 1) AS savings_pct, est_size FROM advice ORDER BY table_name, create_index;
CREATE FUNCTION subseq(a text[], b text[]) RETURNS bool LANGUAGE sql IMMUTABLE AS $$
  WITH RECURSIVE m(i, j) AS (SELECT 1, 1
    UNION ALL SELECT CASE WHEN a[i] = b[j] THEN i + 1 ELSE i END, j + 1 FROM m WHERE i <= cardinality(a) AND j <= cardinality(b))
  SELECT max(i) > cardinality(a) FROM m $$;
-- the advice matched to a proven index: same table, the proven keys in order among its
-- keys; of several, the one that leaves the proven index's own statement (same text up to
-- WHERE) cheapest, then the first
CREATE TABLE recall AS
SELECT p.index_name, p.keys,
       (SELECT a.advice_id FROM advice a JOIN capstone.evidence e ON e.id = a.advice_id
         WHERE a.table_name = p.tbl AND subseq(p.keys, ARRAY(SELECT jsonb_array_elements_text(e.payload->'keys')))
         ORDER BY (SELECT min((s->>'cost_after')::float8)
                     FROM work w, jsonb_array_elements(e.payload->'served') s
                    WHERE w.index_name = p.index_name
                      AND starts_with(s->>'query', left(w.tmpl, strpos(w.tmpl, ' WHERE')))) NULLS LAST,
                  a.advice_id LIMIT 1) AS advice_id
  FROM proven p;
SELECT r.index_name, array_to_string(r.keys, ', ') AS proven_keys, a.create_index AS rediscovered_as
  FROM recall r LEFT JOIN advice a ON a.advice_id = r.advice_id ORDER BY r.index_name;
SELECT count(advice_id) AS rediscovered, count(*) AS proven,
       round(100.0 * count(advice_id) / count(*), 1) AS recall_pct FROM recall;
-- prove each rediscovered advice on tenant 1's statement (the whale), measured
CREATE TABLE proofs (index_name text, advice_id bigint, verdict text, est_speedup float8, before_ms float8, after_ms float8, speedup float8, after_node text);
DO $$
DECLARE r record; q text; p record;
BEGIN
  FOR r IN SELECT DISTINCT ON (advice_id) rc.index_name, rc.advice_id FROM recall rc WHERE advice_id IS NOT NULL ORDER BY advice_id LOOP
    SELECT format(w.tmpl, a.tenant_id, a.cust, a.prod, a.ord, a.cash) INTO q FROM work w, args a WHERE w.index_name = r.index_name AND a.tenant_id = 1;
    FOR p IN SELECT * FROM capstone.index_prove(r.advice_id, concurrently => false, max_table_bytes => NULL, queries => ARRAY[q], runs => 5) LOOP
      INSERT INTO proofs VALUES (r.index_name, r.advice_id, p.verdict, p.est_speedup, p.before_ms, p.after_ms, p.speedup, p.after_node);
    END LOOP;
  END LOOP;
END $$;
SELECT index_name, verdict, est_speedup, before_ms, after_ms, speedup, after_node FROM proofs ORDER BY index_name;
SELECT count(*) FILTER (WHERE verdict = 'faster') AS proven_faster, count(*) AS proofs FROM proofs;
SQL

echo "== 2. index_advice time against statements and tables =="
for nt in "50 10" "100 20" "200 30"; do
  set -- $nt; N=$1; T=$2
  "${Q[@]}" <<SQL >/dev/null
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS gen CASCADE; CREATE SCHEMA gen;
SELECT format('CREATE TABLE gen.t%s (id bigint PRIMARY KEY, a int, b int, c int, d timestamptz, e text)', g) FROM generate_series(1, $T) g \gexec
SELECT format('INSERT INTO gen.t%s SELECT i, i %% 1000, i %% 97, i %% 13, now() - i * interval ''1 s'', md5(i::text) FROM generate_series(1, 20000) i', g) FROM generate_series(1, $T) g \gexec
ANALYZE;
SELECT pg_stat_statements_reset() IS NOT NULL;
SQL
  # N distinct statement shapes spread over the T tables: equality, range, sort, join, group.
  # The join's aliases name its tables: PostgreSQL 18's pg_stat_statements identifies a
  # relation by its alias, so `t1 x JOIN t2 y` and `t5 x JOIN t6 y` would be one entry
  "${Q[@]}" -At -c "SELECT format(CASE s % 5
        WHEN 0 THEN 'SELECT * FROM gen.t%1\$s WHERE a = 5 AND c = %2\$s%4\$s'
        WHEN 1 THEN 'SELECT id, d FROM gen.t%1\$s WHERE b = 3 AND d > now() - interval ''%2\$s min''%4\$s ORDER BY d DESC LIMIT 10'
        WHEN 2 THEN 'SELECT count(*) FROM gen.t%1\$s WHERE c = 2 AND b < %2\$s%4\$s'
        WHEN 3 THEN 'SELECT x%1\$s.id FROM gen.t%1\$s x%1\$s JOIN gen.t%3\$s y%3\$s ON y%3\$s.a = x%1\$s.b WHERE x%1\$s.c = %2\$s%4\$s'
        ELSE 'SELECT b, count(*) FROM gen.t%1\$s WHERE a BETWEEN 1 AND %2\$s%4\$s GROUP BY b' END,
        1 + (s / 5) % $T, 1 + s % 7, 1 + (s / 5 + 1) % $T, repeat(CASE WHEN s % 5 = 3 THEN format(' AND x%s.d IS NOT NULL', 1 + (s / 5) % $T) ELSE ' AND d IS NOT NULL' END, s / ($T * 5))) || ';'
        FROM generate_series(0, $N - 1) s" | "${Q[@]}" >/dev/null
  stmts=$("${Q[@]}" -At -c "SELECT count(*) FROM pg_stat_statements WHERE query ~ '^SELECT .*gen\.t[0-9]+'")
  out=$("${Q[@]}" -At 2>&1 <<'SQL'
SET client_min_messages = notice;
CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS t;
CREATE TEMP TABLE adv AS SELECT * FROM capstone.index_advice(top_n => 1000);
SELECT 'secs=' || round(extract(epoch FROM clock_timestamp() - t)::numeric, 2) FROM t0;
SELECT 'advised=' || count(*) FROM adv WHERE table_name LIKE 'gen.%';
SQL
)
  secs=$(echo "$out" | sed -n 's/^secs=//p')
  read_n=$(echo "$out" | sed -n 's/.*index_advice: \([0-9]*\) statement(s) read, \([0-9]*\) analyzed.*/\1 read, \2 analyzed/p')
  advised=$(echo "$out" | sed -n 's/^advised=//p')
  echo "generated=$N distinct_in_pg_stat_statements=$stmts advisor=[$read_n] tables=$T advice_rows=$advised index_advice_s=$secs goal_s=10 verdict=$(awk -v s="$secs" -v n="$stmts" -v want="$N" 'BEGIN { print (s < 10 && n >= want) ? "pass" : "fail" }')"
done
