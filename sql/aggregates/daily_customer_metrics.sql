-- daily_customer_metrics: orders and customers per local calendar day of
-- purchase (the source time zone, as dim_dates), every status. One definition
-- for both modes; see hourly_sales.sql for the {bucket} / {range} placeholders.
SELECT {bucket}                                         AS bucket,
       count(*)                                         AS orders,
       count(DISTINCT c.customer_unique_id)             AS customers,
       count(*) FILTER (WHERE o.order_status = 'delivered')   AS delivered_orders,
       count(*) FILTER (WHERE o.order_status = 'canceled')    AS canceled_orders,
       avg(EXTRACT(EPOCH FROM (o.delivered_customer_at - o.purchased_at)) / 86400.0)
                                                        AS avg_delivery_days
  FROM fact_orders o
  JOIN dim_customers c ON c.customer_id = o.customer_id
 WHERE TRUE {range}
 GROUP BY 1
