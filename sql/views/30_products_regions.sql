-- top_products (materialized): every sold product with its English category,
-- revenue (item prices), units and orders, ranked by revenue and by units
-- (ties broken by product_id so the order is stable). One row per product even
-- when its category changed (SCD2 history): it shows the category of its latest sale.
CREATE MATERIALIZED VIEW IF NOT EXISTS top_products AS
SELECT product_id,
       (array_agg(category ORDER BY purchased_at DESC, order_id))[1] AS category,
       sum(price_cents)::bigint                   AS revenue_cents,
       count(*)::bigint                           AS units,
       count(DISTINCT order_id)::bigint           AS orders,
       row_number() OVER (ORDER BY sum(price_cents) DESC, product_id) AS revenue_rank,
       row_number() OVER (ORDER BY count(*) DESC, product_id)         AS units_rank
  FROM sales_order_lines
 GROUP BY product_id
WITH DATA;
CREATE UNIQUE INDEX IF NOT EXISTS top_products_key ON top_products (product_id);
CREATE INDEX IF NOT EXISTS top_products_revenue_rank ON top_products (revenue_rank);
CREATE INDEX IF NOT EXISTS top_products_units_rank ON top_products (units_rank);
CREATE INDEX IF NOT EXISTS top_products_category ON top_products (category, revenue_rank);

-- region_wise_performance (materialized): per customer state, all time.
-- customers = distinct customer_unique_id that bought with an address there.
CREATE MATERIALIZED VIEW IF NOT EXISTS region_wise_performance AS
SELECT s.customer_state,
       sum(s.orders)::bigint                                                AS orders,
       sum(s.revenue_cents)::bigint                                         AS revenue_cents,
       sum(s.freight_cents)::bigint                                         AS freight_cents,
       round(sum(s.revenue_cents) / nullif(sum(s.orders), 0), 2)            AS avg_order_value_cents,
       round(sum(s.delivery_days_sum) / nullif(sum(s.delivered_orders), 0), 2) AS avg_delivery_days,
       round(sum(s.late_orders)::numeric / nullif(sum(s.delivered_orders), 0), 4) AS late_share,
       max(cu.customers)::bigint                                            AS customers
  FROM sales_daily_state s
  JOIN (SELECT customer_state, count(DISTINCT customer_unique_id) AS customers
          FROM sales_orders GROUP BY customer_state) cu USING (customer_state)
 GROUP BY s.customer_state
WITH DATA;
CREATE UNIQUE INDEX IF NOT EXISTS region_wise_performance_key ON region_wise_performance (customer_state);

-- category_discount_map (materialized): Olist has NO discount column. What the
-- data does say about price pressure per category: average item price, freight
-- relative to price, how many instalments buyers split payments into, and the
-- share of the paid value settled with vouchers (Olist's closest thing to a
-- discount). Payment figures are over the orders that contain the category.
CREATE MATERIALIZED VIEW IF NOT EXISTS category_discount_map AS
WITH lines AS (
    SELECT category, count(*) AS items, count(DISTINCT order_id) AS orders,
           sum(price_cents) AS revenue_cents, sum(freight_cents) AS freight_cents
      FROM sales_order_lines GROUP BY category
), pay AS (
    SELECT order_id, sum(payment_value_cents) AS paid_cents,
           coalesce(sum(payment_value_cents) FILTER (WHERE payment_type = 'voucher'), 0) AS voucher_cents,
           max(payment_installments) AS installments
      FROM fact_payments GROUP BY order_id
), order_cat AS (
    SELECT DISTINCT order_id, category FROM sales_order_lines
), cat_pay AS (
    SELECT oc.category, avg(p.installments) AS avg_installments,
           sum(p.paid_cents) AS paid_cents, sum(p.voucher_cents) AS voucher_cents
      FROM order_cat oc JOIN pay p USING (order_id) GROUP BY oc.category
)
SELECT l.category,
       l.items::bigint,
       l.orders::bigint,
       l.revenue_cents::bigint,
       round(l.revenue_cents::numeric / l.items, 2)                      AS avg_price_cents,
       round(l.freight_cents::numeric / nullif(l.revenue_cents, 0), 4)   AS freight_ratio,
       round(cp.avg_installments, 2)                                     AS avg_installments,
       round(cp.voucher_cents::numeric / nullif(cp.paid_cents, 0), 4)    AS voucher_share
  FROM lines l LEFT JOIN cat_pay cp USING (category)
WITH DATA;
CREATE UNIQUE INDEX IF NOT EXISTS category_discount_map_key ON category_discount_map (category);
