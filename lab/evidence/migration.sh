#!/usr/bin/env bash
# The lab's breaking change, end to end, under load: customers.full_name becomes
# first_name + last_name, by expand-contract.
#   lab/evidence/migration.sh PSQL_CONNINFO... (run by scripts/run-lab.sh)
# While it runs: pgbench drives place_order plus writers on the old and the new schema
# version, and a second session repeatedly holds a conflicting lock (a long transaction
# that has updated a customer). capstone.lock_watch samples pg_locks throughout.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$ROOT/bench/common.sh"
DB=${CAPSTONE_LAB_DB:-capstone_lab}
OUT=${1:-/tmp}
P=("${PSQL[@]}" -d "$DB")
say() { printf '\n== %s\n' "$*"; }

ntenants=$("${P[@]}" -tA -c "SELECT count(*) FROM shop.tenants")
norders=$("${P[@]}" -tA -c "SELECT max(order_id) FROM shop.orders")
"${P[@]}" -c "SELECT capstone.backfill_cancel(id) FROM capstone.backfill_jobs WHERE state IN ('queued','running','paused')" >/dev/null 2>&1 || true

# load: place orders for the whole run; a writer on the old schema version until the switch,
# and one on the new version from the dual-write phase on
"${PGBENCH[@]}" -n -c 3 -j 2 -T 30 -D ntenants="$ntenants" -D norders="$norders" \
  -f "$ROOT/lab/workload/place_order.sql" "$DB" > "$OUT/migration_pgbench.txt" 2>&1 &
PGB=$!
"${PGBENCH[@]}" -n -c 1 -j 1 -T 12 -D ntenants="$ntenants" \
  -f "$ROOT/lab/workload/rename_customer_old.sql" "$DB" > "$OUT/migration_pgbench_old.txt" 2>&1 &
PGB_OLD=$!
# the conflicting lock: a transaction that updated a customer and sits on it for 1.5 s, again and again
( for i in $(seq 1 8); do
    "${P[@]}" -c "BEGIN; UPDATE shop.customers SET segment = segment WHERE tenant_id = 1 AND customer_id = 1; SELECT pg_sleep(1.5); COMMIT;" >/dev/null 2>&1
    sleep 0.5
  done ) &
HOLDER=$!
trap 'kill $PGB $PGB_OLD $HOLDER 2>/dev/null; wait 2>/dev/null' EXIT
# lock evidence for the whole run
"${P[@]}" -c "SELECT count(*) FROM capstone.lock_watch('28 s', '100 ms', 'migration: lock_watch during expand-contract')" > "$OUT/migration_lockwatch.txt" 2>&1 &
WATCH=$!
sleep 1

say "0. lint: the whole runbook's DDL through capstone.lint_migration (PostgreSQL's parser, the live catalog), before any of it runs"
RUNBOOK=$(cat <<'MIG'
SET lock_timeout = '200ms';  -- what safe_ddl sets for every statement below
ALTER TABLE shop.customers ADD COLUMN first_name text, ADD COLUMN last_name text;
CREATE TRIGGER customers_name_sync BEFORE INSERT OR UPDATE ON shop.customers FOR EACH ROW EXECUTE FUNCTION shop.customers_name_sync();
ALTER TABLE shop.customers ADD CONSTRAINT customers_first_name_nn CHECK (first_name IS NOT NULL) NOT VALID;
ALTER TABLE shop.customers ADD CONSTRAINT customers_last_name_nn CHECK (last_name IS NOT NULL) NOT VALID;
ALTER TABLE shop.customers VALIDATE CONSTRAINT customers_first_name_nn;
ALTER TABLE shop.customers VALIDATE CONSTRAINT customers_last_name_nn;
ALTER TABLE shop.customers ALTER COLUMN first_name SET NOT NULL;
ALTER TABLE shop.customers ALTER COLUMN last_name SET NOT NULL;
DROP TRIGGER customers_name_sync ON shop.customers;
ALTER TABLE shop.customers DROP CONSTRAINT customers_first_name_nn;
ALTER TABLE shop.customers DROP CONSTRAINT customers_last_name_nn;
ALTER TABLE shop.customers DROP COLUMN full_name;
MIG
)
"${P[@]}" -v m="$RUNBOOK" <<'SQL'
SELECT statement_no AS n, rule, severity, lock_mode, effect, table_name, left(finding, 90) AS finding
  FROM capstone.lint_migration(:'m') ORDER BY statement_no;
