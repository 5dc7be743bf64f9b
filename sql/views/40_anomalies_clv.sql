-- rfm_people: each person's RFM scores, ntile(5) over every person as
-- customer_lifetime_value defines them, from the quintile boundaries the
-- refresh keeps (rfm_boundaries, sql/analytics/clv_segments.sql): 1 + the
-- boundaries at or below the person in the ranking's order. The one place a
-- score is computed: the refresh reads it for the people it moves. (The four
-- boundaries as one row of columns, not an aggregate per person: reading every
-- person took 6.6 s that way at 1M items.)
CREATE OR REPLACE VIEW rfm_people AS
SELECT c.customer_unique_id, c.customer_state, c.orders, c.total_spent_cents, c.first_order_at, c.last_order_at,
       c.last_order_date,
       1 + coalesce(((c.last_order_date, c.customer_unique_id) >= (b.r2, b.r2_c))::integer, 0)
         + coalesce(((c.last_order_date, c.customer_unique_id) >= (b.r3, b.r3_c))::integer, 0)
         + coalesce(((c.last_order_date, c.customer_unique_id) >= (b.r4, b.r4_c))::integer, 0)
         + coalesce(((c.last_order_date, c.customer_unique_id) >= (b.r5, b.r5_c))::integer, 0) AS recency_score,
       1 + coalesce(((c.total_spent_cents, c.customer_unique_id) >= (b.m2, b.m2_c))::integer, 0)
         + coalesce(((c.total_spent_cents, c.customer_unique_id) >= (b.m3, b.m3_c))::integer, 0)
         + coalesce(((c.total_spent_cents, c.customer_unique_id) >= (b.m4, b.m4_c))::integer, 0)
         + coalesce(((c.total_spent_cents, c.customer_unique_id) >= (b.m5, b.m5_c))::integer, 0) AS monetary_score
  FROM customer_totals c
 CROSS JOIN (  -- the four boundaries as one row (a NULL one, an empty quintile, counts for no one)
    SELECT max(recency_date) FILTER (WHERE score = 2) AS r2, max(recency_customer) FILTER (WHERE score = 2) AS r2_c,
           max(recency_date) FILTER (WHERE score = 3) AS r3, max(recency_customer) FILTER (WHERE score = 3) AS r3_c,
           max(recency_date) FILTER (WHERE score = 4) AS r4, max(recency_customer) FILTER (WHERE score = 4) AS r4_c,
           max(recency_date) FILTER (WHERE score = 5) AS r5, max(recency_customer) FILTER (WHERE score = 5) AS r5_c,
           max(monetary_cents) FILTER (WHERE score = 2) AS m2, max(monetary_customer) FILTER (WHERE score = 2) AS m2_c,
           max(monetary_cents) FILTER (WHERE score = 3) AS m3, max(monetary_customer) FILTER (WHERE score = 3) AS m3_c,
           max(monetary_cents) FILTER (WHERE score = 4) AS m4, max(monetary_customer) FILTER (WHERE score = 4) AS m4_c,
           max(monetary_cents) FILTER (WHERE score = 5) AS m5, max(monetary_customer) FILTER (WHERE score = 5) AS m5_c
      FROM rfm_boundaries) b;

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
