-- bench/load.sh: capstone.triage(), every probe with its default timeout (500 ms).
-- A probe that fails reports status 'error' in its row instead of raising; under load
-- that is an error all the same, so the script raises it where pgbench counts it.
-- A probe cut short by its timeout (status 'timeout' / 'lock timeout') is triage working
-- as designed: it is only counted, through a NOTICE on pgbench's stderr.
SELECT count(*) FILTER (WHERE status = 'error') AS probe_errors,
       count(*) FILTER (WHERE status NOT IN ('ok', 'error')) AS probe_timeouts
  FROM capstone.triage() \gset
\if :probe_errors > 0
DO $$ BEGIN RAISE EXCEPTION 'capstone.triage(): a probe returned status ''error'' under load'; END $$;
\elif :probe_timeouts > 0
DO $$ BEGIN RAISE NOTICE 'capstone.triage(): a probe timed out under load'; END $$;
\endif