-- the gate: nothing safe_ddl would refuse (a rewrite or scan under a write-blocking lock on a
-- table of 10 MB or more) and nothing that fails; what is left (dropping full_name) is the
-- contract step the runbook only takes after every reader and writer switched
INSERT INTO capstone.evidence (gate, label, payload)
SELECT 'migration', 'lint: expand-contract runbook',
       jsonb_build_object(
         'summary', format('%s statements linted: %s findings (%s), %s that safe_ddl would refuse, %s errors',
                           (SELECT max(statement_no) FROM capstone.lint_migration(:'m')), count(*),
                           coalesce(string_agg(DISTINCT rule, ', '), 'none'),
                           count(*) FILTER (WHERE effect IN ('rewrite', 'scan') AND lock_mode IN ('SHARE', 'SHARE ROW EXCLUSIVE', 'ACCESS EXCLUSIVE')
                                              AND table_bytes >= 10485760),
                           count(*) FILTER (WHERE severity = 'error')),
         'passed', count(*) FILTER (WHERE (effect IN ('rewrite', 'scan') AND lock_mode IN ('SHARE', 'SHARE ROW EXCLUSIVE', 'ACCESS EXCLUSIVE')
                                           AND table_bytes >= 10485760) OR severity = 'error') = 0,
         'verdict', CASE WHEN count(*) FILTER (WHERE (effect IN ('rewrite', 'scan') AND lock_mode IN ('SHARE', 'SHARE ROW EXCLUSIVE', 'ACCESS EXCLUSIVE')
                                           AND table_bytes >= 10485760) OR severity = 'error') = 0
                         THEN 'PASS: no step rewrites or scans shop.customers under a write-blocking lock, none fails'
                         ELSE 'FAIL: a step rewrites or scans under a write-blocking lock, or fails' END)
  FROM capstone.lint_migration(:'m')
RETURNING payload->>'verdict' AS lint_gate, payload->>'summary' AS summary;
SQL

say "1. expand: new nullable columns, no rewrite (ACCESS EXCLUSIVE for milliseconds, under lock_timeout)"
"${P[@]}" -c "SELECT attempt, waited_ms, outcome FROM capstone.safe_ddl('ALTER TABLE shop.customers ADD COLUMN first_name text, ADD COLUMN last_name text', lock_timeout => '200ms', max_retries => 30)"

say "2. dual-write: writers on either version keep both shapes in sync (trigger; SHARE ROW EXCLUSIVE for milliseconds)"
"${P[@]}" -c "CREATE OR REPLACE FUNCTION shop.customers_name_sync() RETURNS trigger LANGUAGE plpgsql AS \$f\$
BEGIN
  IF TG_OP = 'INSERT' OR NEW.full_name IS DISTINCT FROM OLD.full_name THEN
    NEW.first_name := split_part(NEW.full_name, ' ', 1);
    NEW.last_name := substr(NEW.full_name, strpos(NEW.full_name, ' ') + 1);
  ELSIF NEW.first_name IS DISTINCT FROM OLD.first_name OR NEW.last_name IS DISTINCT FROM OLD.last_name THEN
    NEW.full_name := NEW.first_name || ' ' || NEW.last_name;
  END IF;
  RETURN NEW;
