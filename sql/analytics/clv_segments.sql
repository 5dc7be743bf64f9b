-- clv_segments: the RFM segment sizes the dashboards chart. The scores are
-- quintiles over every customer (sql/views/40_customers.sql), so this one is
-- recomputed whole, from customer_totals (one narrow row per person) rather
-- than from the facts.
DELETE FROM clv_segments;
INSERT INTO clv_segments
SELECT rfm_segment, count(*), sum(total_spent_cents), count(*) FILTER (WHERE churned)
  FROM customer_lifetime_value GROUP BY rfm_segment;
