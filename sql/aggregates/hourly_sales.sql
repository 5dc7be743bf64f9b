-- hourly_sales: order lines per UTC hour of purchase, every status (canceled
-- and unavailable included; canceled_revenue_cents says how much of it they are).
-- One definition for both modes: etl/publish/aggregates.py fills {bucket}
-- (time_bucket with TimescaleDB, date_trunc without) and {range} (empty for the
-- continuous aggregate and a full build, "AND <purchase time in range>" for a
-- bucket refresh), so the continuous aggregate and the fallback table cannot drift.
SELECT {bucket}                                         AS bucket,
       count(DISTINCT o.order_id)                       AS orders,
       count(*)                                         AS items,
       sum(i.price_cents)                               AS revenue_cents,
       sum(i.freight_cents)                             AS freight_cents,
       sum(i.price_cents) FILTER (WHERE o.order_status IN ('canceled', 'unavailable'))
                                                        AS canceled_revenue_cents
  FROM fact_orders o
  JOIN fact_order_items i ON i.order_id = o.order_id
 WHERE TRUE {range}
 GROUP BY 1
