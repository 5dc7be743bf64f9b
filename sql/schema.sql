-- Warehouse star schema. Applied by `etl db init`; every statement is
-- idempotent so applying it again is harmless.
--
-- Conventions
--   * money is integer cents (BIGINT, *_cents); the currency is BRL for Olist.
--   * timestamps are TIMESTAMPTZ and stored in UTC (the source is São Paulo time).
--   * natural keys from the source are the primary keys; fact tables include their
--     time column in the key because TimescaleDB hypertables require it.
--   * referential integrity is enforced by the pipeline (orphans are quarantined
--     with category REFERENTIAL_INTEGRITY) rather than by FOREIGN KEYs, so fact
--     tables can be hypertables and COPY stays fast.

CREATE TABLE IF NOT EXISTS dim_dates (
    date_key        INTEGER PRIMARY KEY,          -- yyyymmdd
    full_date       DATE NOT NULL UNIQUE,
    year            SMALLINT NOT NULL,
    quarter         SMALLINT NOT NULL,
    month           SMALLINT NOT NULL,
    month_name      TEXT NOT NULL,
    day_of_month    SMALLINT NOT NULL,
    day_of_week     SMALLINT NOT NULL,            -- ISO: 1 = Monday
    day_name        TEXT NOT NULL,
    week_of_year    SMALLINT NOT NULL,
    is_weekend      BOOLEAN NOT NULL
);

-- Olist's Portuguese category names and their English translation (lookup).
CREATE TABLE IF NOT EXISTS category_translation (
    category_name           TEXT PRIMARY KEY,
    category_name_english   TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS dim_geolocation (
    zip_code_prefix CHAR(5) PRIMARY KEY,
    latitude        DOUBLE PRECISION NOT NULL,    -- mean of the source points
    longitude       DOUBLE PRECISION NOT NULL,
    city            TEXT NOT NULL,                -- most frequent spelling
    state           CHAR(2) NOT NULL,
    source_points   INTEGER NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS dim_customers (
    customer_id         CHAR(32) PRIMARY KEY,
    customer_unique_id  CHAR(32) NOT NULL,
    zip_code_prefix     CHAR(5),
    city                TEXT,
    state               CHAR(2),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dim_customers_unique_id_idx ON dim_customers (customer_unique_id);

CREATE TABLE IF NOT EXISTS dim_products (
    product_id              CHAR(32) PRIMARY KEY,
    category_name           TEXT,
    category_name_english   TEXT,
    name_length             INTEGER,
    description_length      INTEGER,
    photos_qty              INTEGER,
    weight_g                INTEGER,
    length_cm               INTEGER,
    height_cm               INTEGER,
    width_cm                INTEGER,
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS dim_sellers (
    seller_id       CHAR(32) PRIMARY KEY,
    zip_code_prefix CHAR(5),
    city            TEXT,
    state           CHAR(2),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS fact_orders (
    order_id                CHAR(32) NOT NULL,
    customer_id             CHAR(32) NOT NULL,
    order_status            TEXT NOT NULL,
    purchased_at            TIMESTAMPTZ NOT NULL,
    approved_at             TIMESTAMPTZ,
    delivered_carrier_at    TIMESTAMPTZ,
    delivered_customer_at   TIMESTAMPTZ,
    estimated_delivery_at   TIMESTAMPTZ,
    purchase_date_key       INTEGER NOT NULL,
    PRIMARY KEY (order_id, purchased_at)
);
CREATE INDEX IF NOT EXISTS fact_orders_customer_idx ON fact_orders (customer_id);

CREATE TABLE IF NOT EXISTS fact_order_items (
    order_id            CHAR(32) NOT NULL,
    order_item_id       SMALLINT NOT NULL,
    product_id          CHAR(32) NOT NULL,
    seller_id           CHAR(32) NOT NULL,
    shipping_limit_at   TIMESTAMPTZ NOT NULL,
    price_cents         BIGINT NOT NULL,
    freight_cents       BIGINT NOT NULL,
    PRIMARY KEY (order_id, order_item_id)
);
CREATE INDEX IF NOT EXISTS fact_order_items_product_idx ON fact_order_items (product_id);
CREATE INDEX IF NOT EXISTS fact_order_items_seller_idx ON fact_order_items (seller_id);

CREATE TABLE IF NOT EXISTS fact_payments (
    order_id                CHAR(32) NOT NULL,
    payment_sequential      SMALLINT NOT NULL,
    payment_type            TEXT NOT NULL,
    payment_installments    SMALLINT NOT NULL,
    payment_value_cents     BIGINT NOT NULL,
    PRIMARY KEY (order_id, payment_sequential)
);

CREATE TABLE IF NOT EXISTS fact_reviews (
    review_id           CHAR(32) NOT NULL,
    order_id            CHAR(32) NOT NULL,
    review_score        SMALLINT NOT NULL CHECK (review_score BETWEEN 1 AND 5),
    comment_title       TEXT,
    comment_message     TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    answered_at         TIMESTAMPTZ,
    PRIMARY KEY (review_id, order_id)
);
CREATE INDEX IF NOT EXISTS fact_reviews_order_idx ON fact_reviews (order_id);

-- One row per run x table. Written as 'running' before the load transaction
-- starts and closed inside it, so a crash leaves a visible unfinished row and a
-- failure leaves status 'failed' with the error.
CREATE TABLE IF NOT EXISTS ingest_audit (
    audit_id            BIGSERIAL PRIMARY KEY,
    run_id              TEXT NOT NULL,
    source              TEXT NOT NULL,                 -- file (or source name) read
    table_name          TEXT NOT NULL,
    rows_read           BIGINT NOT NULL DEFAULT 0,
    rows_loaded         BIGINT NOT NULL DEFAULT 0,
    rows_quarantined    BIGINT NOT NULL DEFAULT 0,
    started_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at         TIMESTAMPTZ,
    status              TEXT NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'succeeded', 'failed')),
    error               TEXT,
    UNIQUE (run_id, table_name)
);
CREATE INDEX IF NOT EXISTS ingest_audit_started_idx ON ingest_audit (started_at);

-- Every row that could not be loaded, with why, and the record as read.
CREATE TABLE IF NOT EXISTS quarantine (
    quarantine_id   BIGSERIAL PRIMARY KEY,
    run_id          TEXT NOT NULL,
    source_file     TEXT NOT NULL,
    row_number      BIGINT NOT NULL,      -- line in the file as a spreadsheet shows it (header = 1)
    table_name      TEXT NOT NULL,
    category        TEXT NOT NULL CHECK (category IN (
                        'MISSING_REQUIRED_FIELD', 'BUSINESS_RULE_VIOLATION', 'DATA_FORMAT_ERROR',
                        'DATA_QUALITY_ISSUE', 'REFERENTIAL_INTEGRITY', 'DUPLICATE')),
    rule            TEXT NOT NULL,
    detail          TEXT NOT NULL,
    raw_record      JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS quarantine_run_idx ON quarantine (run_id, table_name);
