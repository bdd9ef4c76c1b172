-- capstone: grants and comments, applied after every generated function exists.

-- Read-only reports are usable by anyone who can see the schema.
GRANT USAGE ON SCHEMA capstone TO PUBLIC;

COMMENT ON FUNCTION capstone.version() IS
  'capstone''s version, the server version it runs on, and the major version the library was built for.';

-- Starting background workers is not for PUBLIC: grant it deliberately.
REVOKE ALL ON FUNCTION capstone.worker_smoke() FROM PUBLIC;
COMMENT ON FUNCTION capstone.worker_smoke() IS
  'Starts a dynamic background worker in this database as the current role; it writes one row and exits. Returns what the worker saw.';
-- A granted role's worker runs as that role, so it needs to write its proof row.
GRANT SELECT, INSERT ON capstone.worker_smoke_log TO PUBLIC;
GRANT USAGE ON SEQUENCE capstone.worker_token_seq TO PUBLIC;
