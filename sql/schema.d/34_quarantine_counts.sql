-- Quarantined rows per run x category x table, kept by statement-level triggers
-- in the same transaction as the quarantine rows themselves. The dashboards'
-- quality page and /api/quarantine read these few rows (view quarantine_counts)
-- instead of counting the whole quarantine table on every request: 38 ms at
-- 150,000 quarantined rows, and the table only grows (docs/performance.md).
-- Triggers with transition tables fire once per statement (COPY included), so a
-- run's quarantine COPY pays one grouped upsert, not one per row.
DO $$
BEGIN
    IF to_regclass('quarantine_run_counts') IS NULL THEN
        -- First init with this file: count what is there, with writers held off
        -- until the triggers below exist (same transaction), so nothing is missed.
        LOCK TABLE quarantine IN SHARE ROW EXCLUSIVE MODE;
        CREATE TABLE quarantine_run_counts (
            run_id      TEXT NOT NULL,
            category    TEXT NOT NULL,
            table_name  TEXT NOT NULL,
            rows        BIGINT NOT NULL,
            PRIMARY KEY (run_id, category, table_name)
        );
        INSERT INTO quarantine_run_counts
        SELECT run_id, category, table_name, count(*) FROM quarantine GROUP BY 1, 2, 3;
    END IF;
END $$;

-- Each statement's change, grouped by run x category x table. An UPDATE that
-- leaves those alone (as `etl quarantine retry` does) nets to nothing and writes
-- nothing. (PostgreSQL allows no column list on a trigger with transition tables.)
CREATE OR REPLACE FUNCTION quarantine_run_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM quarantine_run_counts;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO quarantine_run_counts AS c (run_id, category, table_name, rows)
        SELECT run_id, category, table_name, count(*) FROM new_rows GROUP BY 1, 2, 3
        ON CONFLICT (run_id, category, table_name) DO UPDATE SET rows = c.rows + EXCLUDED.rows;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE quarantine_run_counts AS c SET rows = c.rows - o.n
          FROM (SELECT run_id, category, table_name, count(*) AS n FROM old_rows GROUP BY 1, 2, 3) o
         WHERE (c.run_id, c.category, c.table_name) = (o.run_id, o.category, o.table_name);
        DELETE FROM quarantine_run_counts WHERE rows = 0;
    ELSE  -- UPDATE: only groups whose count changed
        INSERT INTO quarantine_run_counts AS c (run_id, category, table_name, rows)
        SELECT run_id, category, table_name, sum(n)
          FROM (SELECT run_id, category, table_name, 1 AS n FROM new_rows
                UNION ALL
                SELECT run_id, category, table_name, -1 FROM old_rows) d
         GROUP BY 1, 2, 3 HAVING sum(n) <> 0
        ON CONFLICT (run_id, category, table_name) DO UPDATE SET rows = c.rows + EXCLUDED.rows;
        DELETE FROM quarantine_run_counts WHERE rows = 0;
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS quarantine_run_counts_insert ON quarantine;
CREATE TRIGGER quarantine_run_counts_insert AFTER INSERT ON quarantine
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION quarantine_run_counts_apply();
DROP TRIGGER IF EXISTS quarantine_run_counts_update ON quarantine;
CREATE TRIGGER quarantine_run_counts_update AFTER UPDATE ON quarantine
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION quarantine_run_counts_apply();
DROP TRIGGER IF EXISTS quarantine_run_counts_delete ON quarantine;
CREATE TRIGGER quarantine_run_counts_delete AFTER DELETE ON quarantine
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION quarantine_run_counts_apply();
DROP TRIGGER IF EXISTS quarantine_run_counts_truncate ON quarantine;
CREATE TRIGGER quarantine_run_counts_truncate AFTER TRUNCATE ON quarantine
    FOR EACH STATEMENT EXECUTE FUNCTION quarantine_run_counts_apply();
