-- What each reader may SELECT (applied by `etl db init` after sql/roles.sql; also
-- by a migration the pipeline's own login runs, e.g. the DAG's setup task, which
-- owns what it creates through etl_writer and so may grant it).
-- dashboard_reader: exactly what dashboard/queries.py reads. Relations missing
-- from this warehouse (an older or newer schema) are skipped; the test that
-- serves every page as this role (tests/analytics/test_roles.py) finds gaps.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM dashboard_reader, bi_reader, controls_reader, etl_uploader;
DO $$
DECLARE
    rel text;
BEGIN
    FOREACH rel IN ARRAY ARRAY[
        'sales_daily_state', 'sales_monthly_state', 'sales_monthly_category', 'monthly_sales_summary',
        'top_products', 'region_wise_performance', 'category_discount_map', 'anomaly_records',
        'customer_lifetime_value', 'clv_segments', 'hourly_sales', 'daily_customer_metrics',
        'order_lines', 'quality_overall', 'quarantine_counts', 'pipeline_runs', 'sales_by_source']
    LOOP
        IF to_regclass('public.' || rel) IS NOT NULL THEN
            EXECUTE format('GRANT SELECT ON public.%I TO dashboard_reader', rel);
        END IF;
    END LOOP;
END $$;

-- bi_reader: every view of schema bi (sql/bi/), nothing else.
GRANT SELECT ON ALL TABLES IN SCHEMA bi TO bi_reader;

-- controls_reader (the dashboards' controls pages): the pipeline's own records.
-- etl_uploader (the upload part): the jobs table, and a job's quarantine, audit and scores.
DO $$
DECLARE
    rel text;
BEGIN
    FOREACH rel IN ARRAY ARRAY['quarantine', 'quarantine_run_counts', 'ingest_audit', 'run_events',
                               'quality_scores', 'quality_metrics', 'quality_issues', 'pipeline_runs']
    LOOP
        IF to_regclass('public.' || rel) IS NOT NULL THEN
            EXECUTE format('GRANT SELECT ON public.%I TO controls_reader', rel);
        END IF;
    END LOOP;
    IF to_regclass('public.jobs') IS NOT NULL THEN
        GRANT SELECT, INSERT, UPDATE ON public.jobs TO etl_uploader;
    END IF;
    FOREACH rel IN ARRAY ARRAY['quarantine', 'ingest_audit', 'quality_scores'] LOOP
        IF to_regclass('public.' || rel) IS NOT NULL THEN
            EXECUTE format('GRANT SELECT ON public.%I TO etl_uploader', rel);
        END IF;
    END LOOP;
END $$;
