-- `etl quarantine retry --run R` (issue 5, etl/quarantine.py): a retried row is
-- never deleted; it is marked with the run that retried it and whether that
-- run loaded it. Rows still failing are quarantined again under the retry run.
ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS retried_by_run TEXT;
ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS retry_outcome TEXT;   -- 'loaded' | 'quarantined again'
ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS retried_at TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS quarantine_open_idx ON quarantine (run_id) WHERE retried_by_run IS NULL;
