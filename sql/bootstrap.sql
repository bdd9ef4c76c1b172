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
        'isolation', 'pooling', 'migration', 'sharding', 'bloat', 'triage'))
);
CREATE INDEX IF NOT EXISTS evidence_gate_idx ON capstone.evidence (gate, captured_at);
COMMENT ON TABLE capstone.evidence IS
  'What each gate measured: one row per capture, with the query, the non-default settings, the server version and the raw payload (plan JSON, samples, figures). Rows are visible to the role that captured them (row-level security); superusers see all.';
ALTER TABLE capstone.evidence ENABLE ROW LEVEL SECURITY;
CREATE POLICY evidence_owner ON capstone.evidence
    USING (captured_by = current_user) WITH CHECK (captured_by = current_user);

-- The plan-regression gate's watch list.
CREATE TABLE IF NOT EXISTS capstone.watched_queries (
    name              text PRIMARY KEY,
    sql               text NOT NULL,
    max_q_error       double precision,
    seqscan_allowed   text[] NOT NULL DEFAULT '{}',
    seqscan_min_rows  bigint NOT NULL DEFAULT 10000,
    max_ms            double precision,
    enabled           boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT watched_queries_q_check CHECK (max_q_error IS NULL OR max_q_error >= 1),
    CONSTRAINT watched_queries_ms_check CHECK (max_ms IS NULL OR max_ms > 0),
    CONSTRAINT watched_queries_rows_check CHECK (seqscan_min_rows >= 0)
);
COMMENT ON TABLE capstone.watched_queries IS
  'Queries the plan gate runs: a query fails when it seq-scans a table of more than seqscan_min_rows rows not listed in seqscan_allowed, when a node''s q-error exceeds max_q_error (default capstone.gap_threshold), or when it runs longer than max_ms.';
