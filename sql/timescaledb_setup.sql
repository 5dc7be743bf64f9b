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

-- Full license only: compression of fact_orders' older chunks.
--   * orderby purchased_at DESC, order_id: every reader of old chunks selects by
--     purchase time -- the aggregates' refresh of a touched day and the derived
--     tables (etl/publish/derived.py: purchased_at >= day AND < day + 1, never
--     by customer or product), the raw viewer's newest-first pages -- and the
--     merge's upsert finds its key (order_id, purchased_at) through the batches'
--     min/max purchase time, so a late correction decompresses the batch
--     (up to 1,000 rows) holding that time.
--   * no segmentby: segmenting by order_status (the earlier choice) made a key
--     lookup open one batch per status overlapping that time, and a status
--     change moves the row to another segment; customer_id (one order per
--     customer in Olist) would make one-row segments.
--   * compress after 120 days: in the Olist data 99.9 % of orders are delivered
--     within 86 days of purchase (the latest after 105), so the corrections a
--     daily load brings (status, delivery dates) land in uncompressed chunks;
--     later ones still work, at the cost measured in docs/performance.md.
-- Settings change only while no chunk is compressed (TimescaleDB refuses
-- otherwise); a warehouse with compressed chunks keeps its own.
DO $$
BEGIN
    IF current_setting('timescaledb.license', true) = 'timescale' THEN
        IF NOT EXISTS (SELECT 1 FROM timescaledb_information.chunks
                        WHERE hypertable_name = 'fact_orders' AND is_compressed)
           AND EXISTS (SELECT 1 FROM timescaledb_information.compression_settings
                        WHERE hypertable_name = 'fact_orders' AND segmentby_column_index IS NOT NULL) THEN
            PERFORM remove_compression_policy('fact_orders', if_exists => TRUE);
            EXECUTE 'ALTER TABLE fact_orders SET (timescaledb.compress = false)';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM timescaledb_information.compression_settings
                        WHERE hypertable_name = 'fact_orders') THEN
            EXECUTE 'ALTER TABLE fact_orders SET (timescaledb.compress, '
                    'timescaledb.compress_segmentby = '''', '
                    'timescaledb.compress_orderby = ''purchased_at DESC, order_id'')';
        END IF;
        -- Added once: adding (even if_not_exists) needs a hypertable owner with
        -- LOGIN, and after init the owner is the NOLOGIN etl_writer (sql/roles.sql);
        -- a policy of an earlier version (180 days) is moved to 120 days in place.
        IF NOT EXISTS (SELECT 1 FROM timescaledb_information.jobs
                        WHERE proc_name = 'policy_compression' AND hypertable_name = 'fact_orders') THEN
            PERFORM add_compression_policy('fact_orders', INTERVAL '120 days', if_not_exists => TRUE);
        ELSE
            PERFORM alter_job(job_id, config => jsonb_set(config, '{compress_after}', '"120 days"'))
               FROM timescaledb_information.jobs
              WHERE proc_name = 'policy_compression' AND hypertable_name = 'fact_orders'
                AND config->>'compress_after' IS DISTINCT FROM '120 days';
        END IF;
    END IF;
END $$;
