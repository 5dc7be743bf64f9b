-- Applied by `etl db init` only when the timescaledb extension could be created.
-- Works with the Apache edition (hypertables, chunks); features of the full
-- "timescale" license (compression, continuous aggregates) are set up elsewhere
-- and only when `timescaledb.license` says so.
--
-- fact_orders is partitioned on the purchase time in 30-day chunks: about 25
-- chunks for Olist's two years, each small enough to stay in memory while loading.
SELECT create_hypertable('fact_orders', by_range('purchased_at', INTERVAL '30 days'),
                         if_not_exists => TRUE, migrate_data => TRUE);
