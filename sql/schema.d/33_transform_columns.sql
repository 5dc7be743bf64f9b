-- Columns the transform adds to warehouse tables (issue 5; docs/data_quality.md).
-- dq_flags: comma-separated soft rules the row broke (NULL = clean); the row was
-- loaded anyway. *_imputed: a documented imputation filled a missing value.
ALTER TABLE dim_customers    ADD COLUMN IF NOT EXISTS dq_flags TEXT;
ALTER TABLE dim_customers    ADD COLUMN IF NOT EXISTS location_imputed BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE dim_sellers      ADD COLUMN IF NOT EXISTS dq_flags TEXT;
ALTER TABLE dim_sellers      ADD COLUMN IF NOT EXISTS location_imputed BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE dim_products     ADD COLUMN IF NOT EXISTS dq_flags TEXT;
ALTER TABLE dim_products     ADD COLUMN IF NOT EXISTS category_imputed BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE fact_orders      ADD COLUMN IF NOT EXISTS dq_flags TEXT;
ALTER TABLE fact_order_items ADD COLUMN IF NOT EXISTS dq_flags TEXT;
ALTER TABLE fact_payments    ADD COLUMN IF NOT EXISTS dq_flags TEXT;
ALTER TABLE fact_reviews     ADD COLUMN IF NOT EXISTS dq_flags TEXT;
-- Per-order enrichment (etl/transform/shape.py enrich_orders).
ALTER TABLE fact_orders ADD COLUMN IF NOT EXISTS item_count INTEGER;
ALTER TABLE fact_orders ADD COLUMN IF NOT EXISTS items_gross_cents BIGINT;
ALTER TABLE fact_orders ADD COLUMN IF NOT EXISTS freight_total_cents BIGINT;
ALTER TABLE fact_orders ADD COLUMN IF NOT EXISTS payment_total_cents BIGINT;
ALTER TABLE fact_orders ADD COLUMN IF NOT EXISTS delivery_days DOUBLE PRECISION;
ALTER TABLE fact_orders ADD COLUMN IF NOT EXISTS is_late BOOLEAN;
ALTER TABLE fact_orders ADD COLUMN IF NOT EXISTS payment_mismatch BOOLEAN;
