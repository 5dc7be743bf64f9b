-- category_discount_map: Olist has NO discount column. What the data does say
-- about price pressure per category: average item price, freight relative to
-- price, how many instalments buyers split payments into, and the share of the
-- paid value settled with vouchers (Olist's closest thing to a discount).
-- Payment figures are over the orders that contain the category. All time,
-- from the daily sums (a few thousand rows), so recomputed whole.
DELETE FROM category_discount_map;
INSERT INTO category_discount_map
SELECT category,
       sum(items)::bigint,
       sum(orders)::bigint,
       sum(revenue_cents)::bigint,
       round(sum(revenue_cents)::numeric / sum(items), 2),
       round(sum(freight_cents)::numeric / nullif(sum(revenue_cents), 0), 4),
       round(sum(installments_sum)::numeric / nullif(sum(installments_orders), 0), 2),
       round(sum(voucher_cents)::numeric / nullif(sum(paid_cents), 0), 4)
  FROM category_discount_daily
 GROUP BY category;
