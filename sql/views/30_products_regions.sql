-- region_wise_performance: per customer state, all time, from the monthly
-- aggregate; customers = distinct people (customer_unique_id) that bought with
-- an address there (region_customers, kept per touched person).
CREATE OR REPLACE VIEW region_wise_performance AS
SELECT s.customer_state,
       sum(s.orders)::bigint                                                AS orders,
       sum(s.revenue_cents)::bigint                                         AS revenue_cents,
       sum(s.freight_cents)::bigint                                         AS freight_cents,
       round(sum(s.revenue_cents) / nullif(sum(s.orders), 0), 2)            AS avg_order_value_cents,
       round(sum(s.delivery_days_sum) / nullif(sum(s.delivered_orders), 0), 2) AS avg_delivery_days,
       round(sum(s.late_orders)::numeric / nullif(sum(s.delivered_orders), 0), 4) AS late_share,
       max(r.customers)::bigint                                             AS customers
  FROM sales_monthly_state s
  JOIN region_customers r USING (customer_state)
 GROUP BY s.customer_state;
