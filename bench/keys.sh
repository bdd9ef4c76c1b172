#!/usr/bin/env bash
# Key type for the lab, measured: bigint identity vs random UUID (v4) vs time-ordered
# UUID (v7), as the primary key of an orders-shaped table, loaded in 100 batches
# with a checkpoint first (so full-page writes show where inserts land).
#   bench/keys.sh [rows]    (default 1,000,000)
# Prints index size, leaf density, WAL bytes, full-page images and load time per key type.
set -euo pipefail
. "$(dirname "$0")/common.sh"
ROWS=${1:-1000000}
BATCH=$(( ROWS / 100 ))
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS bench_keys" -c "CREATE DATABASE bench_keys"
"${PSQL[@]}" -d bench_keys <<'SQL'
CREATE EXTENSION IF NOT EXISTS pgstattuple;
-- time-ordered UUID: 48-bit Unix milliseconds, version 7, variant bits, random rest
CREATE FUNCTION bench_uuid_v7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
  SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
          || '7' || substr(r, 14, 3)
          || to_hex(8 + (get_byte(decode(substr(r, 17, 2), 'hex'), 0) & 3))
          || substr(r, 18, 15))::uuid
    FROM (SELECT replace(gen_random_uuid()::text, '-', '') AS r) s
$$;
-- PostgreSQL 18 has a built-in uuidv7() with a sub-millisecond monotonic part: prefer it
DO $$ BEGIN
  IF current_setting('server_version_num')::int >= 180000 THEN
    EXECUTE 'CREATE OR REPLACE FUNCTION bench_uuid_v7() RETURNS uuid LANGUAGE sql VOLATILE AS ' || quote_literal('SELECT uuidv7()');
  END IF;
END $$;
CREATE TABLE k_bigint (tenant_id bigint NOT NULL, id bigint GENERATED ALWAYS AS IDENTITY,
                       created_at timestamptz NOT NULL DEFAULT now(), total_cents bigint NOT NULL,
                       PRIMARY KEY (tenant_id, id));
CREATE TABLE k_uuid4 (tenant_id bigint NOT NULL, id uuid NOT NULL DEFAULT gen_random_uuid(),
                      created_at timestamptz NOT NULL DEFAULT now(), total_cents bigint NOT NULL,
                      PRIMARY KEY (tenant_id, id));
CREATE TABLE k_uuid7 (tenant_id bigint NOT NULL, id uuid NOT NULL DEFAULT bench_uuid_v7(),
                      created_at timestamptz NOT NULL DEFAULT now(), total_cents bigint NOT NULL,
                      PRIMARY KEY (tenant_id, id));
SQL
printf '%-10s %12s %10s %12s %12s %10s %10s\n' "key" "pk_bytes" "leaf_dens" "wal_bytes" "wal_fpi" "load_s" "rows/s"
for t in k_bigint k_uuid4 k_uuid7; do
  "${PSQL[@]}" -d bench_keys -c CHECKPOINT
  read -r lsn0 fpi0 < <("${PSQL[@]}" -d bench_keys -tA -F' ' -c "SELECT pg_current_wal_lsn(), (SELECT wal_fpi FROM pg_stat_wal)")
  t0=$(now_s)
  for b in $(seq 1 100); do
    # tenants drawn from a small set, as in the lab: the key's second column decides locality
    "${PSQL[@]}" -d bench_keys -c "INSERT INTO $t (tenant_id, total_cents)
        SELECT 1 + (i % 10), i FROM generate_series(1, $BATCH) i"
    [ $((b % 25)) -eq 0 ] && "${PSQL[@]}" -d bench_keys -c CHECKPOINT
  done
  t1=$(now_s)
  read -r pk dens wal fpi < <("${PSQL[@]}" -d bench_keys -tA -F' ' -c "
    SELECT pg_relation_size('${t}_pkey'), round((pgstatindex('${t}_pkey')).avg_leaf_density::numeric, 1),
           pg_current_wal_lsn() - '$lsn0'::pg_lsn, (SELECT wal_fpi FROM pg_stat_wal) - $fpi0")
  s=$(elapsed "$t0" "$t1")
  printf '%-10s %12s %10s %12s %12s %10s %10s\n' "$t" "$pk" "$dens" "$wal" "$fpi" "$s" \
    "$(awk -v r="$ROWS" -v s="$s" 'BEGIN { printf "%.0f", r / s }')"
done
