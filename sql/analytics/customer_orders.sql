-- customer_orders for the touched days; the people of the replaced and the
-- added rows are the touched people (etl_touched_people).
CREATE TEMP TABLE etl_touched_people (customer_unique_id CHAR(32)) ON COMMIT DROP;
WITH gone AS (
    DELETE FROM customer_orders c USING etl_touched_days d
     WHERE c.purchase_date >= d.lo AND c.purchase_date < d.hi RETURNING c.customer_unique_id
)
INSERT INTO etl_touched_people SELECT customer_unique_id FROM gone;
WITH sold AS (
    SELECT d.full_date AS purchase_date, o.order_id, c.customer_unique_id, c.state AS customer_state,
           o.purchased_at
      FROM etl_touched_orders o
      JOIN dim_customers c ON c.customer_id = o.customer_id
      JOIN dim_dates d     ON d.date_key = o.purchase_date_key
     WHERE o.order_status NOT IN ('canceled', 'unavailable')
), paid AS (
    SELECT order_id, sum(payment_value_cents) AS paid_cents
      FROM fact_payments WHERE order_id IN (SELECT order_id FROM sold) GROUP BY order_id
), added AS (
    INSERT INTO customer_orders
    SELECT s.purchase_date, s.order_id, s.customer_unique_id, s.customer_state, s.purchased_at, p.paid_cents
      FROM sold s LEFT JOIN paid p USING (order_id)
    RETURNING customer_unique_id
)
INSERT INTO etl_touched_people SELECT customer_unique_id FROM added;
CREATE TEMP TABLE etl_touched_customers ON COMMIT DROP AS
SELECT DISTINCT customer_unique_id FROM etl_touched_people;
ANALYZE etl_touched_customers;
