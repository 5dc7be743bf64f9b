-- Detail behind quality_scores (issue 5, etl/quality.py; docs/data_quality.md).
--
-- quality_metrics: per run x table, the shares that have a ceiling rather than
-- a floor (null_pct: null cells of the counted columns; duplicate_pct: rows
-- whose natural key repeats). table_name '_overall' pools all tables.
CREATE TABLE IF NOT EXISTS quality_metrics (
    run_id          TEXT NOT NULL,
    table_name      TEXT NOT NULL,
    metric          TEXT NOT NULL CHECK (metric IN ('null_pct', 'duplicate_pct')),
    value           NUMERIC(5, 2) NOT NULL CHECK (value BETWEEN 0 AND 100),
    limit_value     NUMERIC(5, 2),
    units_checked   BIGINT NOT NULL DEFAULT 0,
    units_failed    BIGINT NOT NULL DEFAULT 0,
    computed_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, table_name, metric)
);

-- quality_issues: every failed check of every row, hard (the row is in
-- quarantine) or soft (the row was loaded with the rule in its dq_flags).
-- For a run, table and dimension other than completeness,
--   count(DISTINCT row_number) = quality_scores.rows_failed;
-- for completeness (cells), count(*) = rows_failed.
CREATE TABLE IF NOT EXISTS quality_issues (
    run_id          TEXT NOT NULL,
    table_name      TEXT NOT NULL,
    source_file     TEXT NOT NULL,
    row_number      BIGINT NOT NULL,      -- as in quarantine: header = 1
    dimension       TEXT NOT NULL,
    rule            TEXT NOT NULL,
    category        TEXT NOT NULL,
    hard            BOOLEAN NOT NULL,     -- true: the row was quarantined
    detail          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS quality_issues_run_idx ON quality_issues (run_id, table_name, dimension);
