-- sales_daily_items: the items of sold orders per local day of purchase x
-- customer state (revenue = item prices, freight separate): the item-level
-- half of sales_daily_state.
SELECT {bucket}                                         AS bucket,
       d.full_date                                      AS purchase_date,
       c.state                                          AS customer_state,
       count(*)                                         AS items,
       sum(i.price_cents)                               AS revenue_cents,
       sum(i.freight_cents)                             AS freight_cents
  FROM fact_orders o
  JOIN fact_order_items i ON i.order_id = o.order_id
  JOIN dim_customers c    ON c.customer_id = o.customer_id
  JOIN dim_dates d        ON d.date_key = o.purchase_date_key
 WHERE o.order_status NOT IN ('canceled', 'unavailable') {range}
 GROUP BY 1, 2, 3
