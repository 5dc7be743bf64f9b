-- Sales per source system and month (BI view; the dashboards' source filter lists
-- its systems). Olist-file rows carry no lineage and count as 'olist'.
-- A plain view over sales_orders: one scan of the orders per query, no refresh.
CREATE OR REPLACE VIEW sales_by_source AS
SELECT source_system,
       date_trunc('month', purchase_date)::date AS month,
       count(*)::bigint                         AS orders,
       sum(revenue_cents)::bigint               AS revenue_cents,
       sum(freight_cents)::bigint               AS freight_cents,
       min(purchased_at)                        AS first_purchase_at,
       max(purchased_at)                        AS last_purchase_at
  FROM sales_orders
 GROUP BY source_system, date_trunc('month', purchase_date);
