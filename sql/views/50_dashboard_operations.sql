-- Operational figures the dashboard shows (quality, quarantine, runs), as views
-- so that `etl export` writes them too and the dashboard's fallback (reading
-- the exported files when the warehouse is down) answers every page. Small:
-- one row per run x dimension / run x category x table / run. No raw records.

-- quality_overall: the run-wide score per quality dimension for each run.
CREATE OR REPLACE VIEW quality_overall AS
SELECT run_id, dimension, score, target, rows_checked, rows_failed, computed_at
  FROM quality_scores
 WHERE table_name = '_overall';

-- quarantine_counts: quarantined rows per run, category and table (counts only),
-- kept up to date by triggers on quarantine (sql/schema.d/34_quarantine_counts.sql).
CREATE OR REPLACE VIEW quarantine_counts AS
SELECT run_id, category, table_name, rows
  FROM quarantine_run_counts;

-- pipeline_runs: one row per run from ingest_audit.
CREATE OR REPLACE VIEW pipeline_runs AS
SELECT run_id,
       min(started_at)                                                      AS started_at,
       max(finished_at)                                                     AS finished_at,
       CASE WHEN bool_or(status = 'failed') THEN 'failed'
            WHEN bool_or(status = 'running') THEN 'running'
            ELSE 'succeeded' END                                            AS status,
       count(*)::bigint                                                     AS tables,
       sum(rows_read)::bigint                                               AS rows_read,
       sum(rows_loaded)::bigint                                             AS rows_loaded,
       sum(rows_quarantined)::bigint                                        AS rows_quarantined,
       round(extract(epoch FROM max(finished_at) - min(started_at))::numeric, 1) AS seconds,
       string_agg(DISTINCT error, '; ')                                     AS error
  FROM ingest_audit
 GROUP BY run_id;
