-- customer_totals for the touched people, from their rows of customer_orders.
DELETE FROM customer_totals c USING etl_touched_customers t WHERE c.customer_unique_id = t.customer_unique_id;
INSERT INTO customer_totals
SELECT o.customer_unique_id,
       (array_agg(o.customer_state ORDER BY o.purchased_at DESC))[1],
       count(*),
       coalesce(sum(o.paid_cents), 0),
       min(o.purchased_at),
       max(o.purchased_at),
       max(o.purchase_date)
  FROM etl_touched_customers t
  JOIN customer_orders o ON o.customer_unique_id = t.customer_unique_id
 GROUP BY o.customer_unique_id;
