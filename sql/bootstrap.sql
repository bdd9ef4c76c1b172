-- capstone: objects created before any generated function.
-- Written to be safe to read twice; the extension machinery runs it once.

CREATE SEQUENCE IF NOT EXISTS capstone.worker_token_seq;

-- One row per run of capstone.worker_smoke(): proof of where and as whom the worker ran.
CREATE TABLE IF NOT EXISTS capstone.worker_smoke_log (
    token        bigint PRIMARY KEY,
    pid          integer NOT NULL,
    database     text NOT NULL,
    role         text NOT NULL,
    backend_type text,
    wrote_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE capstone.worker_smoke_log IS
  'Rows written by capstone smoke workers; each names the database and role the worker ran as.';
