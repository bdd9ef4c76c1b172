#!/usr/bin/env bash
# Overhead of capstone's plan functions against raw EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
# of the same query, median of N runs each, measured server-side in one session.
#   bench/plans.sh [runs]   (default 20; needs the lab loaded in capstone_lab)
# Ratios: estimate_gap / raw EXPLAIN, and explain_diff(query, no-op change) / 2 x raw EXPLAIN
# (explain_diff captures the query twice). Goal <= 1.10.
set -euo pipefail
. "$(dirname "$0")/common.sh"
RUNS=${1:-20}
DB=${CAPSTONE_LAB_DB:-capstone_lab}
"${PSQL[@]}" -d "$DB" -v runs="$RUNS" <<'SQL'
\pset pager off
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

CREATE FUNCTION pg_temp.bench(q text, runs int) RETURNS TABLE (nodes int, raw_ms float8, gap_ms float8, diff_ms float8)
LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz; raw float8[] := '{}'; gap float8[] := '{}'; dif float8[] := '{}'; p json;
BEGIN
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
  raw_ms := pg_temp.median(raw); gap_ms := pg_temp.median(gap); diff_ms := pg_temp.median(dif);
  RETURN NEXT;
END $$;

SELECT b.name, r.nodes, round(r.raw_ms::numeric, 3) AS raw_explain_ms,
       round(r.gap_ms::numeric, 3) AS estimate_gap_ms, round((r.gap_ms / r.raw_ms)::numeric, 2) AS gap_ratio,
       round(r.diff_ms::numeric, 3) AS explain_diff_ms, round((r.diff_ms / (2 * r.raw_ms))::numeric, 2) AS diff_ratio
  FROM bench_q b, LATERAL pg_temp.bench(b.q, :runs) r;
SQL
