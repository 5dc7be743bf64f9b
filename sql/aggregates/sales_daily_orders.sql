-- sales_daily_orders: sold orders (status neither 'canceled' nor 'unavailable')
-- per local day of purchase x customer state: the order-level half of
-- sales_daily_state (sql/views/20_sales.sql joins it with sales_daily_items).
-- Split from the items because delivery figures are per order and a join with
-- the items would count an order once per item.
--   delivered_orders / delivery_days_sum: orders with a delivery date and the
--   sum of their purchase-to-delivery times in days (average = sum / count).
--   late_orders: delivered on a later São Paulo day than the estimated one.
SELECT {bucket}                                         AS bucket,
       d.full_date                                      AS purchase_date,
       c.state                                          AS customer_state,
       count(*)                                         AS orders,
       count(o.delivered_customer_at)                   AS delivered_orders,
       coalesce(sum(EXTRACT(EPOCH FROM o.delivered_customer_at - o.purchased_at)) / 86400, 0)
                                                        AS delivery_days_sum,
       count(*) FILTER (
         WHERE (o.delivered_customer_at AT TIME ZONE 'America/Sao_Paulo')::date
             > (o.estimated_delivery_at AT TIME ZONE 'America/Sao_Paulo')::date)
                                                        AS late_orders
  FROM fact_orders o
  JOIN dim_customers c ON c.customer_id = o.customer_id
  JOIN dim_dates d     ON d.date_key = o.purchase_date_key
 WHERE o.order_status NOT IN ('canceled', 'unavailable') {range}
 GROUP BY 1, 2, 3
