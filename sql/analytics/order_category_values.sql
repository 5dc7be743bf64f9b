-- order_category_values: per touched day, every sold order x category.
DELETE FROM order_category_values v USING etl_touched_days d
 WHERE v.purchase_date >= d.lo AND v.purchase_date < d.hi;
INSERT INTO order_category_values
SELECT l.purchase_date, date_trunc('month', l.purchase_date)::date, l.order_id, l.category,
       sum(l.price_cents), sum(l.freight_cents), count(*)
  FROM etl_touched_lines l
 GROUP BY l.purchase_date, l.order_id, l.category;
