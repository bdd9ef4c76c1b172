-- Foundation: the extension installs, knows its versions, and its worker
-- pattern runs in the caller's database as the caller's role.
SET client_min_messages = warning;
DROP ROLE IF EXISTS capstone_golden_nobody;
RESET client_min_messages;
CREATE EXTENSION capstone;

SELECT extension = (SELECT extversion FROM pg_extension WHERE extname = 'capstone') AS version_matches,
       server_major = current_setting('server_version_num')::int / 10000 AS major_matches,
       built_for_major = server_major AS built_for_this_server
  FROM capstone.version();

-- one background worker, same database, same role
SELECT database = current_database() AS same_database,
       role = current_user AS same_role,
       backend_type,
       worker_pid <> pg_backend_pid() AS other_backend
  FROM capstone.worker_smoke();
SELECT count(*) AS proof_rows FROM capstone.worker_smoke_log;

-- settings are range-checked
SET capstone.gap_threshold = 0;
\echo :LAST_ERROR_SQLSTATE
SET capstone.gap_threshold = 25;
SHOW capstone.gap_threshold;

-- starting workers is not granted to PUBLIC
CREATE ROLE capstone_golden_nobody LOGIN;
SET ROLE capstone_golden_nobody;
SELECT * FROM capstone.worker_smoke();
\echo :LAST_ERROR_SQLSTATE
-- reading the version is
SELECT extension IS NOT NULL AS can_read_version FROM capstone.version();
RESET ROLE;
DROP ROLE capstone_golden_nobody;

-- a role granted the function gets a worker that runs as that role, not as a superuser
SET client_min_messages = warning;
DROP ROLE IF EXISTS capstone_golden_operator;
RESET client_min_messages;
CREATE ROLE capstone_golden_operator LOGIN;
GRANT EXECUTE ON FUNCTION capstone.worker_smoke() TO capstone_golden_operator;
SET ROLE capstone_golden_operator;
SELECT role, database = current_database() AS same_database FROM capstone.worker_smoke();
RESET ROLE;
SELECT r.rolsuper AS worker_role_is_superuser
  FROM capstone.worker_smoke_log l JOIN pg_roles r ON r.rolname = l.role
 WHERE l.role = 'capstone_golden_operator';
DROP OWNED BY capstone_golden_operator;
DROP ROLE capstone_golden_operator;
