-- The timeline of each run, stage by stage (etl/run/events.py; the dashboards'
-- Audit trail). ingest_audit has one row per run x table (what was loaded);
-- this has one row per stage a run went through -- ingested, transformed,
-- loaded, aggregates refreshed, validated, notified -- with when, how long,
-- its outcome and a small summary. A rerun of a stage adds a row (attempts show).
CREATE TABLE IF NOT EXISTS run_events (
    event_id        BIGSERIAL PRIMARY KEY,
    run_id          TEXT NOT NULL,
    stage           TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ NOT NULL,
    seconds         DOUBLE PRECISION NOT NULL,
    rows            BIGINT,
    detail          JSONB NOT NULL DEFAULT '{}',
    error           TEXT
);
CREATE INDEX IF NOT EXISTS run_events_run_idx ON run_events (run_id, started_at);
