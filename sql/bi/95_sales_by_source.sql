-- bi.sales_by_source: sales per source system (lineage) and month, over
-- public.sales_by_source (sql/views/60_sources.sql).
CREATE OR REPLACE VIEW bi.sales_by_source AS
SELECT source_system, month, orders, revenue_cents, freight_cents, first_purchase_at, last_purchase_at
  FROM public.sales_by_source;
COMMENT ON VIEW bi.sales_by_source IS
    'Sold orders per source system and month. Key: (source_system, month). orders, revenue_cents and '
    'freight_cents are additive. Excludes canceled and unavailable orders. Money in integer cents (BRL).';
COMMENT ON COLUMN bi.sales_by_source.source_system IS 'Where the orders came from: olist (the Olist files), shopify, stripe, woocommerce, or a database source''s name.';
COMMENT ON COLUMN bi.sales_by_source.month IS 'First day of the São Paulo calendar month of purchase.';
COMMENT ON COLUMN bi.sales_by_source.orders IS 'Sold orders (status not canceled/unavailable).';
COMMENT ON COLUMN bi.sales_by_source.revenue_cents IS 'Sum of item prices, integer cents (BRL); freight excluded.';
COMMENT ON COLUMN bi.sales_by_source.freight_cents IS 'Sum of item freight, integer cents (BRL).';
COMMENT ON COLUMN bi.sales_by_source.first_purchase_at IS 'Earliest purchase of the month from that source (UTC).';
COMMENT ON COLUMN bi.sales_by_source.last_purchase_at IS 'Latest purchase of the month from that source (UTC).';
