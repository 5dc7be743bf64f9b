-- sales_daily_category: items of sold orders per local day x customer state x
-- category (English via category_translation, untranslated ones keep their
-- Portuguese name, none: 'UNKNOWN'; the product version current at purchase,
-- SCD2). orders = orders with at least one item of the category: additive over
-- days (an order has one day), not over categories. sales_monthly_category
-- rolls it up per month.
SELECT {bucket}                                         AS bucket,
       d.full_date                                      AS purchase_date,
       c.state                                          AS customer_state,
       coalesce(t.category_name_english, p.category_name, 'UNKNOWN') AS category,
       count(DISTINCT o.order_id)                       AS orders,
       count(*)                                         AS items,
       sum(i.price_cents)                               AS revenue_cents,
       sum(i.freight_cents)                             AS freight_cents
  FROM fact_orders o
  JOIN fact_order_items i          ON i.order_id = o.order_id
  JOIN dim_customers c             ON c.customer_id = o.customer_id
  JOIN dim_dates d                 ON d.date_key = o.purchase_date_key
  LEFT JOIN dim_products p         ON p.product_key = i.product_key
  LEFT JOIN category_translation t ON t.category_name = p.category_name
 WHERE o.order_status NOT IN ('canceled', 'unavailable') {range}
 GROUP BY 1, 2, 3, 4
