-- bi.category_discount_map over public.category_discount_map (a table recomputed from per-day sums: sql/analytics/).
CREATE OR REPLACE VIEW bi.category_discount_map AS
SELECT category, items, orders, revenue_cents,
       avg_price_cents::numeric(14, 2)  AS avg_price_cents,
       freight_ratio::numeric(10, 4)    AS freight_ratio,
       avg_installments::numeric(6, 2)  AS avg_installments,
       voucher_share::numeric(6, 4)     AS voucher_share
  FROM public.category_discount_map;
COMMENT ON VIEW bi.category_discount_map IS
    'Price pressure per product category, all time (Olist has no discount column; vouchers are the closest). '
    'Key: category. Money in integer cents (BRL); averages and ratios are exact decimals.';
COMMENT ON COLUMN bi.category_discount_map.category IS 'Product category in English.';
COMMENT ON COLUMN bi.category_discount_map.items IS 'Order items of the category.';
COMMENT ON COLUMN bi.category_discount_map.orders IS 'Sold orders containing the category.';
COMMENT ON COLUMN bi.category_discount_map.revenue_cents IS 'Sum of item prices, integer cents (BRL).';
COMMENT ON COLUMN bi.category_discount_map.avg_price_cents IS 'Average item price, cents as an exact decimal with 2 places.';
COMMENT ON COLUMN bi.category_discount_map.freight_ratio IS 'Freight / item prices.';
COMMENT ON COLUMN bi.category_discount_map.avg_installments IS 'Average number of payment instalments of the orders.';
COMMENT ON COLUMN bi.category_discount_map.voucher_share IS 'Share of the paid value settled with vouchers, 0..1.';
