-- sales_daily_state: São Paulo day x customer state, sold orders (status
-- neither 'canceled' nor 'unavailable'). The grain the dashboards filter on
-- (date range, state); everything in it is additive. A plain view joining the
-- two time-bucketed aggregates (sql/aggregates/sales_daily_orders.sql and
-- sales_daily_items.sql: continuous aggregates with the full TimescaleDB
-- license, bucket-refreshed tables otherwise).
--   revenue_cents = item prices; freight_cents = item freight (separate).
--   delivered_orders / delivery_days_sum: orders with a delivery date, and the
--   sum of their purchase-to-delivery times in days (average = sum / count).
--   late_orders: delivered on a later São Paulo day than the estimated one.
CREATE OR REPLACE VIEW sales_daily_state AS
SELECT o.purchase_date,
       o.customer_state,
       o.orders::bigint                        AS orders,
       coalesce(i.items, 0)::bigint            AS items,
       coalesce(i.revenue_cents, 0)::bigint    AS revenue_cents,
       coalesce(i.freight_cents, 0)::bigint    AS freight_cents,
       o.delivered_orders::bigint              AS delivered_orders,
       o.delivery_days_sum::numeric            AS delivery_days_sum,
       o.late_orders::bigint                   AS late_orders
  FROM sales_daily_orders o
  LEFT JOIN sales_daily_items i
         ON i.purchase_date = o.purchase_date
        AND coalesce(i.customer_state, '') = coalesce(o.customer_state, '');

-- monthly_sales_summary: per São Paulo month. Average order value is revenue
-- (item prices) per order; freight share is freight / (prices + freight).
CREATE OR REPLACE VIEW monthly_sales_summary AS
SELECT month,
       sum(orders)::bigint                                                   AS orders,
       sum(items)::bigint                                                    AS items,
       sum(revenue_cents)::bigint                                            AS revenue_cents,
       sum(freight_cents)::bigint                                            AS freight_cents,
       round(sum(revenue_cents) / nullif(sum(orders), 0), 2)                 AS avg_order_value_cents,
       round(sum(freight_cents) / nullif(sum(revenue_cents + freight_cents), 0), 4) AS freight_share
  FROM sales_monthly_state
 GROUP BY 1;
