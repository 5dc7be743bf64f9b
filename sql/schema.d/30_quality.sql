-- Quality scores per run x table x dimension, so dashboards can trend them.
-- table_name '_overall' holds the run-wide scores; dimension 'overall' the
-- weighted score of a table. Scores are 0-100 (share of checked rows or cells
-- that pass); rows_checked/rows_failed say what the share was taken over.
CREATE TABLE IF NOT EXISTS quality_scores (
    run_id          TEXT NOT NULL,
    table_name      TEXT NOT NULL,
    dimension       TEXT NOT NULL CHECK (dimension IN (
                        'completeness', 'validity', 'consistency', 'timeliness', 'uniqueness',
                        'accuracy', 'conformity', 'integrity', 'overall')),
    score           NUMERIC(5, 2) NOT NULL CHECK (score BETWEEN 0 AND 100),
    rows_checked    BIGINT NOT NULL DEFAULT 0,
    rows_failed     BIGINT NOT NULL DEFAULT 0,
    target          NUMERIC(5, 2),
    computed_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, table_name, dimension)
);
