-- bi.top_products over public.top_products (a table kept per touched product: sql/schema.d/40_analytics.sql, sql/analytics/).
CREATE OR REPLACE VIEW bi.top_products AS
SELECT product_id, category, revenue_cents, units, orders, revenue_rank, units_rank
  FROM public.top_products;
COMMENT ON VIEW bi.top_products IS
    'Every sold product, all time, ranked by revenue and by units. Key: product_id. '
    'Top ten by revenue: WHERE revenue_rank <= 10. Money in integer cents (BRL).';
COMMENT ON COLUMN bi.top_products.product_id IS 'Olist product id (32 hex characters).';
COMMENT ON COLUMN bi.top_products.category IS 'English category of the product''s latest sale.';
COMMENT ON COLUMN bi.top_products.revenue_cents IS 'Sum of item prices, integer cents (BRL).';
COMMENT ON COLUMN bi.top_products.units IS 'Order items sold.';
COMMENT ON COLUMN bi.top_products.orders IS 'Sold orders containing the product.';
COMMENT ON COLUMN bi.top_products.revenue_rank IS '1 = highest revenue; ties broken by product_id.';
COMMENT ON COLUMN bi.top_products.units_rank IS '1 = most units; ties broken by product_id.';
