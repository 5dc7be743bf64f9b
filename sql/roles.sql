-- Roles (applied by `etl db init` after the schema, the aggregates and the views).
--   etl_writer: the loader. Reads and writes every warehouse table, creates temp
--               staging tables. Grant it to the login the pipeline/Airflow uses.
--   bi_reader:  dashboards and BI. SELECT on dimensions, facts, the aggregates and
--               the analytical views; nothing else (no quarantine: its raw_record
--               holds source rows as received; no audit internals; no writes).
--   etl_uploader: the dashboard's upload part (DASHBOARD_JOBS=1): queues jobs and
--               reads them back -- jobs, and reading a job's quarantine, audit rows
--               and scores; nothing else. The worker runs as the pipeline's login.
--   controls_reader: the dashboards' controls pages (Exceptions, Audit trail,
--               Controls, Record results): SELECT on the pipeline's own records,
--               raw records included. Grant it, beside bi_reader, only to the
--               logins of people who may see source rows as received.
-- All are NOLOGIN group roles: GRANT them to real logins
-- (e.g. CREATE ROLE metabase LOGIN PASSWORD '...' IN ROLE bi_reader).
-- Roles are cluster-wide; grants are per database, so this runs in each warehouse.
DO $$
BEGIN
    CREATE ROLE etl_writer NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;   -- exists (or created concurrently)
END $$;
DO $$
BEGIN
    CREATE ROLE bi_reader NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

DO $$
BEGIN
    CREATE ROLE etl_uploader NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
DO $$
BEGIN
    CREATE ROLE controls_reader NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

GRANT USAGE, CREATE ON SCHEMA public TO etl_writer;
GRANT USAGE ON SCHEMA public TO bi_reader;
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO etl_writer', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO bi_reader', current_database());
END $$;

GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO etl_writer;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO etl_writer;

-- bi_reader: exactly the star schema, the aggregates and the views over them.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM bi_reader;
DO $$
DECLARE
    rel record;
BEGIN
    FOR rel IN
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public'
           AND (   (c.relkind IN ('r', 'p') AND (c.relname LIKE 'dim\_%' OR c.relname LIKE 'fact\_%'
                                                 OR c.relname IN ('category_translation', 'hourly_sales',
                                                                  'daily_customer_metrics')))
                OR (c.relkind IN ('v', 'm') AND c.relname NOT LIKE '%quarantine%'))
    LOOP
        EXECUTE format('GRANT SELECT ON %I TO bi_reader', rel.relname);
    END LOOP;
END $$;

-- controls_reader: the pipeline's records (quarantine with raw records, audit, quality detail).
GRANT USAGE ON SCHEMA public TO controls_reader;
DO $$
DECLARE
    rel text;
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO controls_reader', current_database());
    FOREACH rel IN ARRAY ARRAY['quarantine', 'quarantine_run_counts', 'ingest_audit', 'run_events',
                               'quality_scores', 'quality_metrics', 'quality_issues', 'pipeline_runs']
    LOOP
        IF to_regclass(rel) IS NOT NULL THEN
            EXECUTE format('GRANT SELECT ON %I TO controls_reader', rel);
        END IF;
    END LOOP;
END $$;

-- etl_uploader: the jobs table only (and the quarantine of a job's run for its page).
GRANT USAGE ON SCHEMA public TO etl_uploader;
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO etl_uploader', current_database());
    IF to_regclass('jobs') IS NOT NULL THEN
        -- UPDATE: an Airflow job's status is read back from its DAG run by the dashboard
        GRANT SELECT, INSERT, UPDATE ON jobs TO etl_uploader;
    END IF;
    IF to_regclass('quarantine') IS NOT NULL THEN
        GRANT SELECT ON quarantine, ingest_audit, quality_scores TO etl_uploader;
    END IF;
END $$;