END \$f\$"
"${P[@]}" -c "SELECT attempt, waited_ms, outcome FROM capstone.safe_ddl('CREATE TRIGGER customers_name_sync BEFORE INSERT OR UPDATE ON shop.customers FOR EACH ROW EXECUTE FUNCTION shop.customers_name_sync()', lock_timeout => '200ms', max_retries => 30)"
# from now on the new-version writer runs too
"${PGBENCH[@]}" -n -c 1 -j 1 -T 20 -D ntenants="$ntenants" -f "$ROOT/lab/workload/rename_customer_new.sql" "$DB" > "$OUT/migration_pgbench_new.txt" 2>&1 &
PGB2=$!

say "3. backfill: the worker, keyset batches of 2000, lock_timeout 200ms"
job=$("${P[@]}" -tA -c "SELECT capstone.backfill_start('shop.customers',
  \$\$first_name = split_part(full_name, ' ', 1), last_name = substr(full_name, strpos(full_name, ' ') + 1)\$\$,
  'first_name IS NULL', batch_size => 2000, lock_timeout => '200ms', max_retries => 100)")
for _ in $(seq 1 600); do
  s=$("${P[@]}" -tA -c "SELECT state FROM capstone.backfill_jobs WHERE id = $job"); [ "$s" = done ] && break; sleep 0.1
done
"${P[@]}" -c "SELECT job, state, rows_done, batches, retries, lock_timeouts, rows_per_s FROM capstone.backfill_status($job)"

say "4. validate: CHECK ... NOT VALID (brief lock), VALIDATE (SHARE UPDATE EXCLUSIVE: writers keep going), SET NOT NULL using the validated check"
for ddl in "ALTER TABLE shop.customers ADD CONSTRAINT customers_first_name_nn CHECK (first_name IS NOT NULL) NOT VALID" \
           "ALTER TABLE shop.customers ADD CONSTRAINT customers_last_name_nn CHECK (last_name IS NOT NULL) NOT VALID" \
           "ALTER TABLE shop.customers VALIDATE CONSTRAINT customers_first_name_nn" \
           "ALTER TABLE shop.customers VALIDATE CONSTRAINT customers_last_name_nn" \
           "ALTER TABLE shop.customers ALTER COLUMN first_name SET NOT NULL" \
           "ALTER TABLE shop.customers ALTER COLUMN last_name SET NOT NULL"; do
  "${P[@]}" -tA -F' | ' -c "SELECT attempt, waited_ms, outcome FROM capstone.safe_ddl(\$q\$$ddl\$q\$, lock_timeout => '200ms', max_retries => 30)" | sed "s/^/  $ddl: /"
done

say "5. switch reads and writes: every writer on the new version (the old-version writer finishes), readers select first_name, last_name"
wait $PGB_OLD 2>/dev/null
"${P[@]}" -c "SELECT count(*) AS rows, count(*) FILTER (WHERE first_name || ' ' || last_name = full_name) AS consistent FROM shop.customers"
wait $PGB2 2>/dev/null

say "6. contract: drop the trigger and the old column while orders keep coming (brief ACCESS EXCLUSIVE each, under lock_timeout)"
for ddl in "DROP TRIGGER customers_name_sync ON shop.customers" \
           "ALTER TABLE shop.customers DROP CONSTRAINT customers_first_name_nn" \
           "ALTER TABLE shop.customers DROP CONSTRAINT customers_last_name_nn" \
           "ALTER TABLE shop.customers DROP COLUMN full_name"; do
  "${P[@]}" -tA -F' | ' -c "SELECT attempt, waited_ms, outcome FROM capstone.safe_ddl(\$q\$$ddl\$q\$, lock_timeout => '200ms', max_retries => 30)" | sed "s/^/  $ddl: /"
done
wait $PGB 2>/dev/null
wait $WATCH 2>/dev/null

say "proof"
"${P[@]}" -c "SELECT count(*) AS ddl_attempts, count(*) FILTER (WHERE sqlstate = '55P03') AS lock_timeouts_retried,
                     round(max(waited_ms)::numeric, 1) AS longest_wait_ms, count(*) FILTER (WHERE sqlstate IS NOT NULL AND sqlstate <> '55P03') AS other_errors
                FROM capstone.ddl_attempts WHERE role_name = current_user"
