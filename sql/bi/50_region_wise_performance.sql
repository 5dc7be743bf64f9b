-- bi.region_wise_performance over public.region_wise_performance (sql/views/30_products_regions.sql).
CREATE OR REPLACE VIEW bi.region_wise_performance AS
SELECT customer_state, orders, revenue_cents, freight_cents,
       avg_order_value_cents::numeric(14, 2) AS avg_order_value_cents,
       avg_delivery_days::numeric(10, 2)     AS avg_delivery_days,
       late_share::numeric(6, 4)             AS late_share,
       customers
  FROM public.region_wise_performance;
COMMENT ON VIEW bi.region_wise_performance IS
    'Sales per customer state, all time. Key: customer_state. Excludes canceled and unavailable orders. '
    'Totals in integer cents (BRL); averages and shares are exact decimals; do not sum them.';
COMMENT ON COLUMN bi.region_wise_performance.customer_state IS 'Two-letter Brazilian state of the customer.';
COMMENT ON COLUMN bi.region_wise_performance.orders IS 'Sold orders.';
COMMENT ON COLUMN bi.region_wise_performance.revenue_cents IS 'Sum of item prices, integer cents (BRL).';
COMMENT ON COLUMN bi.region_wise_performance.freight_cents IS 'Sum of item freight, integer cents (BRL).';
COMMENT ON COLUMN bi.region_wise_performance.avg_order_value_cents IS 'revenue_cents / orders, cents as an exact decimal with 2 places.';
COMMENT ON COLUMN bi.region_wise_performance.avg_delivery_days IS 'Average purchase-to-delivery time of delivered orders, days.';
COMMENT ON COLUMN bi.region_wise_performance.late_share IS 'Share of delivered orders delivered after the estimated day, 0..1.';
COMMENT ON COLUMN bi.region_wise_performance.customers IS 'Distinct people (customer_unique_id) who bought with an address in the state.';
