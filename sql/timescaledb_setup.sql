-- Applied by `etl db init` only when the timescaledb extension could be created.
-- Works with the Apache edition (hypertables, chunks); features of the full
-- "timescale" license (compression here, continuous aggregates in
-- etl/aggregates.py) are set up only when `timescaledb.license` says so.
--
-- fact_orders is partitioned on the purchase time in 30-day chunks: about 25
-- chunks for Olist's two years, each small enough to stay in memory while
-- loading. It is the only fact with its own event time; items, payments and
-- reviews are reached through it (order_id) and are small, so they stay plain.
--
-- create_hypertable keeps its default index on the time column
-- (fact_orders_purchased_at_idx, purchased_at DESC) on purpose. The primary key
-- (order_id, purchased_at) cannot serve a time range, and chunk exclusion only
-- narrows one to a 30-day chunk: the aggregates' refresh of one touched day
-- (etl/aggregates.py, purchased_at >= day AND < day + 1) and the raw viewer's
-- newest-first pages (ORDER BY purchased_at DESC LIMIT 50) use it. Measured on
-- a 1M-row hypertable (docs/performance.md, "Loader"): one day 0.8 ms with it,
-- 6.3 ms without (a scan of the whole chunk); a newest-first page 0.3 ms vs
-- 133 ms (a sort of every row). What it costs is maintenance in random time
-- order during loads; the loader's initial load into the empty table builds it
-- after the COPY instead (etl/deferred_indexes.py), merges touch only new or
-- changed rows.
SELECT create_hypertable('fact_orders', by_range('purchased_at', INTERVAL '30 days'),
                         if_not_exists => TRUE, migrate_data => TRUE);

-- Full license only (NOT executable on the Apache build of these machines, so
-- untested here): compress chunks older than 180 days, segmented by status so
-- the dashboards' status filters stay cheap. Late upserts into compressed chunks
-- are supported (TimescaleDB >= 2.11) but slower; the loader still works.
DO $$
BEGIN
    IF current_setting('timescaledb.license', true) = 'timescale' THEN
        IF NOT EXISTS (SELECT 1 FROM timescaledb_information.compression_settings
                        WHERE hypertable_name = 'fact_orders') THEN
            EXECUTE 'ALTER TABLE fact_orders SET (timescaledb.compress, '
                    'timescaledb.compress_segmentby = ''order_status'', '
                    'timescaledb.compress_orderby = ''purchased_at DESC, order_id'')';
        END IF;
        -- Added once: adding (even if_not_exists) needs a hypertable owner with
        -- LOGIN, and after init the owner is the NOLOGIN etl_writer (sql/roles.sql).
        IF NOT EXISTS (SELECT 1 FROM timescaledb_information.jobs
                        WHERE proc_name = 'policy_compression' AND hypertable_name = 'fact_orders') THEN
            PERFORM add_compression_policy('fact_orders', INTERVAL '180 days', if_not_exists => TRUE);
        END IF;
    END IF;
END $$;
