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
  'Rows written by capstone smoke workers; each names the database and role the worker ran as. Written only by capstone; each role reads its own.';
ALTER TABLE capstone.worker_smoke_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY worker_smoke_log_owner ON capstone.worker_smoke_log
    USING (role = current_user) WITH CHECK (role = current_user);

-- The evidence store: every gate writes what it measured here. One row per capture.
CREATE TABLE IF NOT EXISTS capstone.evidence (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gate        text NOT NULL,
    label       text,
    query       text,
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    pg_version  text NOT NULL DEFAULT current_setting('server_version'),
    captured_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    captured_by name NOT NULL DEFAULT current_user,
    payload     jsonb NOT NULL,
    CONSTRAINT evidence_gate_check CHECK (gate IN ('health', 'schema', 'index', 'statistics', 'plans',
        'isolation', 'pooling', 'migration', 'sharding', 'bloat', 'triage', 'reliability'))
);
CREATE INDEX IF NOT EXISTS evidence_gate_idx ON capstone.evidence (gate, captured_at);
COMMENT ON TABLE capstone.evidence IS
  'What each gate measured: one row per capture, with the query, the non-default settings, the server version and the raw payload (plan JSON, samples, figures). Written only by capstone''s functions, naming the role that ran them; each role reads its own rows (row-level security), and capstone.report() shows only the reader''s own unless asked for other roles.';
ALTER TABLE capstone.evidence ENABLE ROW LEVEL SECURITY;
CREATE POLICY evidence_owner ON capstone.evidence
    USING (captured_by = current_user) WITH CHECK (captured_by = current_user);

-- The plan-regression gate's watch list.
CREATE TABLE IF NOT EXISTS capstone.watched_queries (
    name              text NOT NULL,
    sql               text NOT NULL,
    max_q_error       double precision,
    seqscan_allowed   text[] NOT NULL DEFAULT '{}',
    seqscan_min_rows  bigint NOT NULL DEFAULT 10000,
    max_ms            double precision,
    enabled           boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    -- the role whose plan gate runs it (added in 0.3.0)
    owner             name NOT NULL DEFAULT current_user,
    CONSTRAINT watched_queries_q_check CHECK (max_q_error IS NULL OR max_q_error >= 1),
    CONSTRAINT watched_queries_ms_check CHECK (max_ms IS NULL OR max_ms > 0),
    CONSTRAINT watched_queries_rows_check CHECK (seqscan_min_rows >= 0),
    CONSTRAINT watched_queries_pkey PRIMARY KEY (owner, name)
);
COMMENT ON TABLE capstone.watched_queries IS
  'Queries the plan gate runs, each for the role that owns it (row-level security: a role sees, adds and changes only its own, and plan_gate runs only the caller''s): a query fails when it seq-scans a table of more than seqscan_min_rows rows not listed in seqscan_allowed, when a node''s q-error exceeds max_q_error (default capstone.gap_threshold), or when it runs longer than max_ms.';
ALTER TABLE capstone.watched_queries ENABLE ROW LEVEL SECURITY;
CREATE POLICY watched_queries_owner ON capstone.watched_queries
    USING (owner = current_user) WITH CHECK (owner = current_user);

-- Migration gate: backfill jobs run by background workers, one row per job and per batch.
CREATE TABLE IF NOT EXISTS capstone.backfill_jobs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    relid           oid NOT NULL,
    relname         text NOT NULL,
    key_columns     text[] NOT NULL,
    set_clause      text NOT NULL,
    where_clause    text,
    batch_size      integer NOT NULL,
    lock_timeout_ms integer NOT NULL,
    pause_ms        integer NOT NULL,
    max_retries     integer NOT NULL,
    state           text NOT NULL DEFAULT 'queued',
    role_oid        oid NOT NULL,
    role_name       name NOT NULL,
    database_oid    oid NOT NULL,
    key_hi          bigint[],
    last_key        bigint[],
    rows_estimate   bigint,
    rows_done       bigint NOT NULL DEFAULT 0,
    batches_done    integer NOT NULL DEFAULT 0,
    retries         integer NOT NULL DEFAULT 0,
    lock_timeouts   integer NOT NULL DEFAULT 0,
    last_error      text,
    worker_pid      integer,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- the submitter's search_path, for the clauses they wrote (added in 0.2.0)
    search_path     text,
    CONSTRAINT backfill_jobs_state_check CHECK (state IN ('queued', 'running', 'paused', 'done', 'cancelled', 'failed'))
);
COMMENT ON TABLE capstone.backfill_jobs IS
  'Backfill jobs: one UPDATE ... SET set_clause over rel in keyset batches, run by a background worker as role_name. last_key and rows_done advance in the same transaction as each batch, so a crash never applies a batch twice or skips one.';
CREATE TABLE IF NOT EXISTS capstone.backfill_batches (
    job_id        bigint NOT NULL REFERENCES capstone.backfill_jobs ON DELETE CASCADE,
    batch_no      integer NOT NULL,
    key_from      bigint[],
    key_to        bigint[],
    rows          integer NOT NULL,
    ms            double precision NOT NULL,
    retries       integer NOT NULL DEFAULT 0,
    lock_timeouts integer NOT NULL DEFAULT 0,
    done_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (job_id, batch_no)
);
COMMENT ON TABLE capstone.backfill_batches IS 'One row per committed backfill batch: key range, rows, time, lock-timeout retries.';
ALTER TABLE capstone.backfill_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY backfill_jobs_owner ON capstone.backfill_jobs
    USING (role_name = current_user) WITH CHECK (role_name = current_user);
ALTER TABLE capstone.backfill_batches ENABLE ROW LEVEL SECURITY;
CREATE POLICY backfill_batches_owner ON capstone.backfill_batches
    USING (EXISTS (SELECT 1 FROM capstone.backfill_jobs j WHERE j.id = job_id))
    WITH CHECK (EXISTS (SELECT 1 FROM capstone.backfill_jobs j WHERE j.id = job_id));

-- safe_ddl attempts, for the runbook's evidence.
CREATE TABLE IF NOT EXISTS capstone.ddl_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ddl         text NOT NULL,
    attempt     integer NOT NULL,
    waited_ms   double precision NOT NULL,
    sqlstate    text,
    error       text,
    role_name   name NOT NULL DEFAULT current_user,
    at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE capstone.ddl_attempts IS
  'Every capstone.safe_ddl attempt: the statement (redacted when it may carry a password or connection string), how long it waited, and its SQLSTATE. Written only by capstone; each role reads its own.';
ALTER TABLE capstone.ddl_attempts ENABLE ROW LEVEL SECURITY;
CREATE POLICY ddl_attempts_owner ON capstone.ddl_attempts
    USING (role_name = current_user) WITH CHECK (role_name = current_user);
