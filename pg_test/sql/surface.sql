-- The surface a psql user sees: settings, comments and column names.
CREATE EXTENSION IF NOT EXISTS capstone CASCADE;
-- the capstone.* prefix is reserved: a misspelt setting is refused, a real one works
SET capstone.gap_treshold = 5;
SET capstone.gap_threshold = 5;
SHOW capstone.gap_threshold;
RESET capstone.gap_threshold;
SELECT name, setting, unit, context FROM pg_settings WHERE name LIKE 'capstone.%' ORDER BY name;
-- every function has a COMMENT ON FUNCTION (\df+ shows it); this lists the ones that do not
SELECT p.oid::regprocedure AS function_without_comment
  FROM pg_proc p
 WHERE p.pronamespace = 'capstone'::regnamespace
   AND obj_description(p.oid, 'pg_proc') IS NULL
 ORDER BY 1::text;
-- and no function is SECURITY DEFINER
SELECT p.oid::regprocedure AS security_definer_function
  FROM pg_proc p
 WHERE p.pronamespace = 'capstone'::regnamespace AND p.prosecdef
 ORDER BY 1::text;
-- every numeric result column whose name carries no unit, per function: each must be a
-- count, a ratio, a share (0..1) or a `value` beside its own `unit` column (reviewed here; a new one
-- shows up as a diff)
SELECT p.proname AS function, a.name AS column_name, format_type(a.typ, NULL) AS type
  FROM pg_proc p,
       unnest(p.proargmodes, p.proargnames, p.proallargtypes) AS a(mode, name, typ)
 WHERE p.pronamespace = 'capstone'::regnamespace
   AND a.mode IN ('t', 'o')
   AND a.typ IN ('float8'::regtype, 'float4'::regtype, 'numeric'::regtype)
   AND a.name !~ '(_ms|_s|_bytes|_pct|_ratio|_per_s|_mb|_kb|q_error|score|_rows|_tps)$'
 ORDER BY 1, 2;
