-- rfm_people: each person's RFM scores, ntile(5) over every person as
-- customer_lifetime_value defines them, from the quintile boundaries the
-- refresh keeps (rfm_boundaries, sql/analytics/clv_segments.sql): 1 + the
-- boundaries at or below the person in the ranking's order. The one place a
-- score is computed: the refresh reads it for the people it moves.
CREATE OR REPLACE VIEW rfm_people AS
SELECT c.customer_unique_id, c.customer_state, c.orders, c.total_spent_cents, c.first_order_at, c.last_order_at,
       c.last_order_date, s.recency_score, s.monetary_score
  FROM customer_totals c
 CROSS JOIN LATERAL (
    SELECT (1 + count(*) FILTER (WHERE (c.last_order_date, c.customer_unique_id)
                                       >= (b.recency_date, b.recency_customer)))::integer AS recency_score,
           (1 + count(*) FILTER (WHERE (c.total_spent_cents, c.customer_unique_id)
                                       >= (b.monetary_cents, b.monetary_customer)))::integer AS monetary_score
      FROM rfm_boundaries b) s;

-- customer_lifetime_value: per person (customer_unique_id; Olist issues a new
-- customer_id per order), from customer_totals. total_spent = payments of the
-- person's sold orders; days_since_last_order counts from the data's last
-- purchase day (not today: the data ends in 2018); churned when that exceeds 90 days.
-- RFM: recency and monetary are quintiles (5 = best): ntile(5) over every person
-- ORDER BY days_since_last_order DESC (= last_order_date), customer_unique_id and
-- ORDER BY total_spent_cents, customer_unique_id (rfm_people: reading one person
-- ranks no one); frequency is the order count capped at 5 (most Olist buyers
-- order once, so quintiles would be noise). The segment is rfm_segment()
-- (sql/schema.d/40_analytics.sql).
CREATE OR REPLACE VIEW customer_lifetime_value AS
SELECT p.customer_unique_id,
       p.customer_state,
       p.orders,
       p.total_spent_cents,
       round(p.total_spent_cents::numeric / p.orders, 2) AS avg_order_value_cents,
       p.first_order_at,
       p.last_order_at,
       m.last_day - p.last_order_date                      AS days_since_last_order,
       m.last_day - p.last_order_date > 90                 AS churned,
       p.recency_score,
       least(p.orders, 5)                                  AS frequency_score,
       p.monetary_score,
       rfm_segment(p.recency_score, p.orders, p.monetary_score) AS rfm_segment
  FROM rfm_people p
 CROSS JOIN (SELECT max(last_order_date) AS last_day FROM customer_totals) m;
