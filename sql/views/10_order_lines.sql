-- Base views of the analytics layer (plain views: no storage, always current).
--
-- order_lines: one row per order item with what every aggregate needs, joined
-- once here so the joins live in one place. dim_products keeps history (SCD2):
-- an item joins the product version current at its purchase (product_key), so
-- a later re-categorisation does not rewrite past sales.
--   * purchase_date is the São Paulo calendar day (dim_dates), as everywhere.
--   * category is English via category_translation; untranslated categories keep
--     their Portuguese name, products without a category are 'UNKNOWN' (the transform imputes the
--     lookup's UNKNOWN bucket and flags it in dim_products.category_imputed).
--   * source_system / source_id: where the order came from ('olist' for the Olist
--     files, whose rows carry no lineage; shopify, stripe, woocommerce or a database
--     source's name otherwise) and the vendor's own order id (`etl lineage`). Last
--     columns, so CREATE OR REPLACE can add them to an existing view.
-- sales_order_lines: the lines that count as sales. Revenue excludes orders that
-- were 'canceled' or 'unavailable' (never fulfilled); every other status counts.
CREATE OR REPLACE VIEW order_lines AS
SELECT i.order_id,
       i.order_item_id,
       i.product_id,
       i.seller_id,
       i.price_cents,
       i.freight_cents,
       o.order_status,
       o.purchased_at,
       d.full_date                                                      AS purchase_date,
       c.customer_unique_id,
       c.state                                                          AS customer_state,
       coalesce(t.category_name_english, p.category_name, 'UNKNOWN')   AS category,
       coalesce(o.source_system, 'olist')                               AS source_system,
       o.source_id
  FROM fact_order_items i
  JOIN fact_orders o    ON o.order_id = i.order_id
  JOIN dim_dates d      ON d.date_key = o.purchase_date_key
  JOIN dim_customers c  ON c.customer_id = o.customer_id
  LEFT JOIN dim_products p          ON p.product_key = i.product_key
  LEFT JOIN category_translation t  ON t.category_name = p.category_name;

CREATE OR REPLACE VIEW sales_order_lines AS
SELECT * FROM order_lines WHERE order_status NOT IN ('canceled', 'unavailable');

-- One row per sold order (same status rule), with its items' totals; orders
-- without items count as orders with zero revenue.
CREATE OR REPLACE VIEW sales_orders AS
SELECT o.order_id,
       o.order_status,
       o.purchased_at,
       d.full_date                      AS purchase_date,
       c.customer_unique_id,
       c.state                          AS customer_state,
       o.delivered_customer_at,
       o.estimated_delivery_at,
       coalesce(it.items, 0)            AS items,
       coalesce(it.revenue_cents, 0)    AS revenue_cents,
       coalesce(it.freight_cents, 0)    AS freight_cents,
       coalesce(o.source_system, 'olist') AS source_system,
       o.source_id
  FROM fact_orders o
  JOIN dim_dates d      ON d.date_key = o.purchase_date_key
  JOIN dim_customers c  ON c.customer_id = o.customer_id
  LEFT JOIN (SELECT order_id, count(*) AS items, sum(price_cents) AS revenue_cents,
                    sum(freight_cents) AS freight_cents
               FROM fact_order_items GROUP BY order_id) it ON it.order_id = o.order_id
 WHERE o.order_status NOT IN ('canceled', 'unavailable');
