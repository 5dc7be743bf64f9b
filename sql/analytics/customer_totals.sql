-- customer_totals for the touched people: their sold orders and what they paid.
DELETE FROM customer_totals c USING etl_touched_customers t WHERE c.customer_unique_id = t.customer_unique_id;
INSERT INTO customer_totals
WITH paid AS (
    SELECT order_id, sum(payment_value_cents) AS paid_cents
      FROM fact_payments WHERE order_id IN (SELECT order_id FROM etl_customer_orders) GROUP BY order_id
)
SELECT o.customer_unique_id,
       (array_agg(o.customer_state ORDER BY o.purchased_at DESC))[1],
       count(*),
       coalesce(sum(p.paid_cents), 0),
       min(o.purchased_at),
       max(o.purchased_at),
       max(o.purchase_date)
  FROM etl_customer_orders o LEFT JOIN paid p USING (order_id)
 GROUP BY o.customer_unique_id;
