-- hourly_sales: order lines per UTC hour of purchase. The ONE definition of
-- this aggregate: etl/aggregates.py fills {bucket} (time_bucket with
-- TimescaleDB, date_trunc without) and {where} (empty for the continuous
-- aggregate and the initial build, a purchase-time range for an incremental
-- refresh), so the continuous aggregate and the fallback table cannot drift.
SELECT {bucket}                                         AS bucket,
       count(DISTINCT o.order_id)                       AS orders,
       count(*)                                         AS items,
       sum(i.price_cents)                               AS revenue_cents,
       sum(i.freight_cents)                             AS freight_cents,
       sum(i.price_cents) FILTER (WHERE o.order_status IN ('canceled', 'unavailable'))
                                                        AS canceled_revenue_cents
  FROM fact_orders o
  JOIN fact_order_items i ON i.order_id = o.order_id
 {where}
 GROUP BY 1
