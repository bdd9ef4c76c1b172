#!/usr/bin/env bash
# Bad-input sweep: every case of pg_test/sweep/cases.txt runs in its own psql session
# against a fresh database with the lab installed; the SQLSTATE it ends with must be
# the expected one (00000: the call must succeed). Nothing may end in XX000 or crash
# the server, the lab's data must be unchanged afterwards, and no capstone worker,
# prepared transaction, advisory lock or isolation scratch table may be left behind.
#
#   PSQL=/path/to/psql CAPSTONE_SWEEP_LOG=/path/to/server.log \
#     pg_test/sweep.sh -h HOST -p PORT -U postgres
#
# CAPSTONE_SWEEP_CASES picks another case file, CAPSTONE_SWEEP_ONLY=REGEX runs only the
# cases whose SQL matches, CAPSTONE_SWEEP_KEEP=1 keeps the database afterwards.
# CAPSTONE_SWEEP_ROLE=NAME runs every case as NAME instead: a LOGIN role, not a superuser,
# created for the sweep, that owns the lab and the fixtures and holds exactly README's
# grants (EXECUTE on each function PUBLIC may not run); the setup still runs as the user
# given. A case line may give the code it must end in as that role after a slash
# (42710/42501): the role lacks a right the case needs, and the line's comment says which.
# Counts (last line, for grep):
#   cases        case lines run
#   coded        cases that ended in an error with a SQLSTATE other than XX000
#   as expected  cases whose outcome is the expected one
#   XX000        cases that ended in an internal error (always a bug)
#   crashes      cases during which a backend died (connection lost, or the server
#                log says "terminated by signal")
#   mismatched   the rest: a different code, or success where an error was expected
# Exit status 0 only when every case is as expected, no XX000, no crash, the lab
# checksum is unchanged and nothing is left behind; 1 otherwise; 2 when setup fails.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PSQL=${PSQL:-psql}
LOG=${CAPSTONE_SWEEP_LOG:-}
CASES=${CAPSTONE_SWEEP_CASES:-$HERE/sweep/cases.txt}
ONLY=${CAPSTONE_SWEEP_ONLY:-}
DB=capstone_sweep
CONN=("$@")
ROLE=${CAPSTONE_SWEEP_ROLE:-}
CASE_TIMEOUT=180   # seconds a whole case may take (statement_timeout is 60 s)

say() { printf 'sweep: %s\n' "$*"; }
die() { printf 'sweep: %s\n' "$*" >&2; exit 2; }

[ -r "$CASES" ] || die "cannot read the case file $CASES"
if [ -n "$LOG" ] && [ ! -r "$LOG" ]; then
  die "CAPSTONE_SWEEP_LOG=$LOG is not readable"
fi

# psql with the connection options; the caller adds -d and the rest
pq() { "$PSQL" -X -q -v ON_ERROR_STOP=1 "${CONN[@]}" "$@"; }
# one value from the sweep database
val() { pq -d "$DB" -tA -c "$1"; }

log_size() {
  if [ -n "$LOG" ]; then stat -c %s "$LOG"; else echo 0; fi
}
# "terminated by signal" lines the server log gained after byte offset $1
crash_lines() {
  if [ -n "$LOG" ]; then
    tail -c "+$(($1 + 1))" "$LOG" | grep -c 'terminated by signal' || true
  else
    echo 0
  fi
}

# Wait (up to 90 s) until the sweep database accepts connections: after a crash the
# postmaster reinitialises and refuses connections for a while.
wait_ready() {
  local _
  for _ in $(seq 1 90); do
    if pq -d "$DB" -tA -c 'SELECT 1' >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  return 1
}

# --------------------------------------------------------------------------- setup
pq -d postgres -tA -c 'SELECT 1' >/dev/null 2>&1 || die "cannot connect with: ${CONN[*]}"
pq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
  -c "CREATE DATABASE $DB" >/dev/null \
  || die "cannot create database $DB"

