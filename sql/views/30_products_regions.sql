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
-- One pass over the order lines (order x category), joined once to the
-- payments: the aggregates ignore the NULLs of orders without payments, so
-- they equal an inner join's for the payment figures (two passes over the
-- lines cost 112 s of a 10M-item refresh; docs/performance.md).
CREATE MATERIALIZED VIEW IF NOT EXISTS category_discount_map AS
WITH order_category AS (
    SELECT order_id, category, count(*) AS items,
           sum(price_cents) AS revenue_cents, sum(freight_cents) AS freight_cents
      FROM sales_order_lines GROUP BY order_id, category
), pay AS (
    SELECT order_id, sum(payment_value_cents) AS paid_cents,
           coalesce(sum(payment_value_cents) FILTER (WHERE payment_type = 'voucher'), 0) AS voucher_cents,
           max(payment_installments) AS installments
      FROM fact_payments GROUP BY order_id
)
SELECT oc.category,
       sum(oc.items)::bigint                                                      AS items,
       count(*)::bigint                                                           AS orders,
       sum(oc.revenue_cents)::bigint                                              AS revenue_cents,
       round(sum(oc.revenue_cents)::numeric / sum(oc.items), 2)                   AS avg_price_cents,
       round(sum(oc.freight_cents)::numeric / nullif(sum(oc.revenue_cents), 0), 4) AS freight_ratio,
       round(avg(p.installments), 2)                                              AS avg_installments,
       round(sum(p.voucher_cents)::numeric / nullif(sum(p.paid_cents), 0), 4)     AS voucher_share
  FROM order_category oc LEFT JOIN pay p USING (order_id)
 GROUP BY oc.category
WITH DATA;
CREATE UNIQUE INDEX IF NOT EXISTS category_discount_map_key ON category_discount_map (category);