cat "$OUT/migration_lockwatch.txt" | head -3
"${P[@]}" -c "SELECT label, payload->>'summary' AS lock_watch FROM capstone.evidence WHERE gate = 'migration' ORDER BY id DESC LIMIT 1"
grep -E 'number of failed|tps =|transactions actually' "$OUT/migration_pgbench.txt" "$OUT/migration_pgbench_old.txt" "$OUT/migration_pgbench_new.txt" || true
"${P[@]}" -c "SELECT count(*) FILTER (WHERE first_name IS NULL OR last_name IS NULL) AS incomplete_rows, count(*) AS customers FROM shop.customers"
# one evidence row with the whole runbook's outcome
"${P[@]}" -q -c "INSERT INTO capstone.evidence (gate, label, payload)
  SELECT 'migration', 'expand-contract: customers.full_name -> first_name + last_name',
         jsonb_build_object('summary', format('%s DDL attempts (%s lock timeouts retried, longest wait %s ms); backfill job %s: %s rows in %s batches, %s retries',
              count(*), count(*) FILTER (WHERE sqlstate = '55P03'), round(max(waited_ms)::numeric, 1), j.id, j.rows_done, j.batches_done, j.retries),
           'verdict', CASE WHEN count(DISTINCT ddl) FILTER (WHERE sqlstate IS NULL) = count(DISTINCT ddl)
                            AND count(*) FILTER (WHERE sqlstate IS NOT NULL AND sqlstate <> '55P03') = 0
                       THEN format('PASS: all %s DDL statements applied; %s attempts gave up on lock_timeout and were retried, none failed otherwise',
                                   count(DISTINCT ddl), count(*) FILTER (WHERE sqlstate = '55P03'))
                       ELSE format('FAIL: %s of %s DDL statements never applied; %s attempts failed with an error other than lock_timeout',
                                   count(DISTINCT ddl) - count(DISTINCT ddl) FILTER (WHERE sqlstate IS NULL), count(DISTINCT ddl),
                                   count(*) FILTER (WHERE sqlstate IS NOT NULL AND sqlstate <> '55P03')) END,
           'passed', count(DISTINCT ddl) FILTER (WHERE sqlstate IS NULL) = count(DISTINCT ddl)
                     AND count(*) FILTER (WHERE sqlstate IS NOT NULL AND sqlstate <> '55P03') = 0,
           'chart', jsonb_build_object('title', 'Backfill: rows done over time', 'kind', 'line', 'x_label', 'seconds since start', 'y_label', 'rows updated',
               'series', jsonb_build_array(jsonb_build_object('name', 'rows done',
                   'points', (SELECT jsonb_agg(jsonb_build_array(round(extract(epoch FROM b.done_at - j.started_at)::numeric, 3), s.cum) ORDER BY b.batch_no)
                                FROM capstone.backfill_batches b,
                                     LATERAL (SELECT sum(rows) AS cum FROM capstone.backfill_batches b2 WHERE b2.job_id = b.job_id AND b2.batch_no <= b.batch_no) s
                               WHERE b.job_id = j.id)),
                 jsonb_build_object('name', 'lock-timeout retries (cumulative)',
                   'points', (SELECT jsonb_agg(jsonb_build_array(round(extract(epoch FROM b.done_at - j.started_at)::numeric, 3),
                                (SELECT sum(retries) FROM capstone.backfill_batches b2 WHERE b2.job_id = b.job_id AND b2.batch_no <= b.batch_no)) ORDER BY b.batch_no)
                                FROM capstone.backfill_batches b WHERE b.job_id = j.id)))))
    FROM capstone.ddl_attempts a, capstone.backfill_jobs j WHERE j.id = $job AND a.role_name = current_user GROUP BY j.id, j.rows_done, j.batches_done, j.retries"
