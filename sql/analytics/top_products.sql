-- top_products: every sold product moved by its difference in product_daily;
-- the category of its latest sale (ORDER BY purchased_at DESC, order_id) read
-- back from product_daily through its index (one probe per touched product);
-- then the ranks (ties by product_id), rewriting only the rows whose rank moved.
INSERT INTO top_products AS t (product_id, category, revenue_cents, units, orders, last_sold_at)
SELECT product_id, '', revenue_cents, units, orders, '-infinity' FROM etl_touched_products
    ON CONFLICT (product_id) DO UPDATE
   SET revenue_cents = t.revenue_cents + excluded.revenue_cents,
       units = t.units + excluded.units,
       orders = t.orders + excluded.orders;
DELETE FROM top_products t USING etl_touched_products p WHERE t.product_id = p.product_id AND t.units = 0;
UPDATE top_products t SET category = x.last_category, last_sold_at = x.last_sold_at
  FROM etl_touched_products p
 CROSS JOIN LATERAL (SELECT d.last_category, d.last_sold_at FROM product_daily d
                      WHERE d.product_id = p.product_id
                      ORDER BY d.last_sold_at DESC, d.last_order_id LIMIT 1) x
 WHERE t.product_id = p.product_id
   AND (t.category, t.last_sold_at) IS DISTINCT FROM (x.last_category, x.last_sold_at);
UPDATE top_products t SET revenue_rank = r.revenue_rank, units_rank = r.units_rank
  FROM (SELECT product_id,
               row_number() OVER (ORDER BY revenue_cents DESC, product_id) AS revenue_rank,
               row_number() OVER (ORDER BY units DESC, product_id)         AS units_rank
          FROM top_products) r
 WHERE t.product_id = r.product_id
   AND (t.revenue_rank IS DISTINCT FROM r.revenue_rank OR t.units_rank IS DISTINCT FROM r.units_rank);