setup_sql=$(cat <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION capstone CASCADE;
CREATE EXTENSION dblink;
CREATE EXTENSION pgstattuple;
CREATE EXTENSION pg_stat_statements;
SELECT count(*) FROM capstone.lab_install(scale => 0.01, seed => 42, anchor => '2026-06-01 00:00+00');

CREATE SCHEMA sweep;
CREATE VIEW sweep.v_orders AS SELECT * FROM shop.orders;
CREATE SEQUENCE sweep.s;
CREATE TABLE sweep.no_key (a int);
INSERT INTO sweep.no_key SELECT g FROM generate_series(1, 100) g;
CREATE TABLE sweep.parted (id int NOT NULL, k int) PARTITION BY RANGE (id);
CREATE TABLE sweep.parted_1 PARTITION OF sweep.parted FOR VALUES FROM (0) TO (1000);
ALTER TABLE sweep.parted ADD PRIMARY KEY (id);
INSERT INTO sweep.parted SELECT g, g FROM generate_series(1, 100) g;
CREATE MATERIALIZED VIEW sweep.mv AS SELECT g AS x FROM generate_series(1, 100) g;
CREATE TYPE sweep.ct AS (a int);
CREATE TABLE sweep.hashy (id int PRIMARY KEY, v int);
INSERT INTO sweep.hashy SELECT g, g % 7 FROM generate_series(1, 1000) g;
CREATE INDEX hashy_v_hash ON sweep.hashy USING hash (v);
CREATE TABLE sweep.empty (id int PRIMARY KEY, v int);
CREATE TABLE sweep.bf (id int PRIMARY KEY, v int);
INSERT INTO sweep.bf SELECT g, g FROM generate_series(1, 10) g;
CREATE TABLE sweep.allgen (id int GENERATED ALWAYS AS IDENTITY);
INSERT INTO sweep.allgen DEFAULT VALUES;
CREATE TABLE sweep.nocols ();
INSERT INTO sweep.nocols SELECT FROM generate_series(1, 100);
CREATE TABLE sweep."we""ird; DROP TABLE shop.orders; --" ("id"" ; DROP TABLE shop.orders; --" int PRIMARY KEY, v int);
CREATE TABLE sweep.gone (id int PRIMARY KEY);
CREATE TABLE sweep.dropped_oid AS SELECT 'sweep.gone'::regclass::oid AS o;
DROP TABLE sweep.gone;
ANALYZE sweep.no_key, sweep.parted, sweep.hashy, sweep.nocols;
INSERT INTO capstone.backfill_jobs (relid, relname, key_columns, set_clause, batch_size, lock_timeout_ms,
                                    pause_ms, max_retries, state, role_oid, role_name, database_oid)
SELECT 'sweep.empty'::regclass, 'sweep.empty', '{id}', 'v = v', 1000, 500, 0, 10, s,
       current_user::regrole::oid, current_user, (SELECT oid FROM pg_database WHERE datname = current_database())
  FROM unnest(ARRAY['done', 'cancelled']) s;
SQL
)
printf '%s\n' "$setup_sql" | pq -d "$DB" >/dev/null || die "setup of $DB failed"

# the granted role: owns what the cases work on, holds README's grants and nothing more
CASE_CONN=("${CONN[@]}")
if [ -n "$ROLE" ]; then
  pq -d "$DB" -v role="$ROLE" >/dev/null <<'SQL' || die "cannot set up the granted role $ROLE"
SET client_min_messages = warning;
DROP ROLE IF EXISTS :"role";
CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
GRANT CONNECT, TEMPORARY ON DATABASE :"DBNAME" TO :"role";
-- the application's schemas are the role's: it owns them and every object in them
SELECT format('ALTER SCHEMA %I OWNER TO %I', nspname, :'role') FROM pg_namespace
 WHERE nspname IN ('shop', 'sweep') \gexec
SELECT format('ALTER %s %s OWNER TO %I',
              CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                             ELSE 'TABLE' END, c.oid::regclass, :'role')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('shop', 'sweep') AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND d.deptype IN ('a', 'i') AND d.refobjid <> c.oid)
 ORDER BY c.relkind <> 'p', c.oid \gexec
SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, :'role')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname IN ('shop', 'sweep') \gexec
SELECT format('ALTER TYPE %s OWNER TO %I', t.oid::regtype, :'role')
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname IN ('shop', 'sweep') AND t.typtype IN ('c', 'e', 'd') AND t.typrelid = 0 \gexec
-- README, "Grants": EXECUTE on every function PUBLIC may not run
SELECT format('GRANT EXECUTE ON FUNCTION %s TO %I', p.oid::regprocedure, :'role')
  FROM pg_proc p
 WHERE p.pronamespace = 'capstone'::regnamespace
   AND NOT has_function_privilege('public', p.oid, 'EXECUTE') \gexec
