-- product_daily for the touched days, and the difference it makes per product
-- (etl_product_delta: the replaced rows negated, the added rows as they are).
CREATE TEMP TABLE etl_product_delta (
    product_id CHAR(32), revenue_cents BIGINT, units BIGINT, orders BIGINT
) ON COMMIT DROP;
WITH gone AS (
    DELETE FROM product_daily p USING etl_touched_days d
     WHERE p.purchase_date >= d.lo AND p.purchase_date < d.hi
    RETURNING p.product_id, p.revenue_cents, p.units, p.orders
)
INSERT INTO etl_product_delta SELECT product_id, -revenue_cents, -units, -orders FROM gone;
WITH added AS (
    INSERT INTO product_daily
    SELECT l.purchase_date, l.product_id, sum(l.price_cents), count(*), count(DISTINCT l.order_id),
           max(l.purchased_at),
           (array_agg(l.order_id ORDER BY l.purchased_at DESC, l.order_id))[1],
           (array_agg(l.category ORDER BY l.purchased_at DESC, l.order_id))[1]
      FROM etl_touched_lines l
     GROUP BY l.purchase_date, l.product_id
    RETURNING product_id, revenue_cents, units, orders
)
INSERT INTO etl_product_delta SELECT * FROM added;
CREATE TEMP TABLE etl_touched_products ON COMMIT DROP AS
SELECT product_id, sum(revenue_cents) AS revenue_cents, sum(units) AS units, sum(orders) AS orders
  FROM etl_product_delta GROUP BY product_id;
ANALYZE etl_touched_products;
DROP TABLE etl_product_delta;
