-- Ingestion state and vendor lineage (etl/ingest, docs/sources.md). Idempotent.
--
-- Watermarks and loaded files are written only after the load transaction of
-- the run that read them has committed (etl.ingest.state.commit), so a crash
-- in between makes the next run read the same data again -- never skip it.

-- Incremental cursor per source x entity: the highest cursor value loaded, and
-- the ids seen at exactly that value (the next read asks ">= cursor" and drops
-- those ids, so records sharing the boundary second are neither lost nor doubled).
CREATE TABLE IF NOT EXISTS ingest_watermarks (
    source          TEXT NOT NULL,
    entity          TEXT NOT NULL,
    cursor_value    TEXT NOT NULL,
    ids_at_cursor   JSONB NOT NULL DEFAULT '[]',
    run_id          TEXT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source, entity)
);

-- Files already loaded, by name and checksum: a daily run skips a file whose
-- name and sha256 are both here (a changed file is read again).
CREATE TABLE IF NOT EXISTS ingest_files (
    source          TEXT NOT NULL,
    file_name       TEXT NOT NULL,
    sha256          CHAR(64) NOT NULL,
    bytes           BIGINT NOT NULL,
    run_id          TEXT NOT NULL,
    loaded_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source, file_name, sha256)
);

-- Vendor lineage on the tables vendor records land in. Vendor ids are mapped to
-- the warehouse's 32-hex ids as md5('<system>:<entity>:<vendor id>'); the
-- vendor's own id, system and currency are kept here (NULL for Olist rows).
ALTER TABLE dim_customers    ADD COLUMN IF NOT EXISTS source_system TEXT;
ALTER TABLE dim_customers    ADD COLUMN IF NOT EXISTS source_id TEXT;
ALTER TABLE dim_products     ADD COLUMN IF NOT EXISTS source_system TEXT;
ALTER TABLE dim_products     ADD COLUMN IF NOT EXISTS source_id TEXT;
ALTER TABLE dim_sellers      ADD COLUMN IF NOT EXISTS source_system TEXT;
ALTER TABLE dim_sellers      ADD COLUMN IF NOT EXISTS source_id TEXT;
ALTER TABLE fact_orders      ADD COLUMN IF NOT EXISTS source_system TEXT;
ALTER TABLE fact_orders      ADD COLUMN IF NOT EXISTS source_id TEXT;
ALTER TABLE fact_orders      ADD COLUMN IF NOT EXISTS currency CHAR(3);
ALTER TABLE fact_order_items ADD COLUMN IF NOT EXISTS source_system TEXT;
ALTER TABLE fact_order_items ADD COLUMN IF NOT EXISTS source_id TEXT;
ALTER TABLE fact_order_items ADD COLUMN IF NOT EXISTS currency CHAR(3);
ALTER TABLE fact_payments    ADD COLUMN IF NOT EXISTS source_system TEXT;
ALTER TABLE fact_payments    ADD COLUMN IF NOT EXISTS source_id TEXT;
ALTER TABLE fact_payments    ADD COLUMN IF NOT EXISTS currency CHAR(3);
