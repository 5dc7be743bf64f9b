-- sales_monthly_state: sales_daily_state rolled up to month x state for the
-- touched months (every column is additive, so the daily and the monthly
-- relation give the same figures).
DELETE FROM sales_monthly_state s USING etl_touched_months m WHERE s.month >= m.lo AND s.month < m.hi;
INSERT INTO sales_monthly_state
SELECT date_trunc('month', s.purchase_date)::date, s.customer_state, min(s.purchase_date), max(s.purchase_date),
       sum(s.orders), sum(s.items), sum(s.revenue_cents), sum(s.freight_cents), sum(s.delivered_orders),
       sum(s.delivery_days_sum), sum(s.late_orders)
  FROM etl_touched_months m
  JOIN sales_daily_state s ON s.purchase_date >= m.lo AND s.purchase_date < m.hi
 GROUP BY 1, 2;