-- the fixture jobs are the role's
UPDATE capstone.backfill_jobs SET role_oid = :'role'::regrole::oid, role_name = :'role';
SQL
  CASE_CONN=("${CONN[@]}")
  for ((i = 0; i < ${#CASE_CONN[@]}; i++)); do
    if [ "${CASE_CONN[$i]}" = -U ]; then CASE_CONN[$((i + 1))]=$ROLE; fi
  done
  case " ${CASE_CONN[*]} " in *" -U "*) ;; *) CASE_CONN+=(-U "$ROLE") ;; esac
  super=$("$PSQL" -X -qtA "${CASE_CONN[@]}" -d "$DB" -c "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user") \
    || die "cannot connect as $ROLE"
  [ "$super" = f ] || die "$ROLE bypasses row-level security; the granted-role sweep needs an ordinary role"
  say "cases run as $ROLE: owns schemas shop and sweep, EXECUTE on $(val "SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'capstone'::regnamespace AND has_function_privilege('$ROLE', p.oid, 'EXECUTE') AND NOT has_function_privilege('public', p.oid, 'EXECUTE')") granted functions"
fi

# md5 per lab table over its rows in primary-key order, then one md5 over those
digest_parts=$(val "
  SELECT string_agg(format('SELECT %L AS tbl, md5(coalesce(string_agg(t::text, E''\\n'' ORDER BY %s), '''')) AS h FROM %I.%I t',
                           c.relname, coalesce(k.cols, 't::text'), n.nspname, c.relname),
                    ' UNION ALL ' ORDER BY c.relname)
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN LATERAL (
      SELECT string_agg(format('t.%I', a.attname), ', ' ORDER BY x.ord) AS cols
        FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY x(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = x.attnum
       WHERE i.indrelid = c.oid AND i.indisprimary) k ON true
   WHERE n.nspname = 'shop' AND c.relkind = 'r'") || die "cannot build the lab checksum"
[ -n "$digest_parts" ] || die "the lab has no tables"
checksum() { val "SELECT md5(string_agg(tbl || '=' || h, ',' ORDER BY tbl)) FROM ($digest_parts) s"; }
sum_before=$(checksum) || die "cannot compute the lab checksum"
log_start=$(log_size)
say "database $DB ready, lab checksum $sum_before, server log offset $log_start"

# --------------------------------------------------------------------------- cases
total=0 coded=0 expected_ok=0 internal=0 crashes=0 mismatched=0
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
  lineno=$((lineno + 1))
  case "$line" in '' | '#'*) continue ;; esac
  want=${line%%$'\t'*}
  sql=${line#*$'\t'}
  # CODE or CODE/CODE_AS_THE_GRANTED_ROLE
  if [[ $want =~ ^([0-9A-Z]{5})/([0-9A-Z]{5})$ ]]; then
    if [ -n "$ROLE" ]; then want=${BASH_REMATCH[2]}; else want=${BASH_REMATCH[1]}; fi
  fi
  if [ "$want" = "$line" ] || ! [[ $want =~ ^[0-9A-Z]{5}$ ]]; then
    say "line $lineno: malformed case (want CODE<TAB>SQL)"
    total=$((total + 1)); mismatched=$((mismatched + 1))
    continue
  fi
  if [ -n "$ONLY" ] && ! [[ $sql =~ $ONLY ]]; then continue; fi
  total=$((total + 1))
  case "$sql" in *';') ;; *) sql="$sql;" ;; esac

  before=$(crash_lines "$log_start")
  rc=0
  out=$(printf '%s\n' "$sql" \
        | PGOPTIONS="-c statement_timeout=60s -c client_min_messages=error" \
          timeout -k 10 "$CASE_TIMEOUT" "$PSQL" -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose \
            "${CASE_CONN[@]}" -d "$DB" -o /dev/null 2>&1 >/dev/null) || rc=$?
  after=$(crash_lines "$log_start")

  err=$(grep -m1 -E '^(psql:[^ ]*: )?(ERROR|FATAL|PANIC): ' <<<"$out" || true)
  msg=$(sed -E 's/^(psql:[^ ]*: )?(ERROR|FATAL|PANIC): +//' <<<"$err")
  got=
  if [[ $msg =~ ^([0-9A-Z]{5}):\ ?(.*)$ ]]; then
    got=${BASH_REMATCH[1]}; msg=${BASH_REMATCH[2]}
  fi
  crashed=0
  if [ "$after" -gt "$before" ] \
     || grep -qE 'server closed the connection unexpectedly|connection to server was lost|terminating connection because of crash' <<<"$out"; then
    crashed=1
  fi

  if [ "$crashed" = 1 ]; then
    crashes=$((crashes + 1)); got=CRASH
    msg=$(grep -m1 -E 'server closed|terminated by signal|connection to server' <<<"$out" || echo "server log: terminated by signal")
    wait_ready || die "the server did not come back after a crash (line $lineno)"
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    got=HANG; msg="no answer within $CASE_TIMEOUT s"
    mismatched=$((mismatched + 1))
  elif [ -n "$got" ]; then
    if [ "$got" = XX000 ]; then internal=$((internal + 1)); else coded=$((coded + 1)); fi
  elif [ "$rc" = 0 ]; then
    got=00000
  else
    got=NOCODE; msg=$out
  fi

  if [ "$got" = "$want" ]; then
    expected_ok=$((expected_ok + 1))
  else
    case "$got" in
      CRASH | XX000 | HANG) ;;
      *) mismatched=$((mismatched + 1)) ;;
    esac
    short=$sql
    [ "${#short}" -le 160 ] || short="${short:0:160}..."
    msg=${msg%%$'\n'*}
    msg=${msg:0:200}
    printf 'sweep: FAIL line %d: expected %s, got %s%s | %s\n' \
      "$lineno" "$want" "$got" "${msg:+ ($msg)}" "$short"
  fi
done < "$CASES"

# --------------------------------------------------------------------------- after
problems=0
wait_ready || die "the sweep database does not answer after the cases"
sum_after=$(checksum) || { sum_after="(failed)"; }
if [ "$sum_after" != "$sum_before" ]; then
  say "lab checksum changed: $sum_before -> $sum_after"
  problems=$((problems + 1))
fi
# workers started by cases (the launcher and its periodic recovery workers are infrastructure)
left=1
for _ in $(seq 1 20); do
  left=$(val "SELECT count(*) FROM pg_stat_activity
               WHERE backend_type LIKE 'capstone%'
                 AND backend_type NOT IN ('capstone launcher', 'capstone recovery')")
  [ "$left" = 0 ] && break
  sleep 0.5
done
if [ "$left" != 0 ]; then
  say "$left capstone worker(s) still running 10 s after the sweep:"
  val "SELECT pid, backend_type, state, left(query, 80) FROM pg_stat_activity
        WHERE backend_type LIKE 'capstone%' AND backend_type NOT IN ('capstone launcher', 'capstone recovery')" | sed 's/^/    /'
  problems=$((problems + 1))
fi
prepared=$(val "SELECT count(*) FROM pg_prepared_xacts")
if [ "$prepared" != 0 ]; then
  say "$prepared prepared transaction(s) left behind"; problems=$((problems + 1))
fi
scratch=$(val "SELECT count(*) FROM pg_tables WHERE schemaname = 'capstone_scratch' AND tablename ~ '^isolation_[0-9]+$'")
if [ "$scratch" != 0 ]; then
  say "$scratch isolation scratch table(s) left behind"; problems=$((problems + 1))
fi
advisory=$(val "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
if [ "$advisory" != 0 ]; then
  say "$advisory advisory lock(s) still held"; problems=$((problems + 1))
fi
late=$(crash_lines "$log_start")
if [ "$late" -gt "$crashes" ]; then
  say "the server log shows $late backend crash(es) since the sweep started"
  crashes=$late
fi

if [ -z "${CAPSTONE_SWEEP_KEEP:-}" ]; then
  pq -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || say "could not drop $DB"
  if [ -n "$ROLE" ]; then
    printf 'SET client_min_messages = warning;\nDROP ROLE IF EXISTS :"role";\n' \
      | pq -d postgres -v role="$ROLE" >/dev/null 2>&1 || say "could not drop role $ROLE"
  fi
fi

say "$total cases${ROLE:+ as $ROLE}, $coded coded, $expected_ok as expected, $internal XX000, $crashes crashes, $mismatched mismatched"
if [ "$expected_ok" = "$total" ] && [ "$internal" = 0 ] && [ "$crashes" = 0 ] && [ "$problems" = 0 ]; then
  exit 0
fi
exit 1
