-- The analytics tables the dashboards, Streamlit and BI read (docs/warehouse.md,
-- "Analytics"). Each is kept up to date by etl/publish/derived.py for what a
-- load touched: its refresh statements are sql/analytics/<name>.sql. They read
-- the time-bucketed aggregates (sql/aggregates/, continuous aggregates with the
-- full TimescaleDB license) or, for figures that do not add up over buckets
-- (distinct customers, per product, per order), the facts of the touched keys only.
--
-- Until this version these names were materialized views recomputed whole
-- after every load; drop those so the tables below can take their names (the
-- views that read them are re-created by sql/views/).
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['clv_segments', 'customer_lifetime_value', 'anomaly_records',
                                'category_discount_map', 'region_wise_performance', 'top_products',
                                'sales_monthly_category', 'sales_monthly_state', 'sales_daily_state']
    LOOP
        IF EXISTS (SELECT 1 FROM pg_class WHERE oid = to_regclass(name) AND relkind = 'm') THEN
            EXECUTE format('DROP MATERIALIZED VIEW %I CASCADE', name);
        END IF;
    END LOOP;
END $$;

-- Per São Paulo month x customer state: sales_daily_state rolled up (additive).
-- The dashboards read it for whole-month ranges (dashboard/queries.py).
CREATE TABLE IF NOT EXISTS sales_monthly_state (
    month               DATE NOT NULL,
    customer_state      CHAR(2),
    first_day           DATE NOT NULL,
    last_day            DATE NOT NULL,
    orders              BIGINT NOT NULL,
    items               BIGINT NOT NULL,
    revenue_cents       BIGINT NOT NULL,
    freight_cents       BIGINT NOT NULL,
    delivered_orders    BIGINT NOT NULL,
    delivery_days_sum   NUMERIC NOT NULL,
    late_orders         BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS sales_monthly_state_key ON sales_monthly_state (month, customer_state);

-- Per month x customer state x category: sales_daily_category rolled up.
CREATE TABLE IF NOT EXISTS sales_monthly_category (
    month               DATE NOT NULL,
    customer_state      CHAR(2),
    category            TEXT NOT NULL,
    orders              BIGINT NOT NULL,
    items               BIGINT NOT NULL,
    revenue_cents       BIGINT NOT NULL,
    freight_cents       BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS sales_monthly_category_key
    ON sales_monthly_category (month, customer_state, category);
CREATE INDEX IF NOT EXISTS sales_monthly_category_cat ON sales_monthly_category (category, month);

-- One row per sold order x category: its items' value and count (the input of
-- the anomaly scores and of the category figures). Kept per touched day.
CREATE TABLE IF NOT EXISTS order_category_values (
    purchase_date       DATE NOT NULL,
    month               DATE NOT NULL,
    order_id            CHAR(32) NOT NULL,
    category            TEXT NOT NULL,
    value_cents         BIGINT NOT NULL,
    freight_cents       BIGINT NOT NULL,
    items               BIGINT NOT NULL,
    PRIMARY KEY (order_id, category)
);
CREATE INDEX IF NOT EXISTS order_category_values_day ON order_category_values (purchase_date);
-- anomaly_records reads each category x month's tails through these.
DROP INDEX IF EXISTS order_category_values_group;
CREATE INDEX IF NOT EXISTS order_category_values_value ON order_category_values (month, category, value_cents);
CREATE INDEX IF NOT EXISTS order_category_values_items ON order_category_values (month, category, items);

-- Per category x month: count, sum and sum of squares of the order values and
-- item counts (mean and sample deviation follow; anomaly_records uses them).
CREATE TABLE IF NOT EXISTS anomaly_groups (
    month               DATE NOT NULL,
    category            TEXT NOT NULL,
    peers               BIGINT NOT NULL,
    value_sum           NUMERIC NOT NULL,
    value_sum_squares   NUMERIC NOT NULL,
    items_sum           NUMERIC NOT NULL,
    items_sum_squares   NUMERIC NOT NULL,
    PRIMARY KEY (month, category)
);

-- An order's items of one category in one month whose value or item count lies
-- more than 3 sample standard deviations from its category x month peers' mean.
CREATE TABLE IF NOT EXISTS anomaly_records (
    order_id            CHAR(32) NOT NULL,
    category            TEXT NOT NULL,
    month               DATE NOT NULL,
    value_cents         BIGINT NOT NULL,
    items               BIGINT NOT NULL,
    peers               BIGINT NOT NULL,
    mean_value_cents    NUMERIC,
    z_value             NUMERIC,
    z_items             NUMERIC,
    PRIMARY KEY (order_id, category)
);
CREATE INDEX IF NOT EXISTS anomaly_records_month ON anomaly_records (month);
-- The dashboard lists the strongest anomalies first (dashboard/queries.py: same expression).
CREATE INDEX IF NOT EXISTS anomaly_records_severity
    ON anomaly_records ((greatest(abs(z_value), abs(z_items))) DESC NULLS LAST, order_id);

-- Per local day x category: the order x category pairs' sums, with the
-- payments of those orders (category_discount_map adds them up).
CREATE TABLE IF NOT EXISTS category_discount_daily (
    purchase_date       DATE NOT NULL,
    category            TEXT NOT NULL,
    orders              BIGINT NOT NULL,
    items               BIGINT NOT NULL,
    revenue_cents       BIGINT NOT NULL,
    freight_cents       BIGINT NOT NULL,
    installments_sum    BIGINT,
    installments_orders BIGINT NOT NULL,
    voucher_cents       BIGINT,
    paid_cents          BIGINT,
    PRIMARY KEY (purchase_date, category)
);

-- Per category, all time (small; recomputed from category_discount_daily).
CREATE TABLE IF NOT EXISTS category_discount_map (
    category            TEXT PRIMARY KEY,
    items               BIGINT NOT NULL,
    orders              BIGINT NOT NULL,
    revenue_cents       BIGINT NOT NULL,
    avg_price_cents     NUMERIC,
    freight_ratio       NUMERIC,
    avg_installments    NUMERIC,
    voucher_share       NUMERIC
);

-- One row per sold order with its person, state and payments: kept per touched
-- day, so the people a load touched are the ones of the rows it replaced or
-- added (a reassigned order counts for its old and its new person), and
-- their totals are read here, never by a lookup into the facts by customer.
CREATE TABLE IF NOT EXISTS customer_orders (
    purchase_date       DATE NOT NULL,
    order_id            CHAR(32) PRIMARY KEY,
    customer_unique_id  CHAR(32) NOT NULL,
    customer_state      CHAR(2),
    purchased_at        TIMESTAMPTZ NOT NULL,
    paid_cents          BIGINT
);
CREATE INDEX IF NOT EXISTS customer_orders_day ON customer_orders (purchase_date);
CREATE INDEX IF NOT EXISTS customer_orders_person ON customer_orders (customer_unique_id);

-- Per person (customer_unique_id) with a sold order: kept per touched person.
CREATE TABLE IF NOT EXISTS customer_totals (
    customer_unique_id  CHAR(32) PRIMARY KEY,
    customer_state      CHAR(2),
    orders              BIGINT NOT NULL,
    total_spent_cents   BIGINT NOT NULL,
    first_order_at      TIMESTAMPTZ NOT NULL,
    last_order_at       TIMESTAMPTZ NOT NULL,
    last_order_date     DATE NOT NULL
);
-- The two RFM rankings' orders (ties by person): a boundary's person is found
-- by an offset within one day or one amount, and the people between a
-- boundary's old and new place by a range.
DROP INDEX IF EXISTS customer_totals_last_day;
CREATE INDEX IF NOT EXISTS customer_totals_recency ON customer_totals (last_order_date, customer_unique_id);
CREATE INDEX IF NOT EXISTS customer_totals_monetary ON customer_totals (total_spent_cents, customer_unique_id);

-- How many people have each last-order day and each lifetime spend: the
-- histograms that place the quintile boundaries without reading every person.
CREATE TABLE IF NOT EXISTS rfm_recency_counts (
    last_order_date     DATE PRIMARY KEY,
    customers           BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS rfm_monetary_counts (
    total_spent_cents   BIGINT PRIMARY KEY,
    customers           BIGINT NOT NULL
);
-- The first person of each quintile 2..5 (NULL: the quintile is empty, fewer
-- than 5 people), in the ranking's order: (last_order_date, person) for
-- recency, (total_spent_cents, person) for monetary. A person's score is 1 +
-- the boundaries at or below them (the view rfm_people), so no score is stored:
-- a day moves the boundaries, and with them everyone between their places.
CREATE TABLE IF NOT EXISTS rfm_boundaries (
    score               INTEGER PRIMARY KEY,
    recency_date        DATE,
    recency_customer    CHAR(32),
    monetary_cents      BIGINT,
    monetary_customer   CHAR(32)
);
-- People and spend per segment x last-order day: clv_segments adds them up,
-- churn (more than 90 days before the last day) by day.
CREATE TABLE IF NOT EXISTS clv_cells (
    rfm_segment         TEXT NOT NULL,
    last_order_date     DATE NOT NULL,
    customers           BIGINT NOT NULL,
    total_spent_cents   NUMERIC NOT NULL,
    PRIMARY KEY (rfm_segment, last_order_date)
);

-- The RFM segment of a person's scores: the one definition, read by the
-- refresh (clv_cells) and by customer_lifetime_value.
CREATE OR REPLACE FUNCTION rfm_segment(recency_score integer, orders bigint, monetary_score integer)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
             WHEN recency_score >= 4 AND orders >= 2 AND monetary_score >= 4 THEN 'Champions'
             WHEN orders >= 2 AND recency_score >= 3                         THEN 'Loyal'
             WHEN recency_score >= 4                                         THEN 'New'
             WHEN recency_score = 3                                          THEN 'Promising'
             WHEN orders >= 2 OR monetary_score >= 4                         THEN 'At risk'
             ELSE 'Hibernating'
           END
$$;

-- The states a person bought with (sold orders), and their count per state:
-- region_customers moves by the difference for the touched people only.
CREATE TABLE IF NOT EXISTS customer_states (
    customer_unique_id  CHAR(32) NOT NULL,
    customer_state      CHAR(2) NOT NULL,
    PRIMARY KEY (customer_unique_id, customer_state)
);
CREATE TABLE IF NOT EXISTS region_customers (
    customer_state      CHAR(2) PRIMARY KEY,
    customers           BIGINT NOT NULL
);

-- Per local day x product, sold lines: revenue, units, orders and the day's
-- latest sale (its time, order and category). top_products moves by the
-- difference of the replaced and the added rows.
CREATE TABLE IF NOT EXISTS product_daily (
    purchase_date       DATE NOT NULL,
    product_id          CHAR(32) NOT NULL,
    revenue_cents       BIGINT NOT NULL,
    units               BIGINT NOT NULL,
    orders              BIGINT NOT NULL,
    last_sold_at        TIMESTAMPTZ NOT NULL,
    last_order_id       CHAR(32) NOT NULL,
    last_category       TEXT NOT NULL,
    PRIMARY KEY (purchase_date, product_id)
);
CREATE INDEX IF NOT EXISTS product_daily_latest ON product_daily (product_id, last_sold_at DESC, last_order_id);

-- RFM segment sizes (from clv_cells).
CREATE TABLE IF NOT EXISTS clv_segments (
    rfm_segment         TEXT PRIMARY KEY,
    customers           BIGINT NOT NULL,
    total_spent_cents   BIGINT NOT NULL,
    churned_customers   BIGINT NOT NULL
);

-- Every sold product, all time, ranked by revenue and by units (ties by
-- product_id), with the category of its latest sale. Moved by product_daily's
-- differences; ranks are renumbered each refresh (rows whose rank moved).
CREATE TABLE IF NOT EXISTS top_products (
    product_id          CHAR(32) PRIMARY KEY,
    category            TEXT NOT NULL,
    revenue_cents       BIGINT NOT NULL,
    units               BIGINT NOT NULL,
    orders              BIGINT NOT NULL,
    revenue_rank        BIGINT,
    units_rank          BIGINT,
    last_sold_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS top_products_revenue_rank ON top_products (revenue_rank);
CREATE INDEX IF NOT EXISTS top_products_units_rank ON top_products (units_rank);
CREATE INDEX IF NOT EXISTS top_products_category ON top_products (category, revenue_rank);
