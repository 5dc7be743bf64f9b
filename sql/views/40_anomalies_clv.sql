-- customer_lifetime_value: per person (customer_unique_id; Olist issues a new
-- customer_id per order), from customer_totals. total_spent = payments of the
-- person's sold orders; days_since_last_order counts from the data's last
-- purchase day (not today: the data ends in 2018); churned when that exceeds 90 days.
-- RFM: recency and monetary are quintiles (5 = best); frequency is the order
-- count capped at 5 (most Olist buyers order once, so quintiles would be noise).
-- A plain view: the scores rank every customer, so they are computed when read
-- (clv_segments keeps the segment sizes the dashboards chart).
CREATE OR REPLACE VIEW customer_lifetime_value AS
WITH scored AS (
    SELECT c.*, max(c.last_order_date) OVER () - c.last_order_date AS days_since_last_order
      FROM customer_totals c
), rfm AS (
    SELECT s.*,
           ntile(5) OVER (ORDER BY days_since_last_order DESC, customer_unique_id) AS recency_score,
           least(orders, 5)                                                        AS frequency_score,
           ntile(5) OVER (ORDER BY total_spent_cents, customer_unique_id)          AS monetary_score
      FROM scored s
)
SELECT customer_unique_id,
       customer_state,
       orders,
       total_spent_cents,
       round(total_spent_cents::numeric / orders, 2) AS avg_order_value_cents,
       first_order_at,
       last_order_at,
       days_since_last_order,
       days_since_last_order > 90                    AS churned,
       recency_score, frequency_score, monetary_score,
       CASE
         WHEN recency_score >= 4 AND orders >= 2 AND monetary_score >= 4 THEN 'Champions'
         WHEN orders >= 2 AND recency_score >= 3                         THEN 'Loyal'
         WHEN recency_score >= 4                                         THEN 'New'
         WHEN recency_score = 3                                          THEN 'Promising'
         WHEN orders >= 2 OR monetary_score >= 4                         THEN 'At risk'
         ELSE 'Hibernating'
       END AS rfm_segment
  FROM rfm;
