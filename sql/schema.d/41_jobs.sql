-- Uploaded files followed to the warehouse (etl/jobs, docs/jobs.md). A job is
-- queued by the dashboard's upload part, taken by `etl jobs worker` with
-- FOR UPDATE SKIP LOCKED (or run as an Airflow DAG run), and keeps its outcome:
-- counts from ingest_audit, the overall quality score, the error line.
CREATE TABLE IF NOT EXISTS jobs (
    job_id              TEXT PRIMARY KEY,
    status              TEXT NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    upload_name         TEXT NOT NULL,
    bytes               BIGINT NOT NULL,
    sha256              CHAR(64) NOT NULL,
    tables              TEXT[] NOT NULL,
    run_id              TEXT NOT NULL UNIQUE,
    executor            TEXT NOT NULL DEFAULT 'worker' CHECK (executor IN ('worker', 'airflow')),
    airflow_dag_run_id  TEXT,
    worker              TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    rows_read           BIGINT,
    rows_loaded         BIGINT,
    rows_quarantined    BIGINT,
    quality_overall     NUMERIC(5, 2),
    error               TEXT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at          TIMESTAMPTZ,
    finished_at         TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS jobs_queued_idx ON jobs (created_at) WHERE status = 'queued';
