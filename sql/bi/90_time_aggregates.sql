-- bi.hourly_sales and bi.daily_customer_metrics over the time-bucketed aggregates
-- (sql/aggregates/; continuous aggregates with the full TimescaleDB, tables
-- elsewhere). Unlike the views above these count EVERY order status: the
-- sold figure is given beside the raw one so nobody has to know that.
CREATE OR REPLACE VIEW bi.hourly_sales AS
SELECT bucket                                                        AS hour_start,
       orders::bigint                                                AS orders,
       items::bigint                                                 AS items,
       revenue_cents::bigint                                         AS revenue_cents,
       coalesce(canceled_revenue_cents, 0)::bigint                   AS canceled_revenue_cents,
       (revenue_cents - coalesce(canceled_revenue_cents, 0))::bigint AS sold_revenue_cents,
       freight_cents::bigint                                         AS freight_cents
  FROM public.hourly_sales;
COMMENT ON VIEW bi.hourly_sales IS
    'Order lines per UTC hour of purchase, ALL order statuses. Key: hour_start. '
    'sold_revenue_cents excludes canceled and unavailable orders and matches the other views; '
    'revenue_cents does not. Money in integer cents (BRL).';
COMMENT ON COLUMN bi.hourly_sales.hour_start IS 'Start of the UTC hour, timestamptz.';
COMMENT ON COLUMN bi.hourly_sales.orders IS 'Orders of any status with items in the hour.';
COMMENT ON COLUMN bi.hourly_sales.items IS 'Order items of any status.';
COMMENT ON COLUMN bi.hourly_sales.revenue_cents IS 'Item prices of every status, canceled included, integer cents (BRL).';
COMMENT ON COLUMN bi.hourly_sales.canceled_revenue_cents IS 'Item prices of canceled and unavailable orders.';
COMMENT ON COLUMN bi.hourly_sales.sold_revenue_cents IS 'revenue_cents - canceled_revenue_cents: the sold revenue of the other views.';
COMMENT ON COLUMN bi.hourly_sales.freight_cents IS 'Item freight of every status, integer cents (BRL).';

CREATE OR REPLACE VIEW bi.daily_customer_metrics AS
SELECT bucket                                       AS day_start,
       orders::bigint                               AS orders,
       customers::bigint                            AS customers,
       delivered_orders::bigint                     AS delivered_orders,
       canceled_orders::bigint                      AS canceled_orders,
       round(avg_delivery_days, 2)::numeric(10, 2)  AS avg_delivery_days
  FROM public.daily_customer_metrics;
COMMENT ON VIEW bi.daily_customer_metrics IS
    'Orders and distinct customers per São Paulo calendar day, ALL order statuses. Key: day_start. '
    'customers is not additive across days (a person buying on two days counts on both).';
COMMENT ON COLUMN bi.daily_customer_metrics.day_start IS 'São Paulo midnight starting the day, timestamptz.';
COMMENT ON COLUMN bi.daily_customer_metrics.orders IS 'Orders of any status.';
COMMENT ON COLUMN bi.daily_customer_metrics.customers IS 'Distinct people (customer_unique_id) ordering that day.';
COMMENT ON COLUMN bi.daily_customer_metrics.delivered_orders IS 'Orders with status delivered.';
COMMENT ON COLUMN bi.daily_customer_metrics.canceled_orders IS 'Orders with status canceled.';
COMMENT ON COLUMN bi.daily_customer_metrics.avg_delivery_days IS 'Average purchase-to-delivery days of the delivered ones.';
