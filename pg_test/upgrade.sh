#!/usr/bin/env bash
# The upgrade path: every released version of capstone updates to the current one with
# ALTER EXTENSION capstone UPDATE, keeps its data, and ends up with exactly the objects a
# fresh install has; and no released script was ever edited.
#
#   pg_test/upgrade.sh PG_CONFIG -h HOST -p PORT [-U USER]
# Released scripts: sql/released/capstone--V.sql (each version's install script, frozen
# when it landed) and sql/capstone--A--B.sql (the upgrade scripts, installed by
# cargo pgrx install). sql/released/SHA256SUMS pins their content.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
CFG=$1; shift
CONN=("$@")
PSQL=("$("$CFG" --bindir)/psql" -X -q -v ON_ERROR_STOP=1 "${CONN[@]}")
EXTDIR=$("$CFG" --sharedir)/extension
OUT=${CAPSTONE_UPGRADE_RESULTS:-$HERE/results/upgrade}
mkdir -p "$OUT"
pass=0; fail=0
ok() { echo "upgrade: ok    $*"; pass=$((pass + 1)); }
bad() { echo "upgrade: FAIL  $*"; fail=$((fail + 1)); }

# 1. released scripts are immutable: their checksums, and (with git history) no commit
#    ever modified one after it was added
if (cd "$ROOT" && sha256sum --quiet -c sql/released/SHA256SUMS); then
  ok "released scripts match sql/released/SHA256SUMS ($(wc -l < "$ROOT/sql/released/SHA256SUMS") files)"
else
  bad "a released script differs from sql/released/SHA256SUMS: released scripts are never edited; add a new upgrade script instead"
