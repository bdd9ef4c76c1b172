-- Everything an installed capstone consists of, in a form that is the same for two
-- databases that hold the same extension: no OIDs, no attnums of dropped columns.
\pset footer off
\pset pager off
SELECT extversion FROM pg_extension WHERE extname = 'capstone';

\echo == member objects
SELECT pg_describe_object(classid, objid, objsubid) AS member
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'capstone') AND deptype = 'e'
 ORDER BY 1;

\echo == functions
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args,
       pg_get_function_result(p.oid) AS result, pg_get_function_arguments(p.oid) AS args_with_defaults,
       p.prokind, p.provolatile, p.proparallel, p.proisstrict, p.prosecdef, p.proleakproof,
       p.procost, p.prorows, p.prosrc, p.probin, p.proconfig, p.proacl,
       obj_description(p.oid, 'pg_proc') AS comment
  FROM pg_proc p WHERE p.pronamespace = 'capstone'::regnamespace
 ORDER BY 1, 2;

\echo == relations
SELECT c.relname, c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity, c.relacl,
       c.reloptions, obj_description(c.oid, 'pg_class') AS comment
  FROM pg_class c WHERE c.relnamespace = 'capstone'::regnamespace
 ORDER BY 1;

\echo == columns (in order)
SELECT c.relname, row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum) AS position, a.attname,
       format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull, a.attidentity, a.attgenerated,
       pg_get_expr(d.adbin, d.adrelid) AS default_expr, a.attacl, col_description(c.oid, a.attnum) AS comment
  FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE c.relnamespace = 'capstone'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
 ORDER BY 1, 2;

\echo == constraints, indexes, policies, triggers
SELECT conrelid::regclass::text AS rel, conname, pg_get_constraintdef(oid) AS def
  FROM pg_constraint WHERE connamespace = 'capstone'::regnamespace ORDER BY 1, 2;
SELECT indexrelid::regclass::text AS index, pg_get_indexdef(indexrelid) AS def
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
 WHERE c.relnamespace = 'capstone'::regnamespace ORDER BY 1;
SELECT polrelid::regclass::text AS rel, polname, polcmd, polpermissive,
       pg_get_expr(polqual, polrelid) AS qual, pg_get_expr(polwithcheck, polrelid) AS with_check,
       ARRAY(SELECT CASE r WHEN 0 THEN 'public' ELSE r::regrole::text END FROM unnest(polroles) r ORDER BY 1) AS roles
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
 WHERE c.relnamespace = 'capstone'::regnamespace ORDER BY 1, 2;
SELECT tgrelid::regclass::text AS rel, tgname, pg_get_triggerdef(t.oid) AS def
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'capstone'::regnamespace AND NOT t.tgisinternal ORDER BY 1, 2;

\echo == types and schema
SELECT t.typname, t.typtype, format_type(t.oid, NULL) AS type
  FROM pg_type t WHERE t.typnamespace = 'capstone'::regnamespace AND t.typrelid = 0 ORDER BY 1;
SELECT nspname, nspacl, obj_description(oid, 'pg_namespace') AS comment
  FROM pg_namespace WHERE nspname = 'capstone';
