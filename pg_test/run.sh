#!/usr/bin/env bash
# Golden SQL tests: each pg_test/sql/NAME.sql runs through psql in a fresh
# database; its output must match pg_test/expected/NAME.out byte for byte
# (or NAME.pgMM.out where a PostgreSQL major prints differently).
#
#   pg_test/run.sh -h HOST -p PORT [-U USER]      psql connection options
# Set CAPSTONE_GOLDEN_ONLY=name to run one test, CAPSTONE_GOLDEN_ACCEPT=1 to
# (re)write expected files from the results after reviewing them.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PSQL=${PSQL:-psql}
CONN=("$@")
# accepting output rewrites what the tests compare against: never in CI, never from test.sh
if [ -n "${CAPSTONE_GOLDEN_ACCEPT:-}" ] && { [ -n "${CI:-}" ] || [ -n "${CAPSTONE_TEST_RUN:-}" ]; }; then
  echo "golden: CAPSTONE_GOLDEN_ACCEPT is refused under CI and under scripts/test.sh; accept by hand, then review the diff" >&2
  exit 2
fi
RESULTS=${CAPSTONE_GOLDEN_RESULTS:-$HERE/results}
mkdir -p "$RESULTS"
chmod 777 "$RESULTS" 2>/dev/null || true

major=$("$PSQL" -X -qtA "${CONN[@]}" -d postgres -c "SELECT current_setting('server_version_num')::int / 10000") || {
  echo "golden: cannot connect with: ${CONN[*]}" >&2; exit 2; }

pass=0; fail=0; failed=()
for sql in "$HERE"/sql/*.sql; do
  name=$(basename "$sql" .sql)
  [ -n "${CAPSTONE_GOLDEN_ONLY:-}" ] && [ "$name" != "$CAPSTONE_GOLDEN_ONLY" ] && continue
  db="capstone_golden_$name"
  "$PSQL" -X -q "${CONN[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
  out="$RESULTS/$name.out"
  # stdin (not -f) keeps file names and line numbers out of error lines
  PGTZ=UTC PGDATESTYLE="ISO, MDY" PGOPTIONS="-c client_min_messages=notice" \
    "$PSQL" -X -a -q "${CONN[@]}" -d "$db" -v ON_ERROR_STOP=0 -v VERBOSITY=default \
      -v SHOW_CONTEXT=never < "$sql" > "$out" 2>&1
  expected="$HERE/expected/$name.pg$major.out"
  [ -f "$expected" ] || expected="$HERE/expected/$name.out"
  if [ -n "${CAPSTONE_GOLDEN_ACCEPT:-}" ]; then
    cp "$out" "$expected"
  fi
  if [ -f "$expected" ] && diff -u "$expected" "$out" > "$RESULTS/$name.diff"; then
    pass=$((pass + 1)); rm -f "$RESULTS/$name.diff"
    echo "golden: ok    $name"
  else
    fail=$((fail + 1)); failed+=("$name")
    echo "golden: FAIL  $name  (diff: $RESULTS/$name.diff)"
    [ -f "$expected" ] || echo "golden: no expected output $HERE/expected/$name.out" > "$RESULTS/$name.diff"
    head -n 40 "$RESULTS/$name.diff" | sed 's/^/    /'
  fi
  "$PSQL" -X -q "${CONN[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
done
echo "golden pg$major: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
