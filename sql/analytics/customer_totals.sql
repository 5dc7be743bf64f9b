-- customer_totals for the touched people, from their rows of customer_orders.
-- Their rows as they were, with the RFM scores they had (rfm_people, before
-- clv_segments moves the boundaries), go to etl_customers_gone: clv_segments
-- takes them out of the segment sizes and puts the new rows in.
CREATE TEMP TABLE etl_customers_gone ON COMMIT DROP AS
SELECT p.customer_unique_id, p.orders, p.total_spent_cents, p.last_order_date, p.recency_score, p.monetary_score
  FROM etl_touched_customers t JOIN rfm_people p ON p.customer_unique_id = t.customer_unique_id;
ANALYZE etl_customers_gone;
DELETE FROM customer_totals c USING etl_customers_gone g WHERE c.customer_unique_id = g.customer_unique_id;
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
