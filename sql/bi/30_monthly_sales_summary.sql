-- bi.monthly_sales_summary over public.monthly_sales_summary (sql/views/20_sales_daily_state.sql).
CREATE OR REPLACE VIEW bi.monthly_sales_summary AS
SELECT month, orders, items, revenue_cents, freight_cents,
       avg_order_value_cents::numeric(14, 2) AS avg_order_value_cents,
       freight_share::numeric(6, 4)          AS freight_share
  FROM public.monthly_sales_summary;
COMMENT ON VIEW bi.monthly_sales_summary IS
    'Sales per São Paulo month, all states. Key: month. Excludes canceled and unavailable orders. '
    'Totals in integer cents (BRL); the average is an exact decimal of cents (2 places); do not sum averages.';
COMMENT ON COLUMN bi.monthly_sales_summary.month IS 'First day of the São Paulo calendar month.';
COMMENT ON COLUMN bi.monthly_sales_summary.orders IS 'Sold orders.';
COMMENT ON COLUMN bi.monthly_sales_summary.items IS 'Order items of those orders.';
COMMENT ON COLUMN bi.monthly_sales_summary.revenue_cents IS 'Sum of item prices, integer cents (BRL).';
COMMENT ON COLUMN bi.monthly_sales_summary.freight_cents IS 'Sum of item freight, integer cents (BRL).';
COMMENT ON COLUMN bi.monthly_sales_summary.avg_order_value_cents IS 'revenue_cents / orders, cents as an exact decimal with 2 places.';
COMMENT ON COLUMN bi.monthly_sales_summary.freight_share IS 'freight / (item prices + freight), 0..1, 4 places.';
