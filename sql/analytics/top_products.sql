-- top_products for the touched products: revenue (item prices), units and
-- orders of sold lines, the category of the latest sale (SCD2 history: a
-- product can change category); then the ranks (ties by product_id),
-- rewriting only the rows whose rank moved.
DELETE FROM top_products p USING etl_touched_products t WHERE p.product_id = t.product_id;
INSERT INTO top_products (product_id, category, revenue_cents, units, orders)
SELECT l.product_id,
       (array_agg(l.category ORDER BY l.purchased_at DESC, l.order_id))[1],
       sum(l.price_cents), count(*), count(DISTINCT l.order_id)
  FROM sales_order_lines l
 WHERE l.product_id IN (SELECT product_id FROM etl_touched_products)
 GROUP BY l.product_id;
UPDATE top_products t SET revenue_rank = r.revenue_rank, units_rank = r.units_rank
  FROM (SELECT product_id,
               row_number() OVER (ORDER BY revenue_cents DESC, product_id) AS revenue_rank,
               row_number() OVER (ORDER BY units DESC, product_id)         AS units_rank
          FROM top_products) r
 WHERE t.product_id = r.product_id
   AND (t.revenue_rank IS DISTINCT FROM r.revenue_rank OR t.units_rank IS DISTINCT FROM r.units_rank);
