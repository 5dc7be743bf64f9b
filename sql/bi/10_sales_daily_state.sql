-- bi.sales_daily_state: the finest sales grain BI gets. A thin, named layer over
-- public.sales_daily_state (sql/views/20_sales_daily_state.sql); repoint the FROM
-- when the analytics relations change, keep the columns and comments.
CREATE OR REPLACE VIEW bi.sales_daily_state AS
SELECT purchase_date, customer_state, orders, items, revenue_cents, freight_cents,
       delivered_orders, round(delivery_days_sum, 4)::numeric(18, 4) AS delivery_days_sum, late_orders
  FROM public.sales_daily_state;
COMMENT ON VIEW bi.sales_daily_state IS
    'Sales per São Paulo calendar day x customer state. Key: (purchase_date, customer_state). '
    'Every column is additive: sum freely over days and states. Excludes canceled and unavailable orders. '
    'Money in integer cents (BRL).';
COMMENT ON COLUMN bi.sales_daily_state.purchase_date IS 'Day of purchase in the shop''s time zone (America/Sao_Paulo).';
COMMENT ON COLUMN bi.sales_daily_state.customer_state IS 'Two-letter Brazilian state of the customer''s address (e.g. SP).';
COMMENT ON COLUMN bi.sales_daily_state.orders IS 'Sold orders (status not canceled/unavailable).';
COMMENT ON COLUMN bi.sales_daily_state.items IS 'Order items of those orders.';
COMMENT ON COLUMN bi.sales_daily_state.revenue_cents IS 'Sum of item prices, integer cents (BRL); freight excluded.';
COMMENT ON COLUMN bi.sales_daily_state.freight_cents IS 'Sum of item freight, integer cents (BRL).';
COMMENT ON COLUMN bi.sales_daily_state.delivered_orders IS 'Orders with a delivery date.';
COMMENT ON COLUMN bi.sales_daily_state.delivery_days_sum IS 'Sum of purchase-to-delivery times in days; average = delivery_days_sum / delivered_orders.';
COMMENT ON COLUMN bi.sales_daily_state.late_orders IS 'Orders delivered on a later São Paulo day than estimated.';