fi
listed=$(awk '{ print $2 }' "$ROOT/sql/released/SHA256SUMS")
current=$(sed -nE 's/^version = "([^"]+)"/\1/p' "$ROOT/Cargo.toml" | head -n1)
for f in "$ROOT"/sql/released/capstone--*.sql "$ROOT"/sql/capstone--*--*.sql; do
  [ -f "$f" ] || continue
  rel=${f#"$ROOT"/}
  grep -qx "$rel" <<< "$listed" && continue
  # only the script into the version being built may still change; it is pinned on release
  if [[ "$rel" == *"--$current.sql" ]]; then ok "$rel leads to the version being built ($current): pinned when it is released"
  else bad "$rel is not pinned in sql/released/SHA256SUMS"; fi
done
if git -C "$ROOT" rev-parse --git-dir > /dev/null 2>&1 && [ "$(git -C "$ROOT" rev-parse --is-shallow-repository)" = false ]; then
  edited=""
  for rel in $listed; do
    # released = pinned: edits before the commit that pinned the file are its development
    pinned_at=$(git -C "$ROOT" log --format=%H -S"$rel" -- sql/released/SHA256SUMS | tail -n1)
    m=$(git -C "$ROOT" log --format=%h --diff-filter=MR ${pinned_at:+"$pinned_at"..HEAD} -- "$rel")
    [ -z "$m" ] || edited="$edited $rel (commit $m)"
  done
  if [ -z "$edited" ]; then ok "git history: no released script was modified after it was added"
  else bad "released scripts were edited:$edited"; fi
fi

# 2. the frozen install scripts go next to the current one
for f in "$ROOT"/sql/released/capstone--*.sql; do
  [ -f "$f" ] && cp "$f" "$EXTDIR/"
done
for f in "$ROOT"/sql/released/capstone--*.sql; do
  [ -f "$f" ] || continue
  from=$(basename "$f" .sql); from=${from#capstone--}
  [ "$from" = "$current" ] && continue
  a="capstone_upgrade_from_${from//./_}"; b=capstone_upgrade_fresh
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $a" -c "DROP DATABASE IF EXISTS $b" -c "CREATE DATABASE $a" -c "CREATE DATABASE $b" > /dev/null
  # the old version, with some state in it
  if ! "${PSQL[@]}" -d "$a" > "$OUT/setup-$from.log" 2>&1 <<SQL
CREATE EXTENSION capstone VERSION '$from' CASCADE;
INSERT INTO capstone.evidence (gate, label, payload) VALUES ('plans', 'kept across the upgrade', '{"summary": "x"}');
INSERT INTO capstone.watched_queries (name, sql) VALUES ('kept', 'SELECT 1');
SQL
  then bad "$from: CREATE EXTENSION capstone VERSION '$from' failed: $(tail -n 3 "$OUT/setup-$from.log")"; continue; fi
  # from 0.2.0 on (what users have): a finished backfill job and a plan capture made through
  # capstone's own functions before the update, used again after it
  stateful=0
  if [ "$from" != 0.1.0 ]; then
    if "${PSQL[@]}" -d "$a" > "$OUT/setup-state-$from.log" 2>&1 <<'SQL'
CREATE TABLE up_t (id bigint PRIMARY KEY, v int);
INSERT INTO up_t SELECT g, 0 FROM generate_series(1, 5000) g;
ANALYZE up_t;
SELECT capstone.backfill_start('up_t', 'v = 1', batch_size => 1000) AS job \gset
DO $$ BEGIN
  FOR i IN 1..300 LOOP
    EXIT WHEN (SELECT state FROM capstone.backfill_jobs ORDER BY id DESC LIMIT 1) = 'done';
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT state = 'done' AND rows_done = 5000 AS done_before FROM capstone.backfill_status(:job) \gset
\if :done_before
\else
  \echo job did not finish under the old version
  SELECT 1/0;
\endif
SELECT evidence_id AS id FROM capstone.explain('SELECT * FROM up_t WHERE id = 42', 'kept plan') \gset
SQL
    then stateful=1; ok "$from: a backfill job ran to done and a plan was captured under $from"
    else bad "$from: could not create state under $from: $(tail -n 3 "$OUT/setup-state-$from.log")"; fi
  fi
  path=$("${PSQL[@]}" -d "$a" -tA -c "SELECT path FROM pg_extension_update_paths('capstone') WHERE source = '$from' AND target = '$current'")
  if [ -n "$path" ]; then ok "$from: update path to $current: $path"; else bad "$from: no update path to $current"; continue; fi
  if "${PSQL[@]}" -d "$a" -c "ALTER EXTENSION capstone UPDATE" > "$OUT/update-$from.log" 2>&1; then
    ok "$from: ALTER EXTENSION capstone UPDATE → $("${PSQL[@]}" -d "$a" -tA -c "SELECT extversion FROM pg_extension WHERE extname = 'capstone'")"
  else
    bad "$from: ALTER EXTENSION capstone UPDATE failed: $(tail -n 3 "$OUT/update-$from.log")"; continue
  fi
  kept=$("${PSQL[@]}" -d "$a" -tA -c "SELECT (SELECT count(*) FROM capstone.evidence WHERE label = 'kept across the upgrade') + (SELECT count(*) FROM capstone.watched_queries WHERE name = 'kept')")
  [ "$kept" = 2 ] && ok "$from: rows written before the update are still there" || bad "$from: rows lost in the update ($kept of 2 found)"
  if [ "$stateful" = 1 ]; then
    if "${PSQL[@]}" -d "$a" > "$OUT/use-state-$from.log" 2>&1 <<'SQL'
-- the old job is still the owner's, done, with its batches
SELECT (state = 'done' AND rows_done = 5000) AS old_job_ok FROM capstone.backfill_status()
 ORDER BY job LIMIT 1 \gset
SELECT count(*) = 5 AS old_batches_ok FROM capstone.backfill_batches \gset
-- the old capture is the owner's evidence and diffs against a new one
SELECT id AS old_id FROM capstone.evidence WHERE label = 'kept plan' \gset
SELECT evidence_id AS new_id FROM capstone.explain('SELECT * FROM up_t WHERE id = 43', 'new plan') \gset
SELECT count(*) > 0 AS diff_ok FROM capstone.explain_diff(:old_id, :new_id) \gset
SELECT position('kept across the upgrade' IN capstone.report()) > 0 AS report_ok \gset
-- the old watch list is the updater's, and its gate runs it
SELECT count(*) = 1 AS gate_ok FROM capstone.plan_gate() WHERE name = 'kept' \gset
-- a new job after the update runs to done
SELECT capstone.backfill_start('up_t', 'v = 2', batch_size => 1000) AS job2 \gset
DO $$ BEGIN
  FOR i IN 1..300 LOOP
    EXIT WHEN (SELECT state FROM capstone.backfill_jobs ORDER BY id DESC LIMIT 1) = 'done';
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT (state = 'done' AND rows_done = 5000) AS new_job_ok FROM capstone.backfill_status(:job2) \gset
SELECT count(*) = 5000 AS rows_ok FROM up_t WHERE v = 2 \gset
\echo old_job=:old_job_ok old_batches=:old_batches_ok diff=:diff_ok report=:report_ok gate=:gate_ok new_job=:new_job_ok rows=:rows_ok
SQL
    then
      line=$(grep '^old_job=' "$OUT/use-state-$from.log")
      if [ "$line" = "old_job=t old_batches=t diff=t report=t gate=t new_job=t rows=t" ]; then
        ok "$from: after the update the old job, batches, capture and watched query are used, and a new job runs to done"
      else bad "$from: state from $from not usable after the update: $line"; fi
    else bad "$from: using state from $from after the update failed: $(tail -n 3 "$OUT/use-state-$from.log")"; fi
  fi
  "${PSQL[@]}" -d "$b" -c "CREATE EXTENSION capstone CASCADE" > /dev/null
  "${PSQL[@]}" -d "$a" -f "$HERE/upgrade/catalog.sql" > "$OUT/catalog-updated-from-$from.txt" 2>&1
  "${PSQL[@]}" -d "$b" -f "$HERE/upgrade/catalog.sql" > "$OUT/catalog-fresh.txt" 2>&1
  "${PSQL[@]}" -d "$a" -c '\dx+ capstone' > "$OUT/dx-updated-from-$from.txt" 2>&1
  "${PSQL[@]}" -d "$b" -c '\dx+ capstone' > "$OUT/dx-fresh.txt" 2>&1
  if diff -u "$OUT/catalog-fresh.txt" "$OUT/catalog-updated-from-$from.txt" > "$OUT/catalog-$from.diff" \
     && diff -u "$OUT/dx-fresh.txt" "$OUT/dx-updated-from-$from.txt" >> "$OUT/catalog-$from.diff"; then
    ok "$from: updated catalog and \\dx+ match a fresh $current install ($(grep -c . "$OUT/catalog-fresh.txt") lines compared)"
  else
    bad "$from: updated objects differ from a fresh install ($OUT/catalog-$from.diff)"
    head -n 40 "$OUT/catalog-$from.diff" | sed 's/^/    /'
  fi
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $a" -c "DROP DATABASE IF EXISTS $b" > /dev/null
done
echo "upgrade: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
