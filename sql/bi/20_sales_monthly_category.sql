-- bi.sales_monthly_category over public.sales_monthly_category (a table kept per touched month: sql/schema.d/40_analytics.sql, sql/analytics/).
CREATE OR REPLACE VIEW bi.sales_monthly_category AS
SELECT month, customer_state, category, orders, items, revenue_cents, freight_cents
  FROM public.sales_monthly_category;
COMMENT ON VIEW bi.sales_monthly_category IS
    'Sales per São Paulo month x customer state x product category. Key: (month, customer_state, category). '
    'items, revenue_cents, freight_cents are additive; orders is NOT additive across categories '
    '(an order with two categories counts in both). Money in integer cents (BRL).';
COMMENT ON COLUMN bi.sales_monthly_category.month IS 'First day of the São Paulo calendar month.';
COMMENT ON COLUMN bi.sales_monthly_category.customer_state IS 'Two-letter Brazilian state of the customer.';
COMMENT ON COLUMN bi.sales_monthly_category.category IS 'Product category in English (Portuguese when untranslated, UNKNOWN when missing).';
COMMENT ON COLUMN bi.sales_monthly_category.orders IS 'Sold orders with at least one item of the category.';
COMMENT ON COLUMN bi.sales_monthly_category.items IS 'Order items of the category.';
COMMENT ON COLUMN bi.sales_monthly_category.revenue_cents IS 'Sum of item prices, integer cents (BRL).';
COMMENT ON COLUMN bi.sales_monthly_category.freight_cents IS 'Sum of item freight, integer cents (BRL).';
