-- sales_monthly_category: sales_daily_category rolled up to month x state x
-- category for the touched months. orders = orders with at least one item of
-- the category (an order with two categories counts in both).
DELETE FROM sales_monthly_category s USING etl_touched_months m WHERE s.month >= m.lo AND s.month < m.hi;
INSERT INTO sales_monthly_category
SELECT date_trunc('month', s.purchase_date)::date, s.customer_state, s.category,
       sum(s.orders), sum(s.items), sum(s.revenue_cents), sum(s.freight_cents)
  FROM etl_touched_months m
  JOIN sales_daily_category s ON s.purchase_date >= m.lo AND s.purchase_date < m.hi
 GROUP BY 1, 2, 3;
