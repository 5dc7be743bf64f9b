-- top_products: every sold product moved by its difference in product_daily;
-- the category of its latest sale (ORDER BY purchased_at DESC, order_id) read
-- back from product_daily through its index (one probe per touched product);
-- then the ranks (ties by product_id). Each row is written once, and only when
-- something in it changed: the touched products' new figures and every rank a
-- day moved go out in one upsert (three passes over the touched rows before:
-- 1.0-2.6 s of a 1M-item day, docs/performance.md).
CREATE TEMP TABLE etl_top_touched ON COMMIT DROP AS
SELECT p.product_id, x.last_category AS category,
       coalesce(t.revenue_cents, 0) + p.revenue_cents AS revenue_cents,
       coalesce(t.units, 0) + p.units AS units,
       coalesce(t.orders, 0) + p.orders AS orders,
       x.last_sold_at
  FROM etl_touched_products p
  LEFT JOIN top_products t ON t.product_id = p.product_id
  LEFT JOIN LATERAL (SELECT d.last_category, d.last_sold_at FROM product_daily d
                      WHERE d.product_id = p.product_id
                      ORDER BY d.last_sold_at DESC, d.last_order_id LIMIT 1) x ON TRUE;
ANALYZE etl_top_touched;
DELETE FROM top_products t USING etl_top_touched p WHERE t.product_id = p.product_id AND p.units = 0;
INSERT INTO top_products AS t
WITH everyone AS (
    SELECT product_id, category, revenue_cents, units, orders, last_sold_at FROM etl_top_touched WHERE units <> 0
     UNION ALL
    SELECT product_id, category, revenue_cents, units, orders, last_sold_at FROM top_products
     WHERE product_id NOT IN (SELECT product_id FROM etl_top_touched)
), ranked AS (
    SELECT e.*, row_number() OVER (ORDER BY revenue_cents DESC, product_id) AS revenue_rank,
                row_number() OVER (ORDER BY units DESC, product_id)         AS units_rank
      FROM everyone e
)
SELECT r.product_id, r.category, r.revenue_cents, r.units, r.orders, r.revenue_rank, r.units_rank, r.last_sold_at
  FROM ranked r LEFT JOIN top_products o ON o.product_id = r.product_id
 WHERE (o.category, o.revenue_cents, o.units, o.orders, o.revenue_rank, o.units_rank, o.last_sold_at)
       IS DISTINCT FROM (r.category, r.revenue_cents, r.units, r.orders, r.revenue_rank, r.units_rank, r.last_sold_at)
    ON CONFLICT (product_id) DO UPDATE
   SET category = excluded.category, revenue_cents = excluded.revenue_cents, units = excluded.units,
       orders = excluded.orders, revenue_rank = excluded.revenue_rank, units_rank = excluded.units_rank,
       last_sold_at = excluded.last_sold_at;
