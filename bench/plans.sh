#!/usr/bin/env bash
# Overhead of capstone's plan functions against raw EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
# of the same query, alternating raw / estimate_gap / explain_diff in each of N rounds,
# measured server-side in one session; prints median, min and max of each.
#   bench/plans.sh [runs]   (default 20; needs the lab loaded in capstone_lab)
# Ratios (of the medians): estimate_gap / raw EXPLAIN, and explain_diff(query, no-op
# change) / 2 x raw EXPLAIN (explain_diff captures the query twice). Goal, fixed here: <= 1.10.
set -euo pipefail
. "$(dirname "$0")/common.sh"
RUNS=${1:-20}
GOAL=1.10
DB=${CAPSTONE_LAB_DB:-capstone_lab}
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
"${PSQL[@]}" -d "$DB" -At -F '|' -v runs="$RUNS" > "$OUT" <<'SQL'
SET client_min_messages = warning;
CREATE TEMP TABLE bench_q (name text, q text);
INSERT INTO bench_q VALUES
 ('small: recent orders page (point query)',
  'SELECT order_id, status, total_cents FROM shop.orders WHERE tenant_id = 1 ORDER BY created_at DESC, order_id DESC LIMIT 20'),
 ('medium: refunded orders by country (join + aggregate)',
  'SELECT c.country, count(*) FROM shop.orders o JOIN shop.customers c ON c.tenant_id = o.tenant_id AND c.customer_id = o.customer_id WHERE o.status = ''refunded'' AND o.fulfillment_status = ''returned'' AND o.payment_status = ''refunded'' GROUP BY c.country');
-- a large plan: 40 small joins under one UNION ALL (well over 100 nodes)
INSERT INTO bench_q
SELECT 'large: 40-way UNION ALL of joins', string_agg(format(
  'SELECT o.order_id, l.line_no FROM shop.orders o JOIN shop.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.order_id WHERE o.tenant_id = %s AND o.order_id = (SELECT max(order_id) FROM shop.orders WHERE tenant_id = %s)', t, t), ' UNION ALL ')
  FROM generate_series(1, 40) t;

CREATE FUNCTION pg_temp.median(float8[]) RETURNS float8 LANGUAGE sql AS
  $$ SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest($1) x $$;

CREATE FUNCTION pg_temp.bench(q text, runs int) RETURNS TABLE (nodes int, raw float8[], gap float8[], dif float8[])
LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz; p json;
BEGIN
  raw := '{}'; gap := '{}'; dif := '{}';
  -- warm-up
  EXECUTE 'EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ' || q INTO p;
  PERFORM count(*) FROM capstone.estimate_gap(q);
  SELECT count(*) INTO nodes FROM capstone.estimate_gap(q);
  FOR i IN 1..runs LOOP
    t0 := clock_timestamp();
    EXECUTE 'EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ' || q INTO p;
    raw := raw || extract(epoch FROM clock_timestamp() - t0) * 1000;
    t0 := clock_timestamp();
    PERFORM count(*) FROM capstone.estimate_gap(q);
    gap := gap || extract(epoch FROM clock_timestamp() - t0) * 1000;
    t0 := clock_timestamp();
    PERFORM count(*) FROM capstone.explain_diff(q, 'SELECT 1');
    dif := dif || extract(epoch FROM clock_timestamp() - t0) * 1000;
  END LOOP;
  RETURN NEXT;
END $$;

CREATE FUNCTION pg_temp.mmm(float8[]) RETURNS text LANGUAGE sql AS
  $$ SELECT format('%s ms [%s–%s]', round(pg_temp.median($1)::numeric, 3),
                   round(min(x)::numeric, 3), round(max(x)::numeric, 3)) FROM unnest($1) x $$;
SELECT b.name, r.nodes, pg_temp.mmm(r.raw), pg_temp.mmm(r.gap),
       round((pg_temp.median(r.gap) / pg_temp.median(r.raw))::numeric, 2),
       pg_temp.mmm(r.dif), round((pg_temp.median(r.dif) / (2 * pg_temp.median(r.raw)))::numeric, 2)
  FROM bench_q b, LATERAL pg_temp.bench(b.q, :runs) r;
SQL
echo "capture overhead, PostgreSQL $MAJOR, $RUNS alternating rounds per query (median [min–max])"
printf '%-52s %5s | %-28s | %-28s %6s | %-28s %6s\n' query nodes "raw EXPLAIN" estimate_gap ratio explain_diff ratio
while IFS='|' read -r name nodes raw gap gr dif dr; do
  printf '%-52s %5s | %-28s | %-28s %6s | %-28s %6s\n' "$name" "$nodes" "$raw" "$gap" "$gr" "$dif" "$dr"
  short=${name%%:*}
  bench_row "estimate_gap ÷ raw EXPLAIN, $short ($nodes nodes)" "$raw" "$gap" "$gr" "<= $GOAL" "$(verdict_of "$gr" "<=" "$GOAL")"
  bench_row "explain_diff ÷ 2 × raw EXPLAIN, $short" "2 × $raw" "$dif" "$dr" "<= $GOAL" "$(verdict_of "$dr" "<=" "$GOAL")"
done < "$OUT"
