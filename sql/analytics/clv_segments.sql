-- clv_segments: the RFM segment sizes the dashboards chart. Recency and
-- monetary are ntile(5) over every person (ORDER BY last_order_date, person and
-- total_spent_cents, person: customer_lifetime_value's definition), so a
-- person's score is 1 + the quintile boundaries at or below them (rfm_people).
-- Rather than rank everyone, a refresh (1) moves the histograms of last-order
-- days and spends by the touched people's old and new rows, (2) places the new
-- boundaries from them (the ntile positions; a day's or an amount's people read
-- by offset), (3) finds the people between each boundary's old and new place
-- (no one else's score can change), and (4) moves clv_cells by the old
-- segments of the touched and of those people, and by their new ones.
-- Identical to ranking everyone (tests/analytics/test_rfm_incremental.py).

-- The touched people as they are now (customer_totals.sql rewrote them; as
-- they were: etl_customers_gone).
CREATE TEMP TABLE etl_customers_new ON COMMIT DROP AS
SELECT c.customer_unique_id, c.total_spent_cents, c.last_order_date
  FROM etl_touched_customers t JOIN customer_totals c ON c.customer_unique_id = t.customer_unique_id;
ANALYZE etl_customers_new;

-- (1) The histograms, by difference.
CREATE TEMP TABLE etl_rfm_delta ON COMMIT DROP AS
SELECT last_order_date, total_spent_cents, -1 AS n FROM etl_customers_gone
 UNION ALL
SELECT last_order_date, total_spent_cents, 1 FROM etl_customers_new;
ANALYZE etl_rfm_delta;
INSERT INTO rfm_recency_counts AS h
SELECT last_order_date, sum(n) FROM etl_rfm_delta GROUP BY 1 HAVING sum(n) <> 0
    ON CONFLICT (last_order_date) DO UPDATE SET customers = h.customers + excluded.customers;
DELETE FROM rfm_recency_counts
 WHERE last_order_date IN (SELECT last_order_date FROM etl_rfm_delta) AND customers = 0;
INSERT INTO rfm_monetary_counts AS h
SELECT total_spent_cents, sum(n) FROM etl_rfm_delta GROUP BY 1 HAVING sum(n) <> 0
    ON CONFLICT (total_spent_cents) DO UPDATE SET customers = h.customers + excluded.customers;
DELETE FROM rfm_monetary_counts
 WHERE total_spent_cents IN (SELECT total_spent_cents FROM etl_rfm_delta) AND customers = 0;

-- (2) The new boundaries. ntile(5) over n rows gives the first n % 5 quintiles
-- n / 5 + 1 rows and the others n / 5, so quintile k starts at row
-- (k - 1) * (n / 5) + least(k - 1, n % 5) + 1; past n it is empty (NULL).
CREATE TEMP TABLE etl_rfm_bounds ON COMMIT DROP AS
WITH total AS (
    SELECT coalesce(sum(customers), 0)::bigint AS n FROM rfm_recency_counts
), pos AS (
    SELECT k AS score, (k - 1) * (n / 5) + least(k - 1, n % 5) + 1 AS position
      FROM total, generate_series(2, 5) k
     WHERE (k - 1) * (n / 5) + least(k - 1, n % 5) + 1 <= n
), recency_through AS MATERIALIZED (  -- people up to and including each day (one pass)
    SELECT last_order_date, sum(customers) OVER w - customers AS before, sum(customers) OVER w AS through
      FROM rfm_recency_counts WINDOW w AS (ORDER BY last_order_date)
), monetary_through AS MATERIALIZED (  -- up to and including each amount
    SELECT total_spent_cents, sum(customers) OVER w - customers AS before, sum(customers) OVER w AS through
      FROM rfm_monetary_counts WINDOW w AS (ORDER BY total_spent_cents)
), recency AS (
    SELECT p.score, h.last_order_date, p.position - h.before AS nth
      FROM pos p JOIN recency_through h ON p.position > h.before AND p.position <= h.through
), monetary AS (
    SELECT p.score, h.total_spent_cents, p.position - h.before AS nth
      FROM pos p JOIN monetary_through h ON p.position > h.before AND p.position <= h.through
)
SELECT k AS score,
       r.last_order_date AS recency_date,
       (SELECT c.customer_unique_id FROM customer_totals c WHERE c.last_order_date = r.last_order_date
         ORDER BY c.customer_unique_id OFFSET r.nth - 1 LIMIT 1) AS recency_customer,
       m.total_spent_cents AS monetary_cents,
       (SELECT c.customer_unique_id FROM customer_totals c WHERE c.total_spent_cents = m.total_spent_cents
         ORDER BY c.customer_unique_id OFFSET m.nth - 1 LIMIT 1) AS monetary_customer
  FROM generate_series(2, 5) k
  LEFT JOIN recency r ON r.score = k
  LEFT JOIN monetary m ON m.score = k;

-- (3) Where each boundary moved: [lo, hi) in the ranking's order; hi at the
-- end when the quintile was or became empty, lo NULL when it stays empty. Only
-- the scored people in these ranges can change score.
CREATE TEMP TABLE etl_rfm_moves ON COMMIT DROP AS
WITH pair AS (
    SELECT b.score, b.recency_date AS r_new, b.recency_customer AS r_new_c,
           o.recency_date AS r_old, o.recency_customer AS r_old_c,
           o.recency_date IS NULL
             OR (b.recency_date IS NOT NULL
                 AND (b.recency_date, b.recency_customer) < (o.recency_date, o.recency_customer)) AS r_new_first,
           b.monetary_cents AS m_new, b.monetary_customer AS m_new_c,
           o.monetary_cents AS m_old, o.monetary_customer AS m_old_c,
           o.monetary_cents IS NULL
             OR (b.monetary_cents IS NOT NULL
                 AND (b.monetary_cents, b.monetary_customer) < (o.monetary_cents, o.monetary_customer)) AS m_new_first
      FROM etl_rfm_bounds b JOIN rfm_boundaries o ON o.score = b.score  -- none after a reset: no one is scored
)
SELECT score,
       CASE WHEN r_new_first THEN r_new ELSE r_old END     AS r_lo,
       CASE WHEN r_new_first THEN r_new_c ELSE r_old_c END AS r_lo_c,
       coalesce(CASE WHEN r_new_first THEN r_old ELSE r_new END, 'infinity') AS r_hi,
       coalesce(CASE WHEN r_new_first THEN r_old_c ELSE r_new_c END, '')    AS r_hi_c,
       CASE WHEN m_new_first THEN m_new ELSE m_old END     AS m_lo,
       CASE WHEN m_new_first THEN m_new_c ELSE m_old_c END AS m_lo_c,
       coalesce(CASE WHEN m_new_first THEN m_old ELSE m_new END, 9223372036854775807) AS m_hi,
       coalesce(CASE WHEN m_new_first THEN m_old_c ELSE m_new_c END, '')           AS m_hi_c
  FROM pair;

-- The untouched people in a moved range (the rankings' indexes alone).
CREATE TEMP TABLE etl_rfm_moved ON COMMIT DROP AS
SELECT x.customer_unique_id FROM etl_rfm_moves m
 CROSS JOIN LATERAL (SELECT c.customer_unique_id FROM customer_totals c
                      WHERE (c.last_order_date, c.customer_unique_id) >= (m.r_lo, m.r_lo_c)
                        AND (c.last_order_date, c.customer_unique_id) < (m.r_hi, m.r_hi_c)) x
 UNION  -- a person between two boundaries' places counts once
SELECT x.customer_unique_id FROM etl_rfm_moves m
 CROSS JOIN LATERAL (SELECT c.customer_unique_id FROM customer_totals c
                      WHERE (c.total_spent_cents, c.customer_unique_id) >= (m.m_lo, m.m_lo_c)
                        AND (c.total_spent_cents, c.customer_unique_id) < (m.m_hi, m.m_hi_c)) x
EXCEPT
SELECT customer_unique_id FROM etl_touched_customers;
ANALYZE etl_rfm_moved;

-- (4) The cells: the old segments out (scores under the old boundaries), the
-- boundaries replaced, the new segments in.
CREATE TEMP TABLE etl_clv_delta ON COMMIT DROP AS
SELECT rfm_segment(recency_score, orders, monetary_score) AS rfm_segment, last_order_date,
       -1 AS customers, -total_spent_cents AS total_spent_cents
  FROM etl_customers_gone
 UNION ALL
SELECT rfm_segment(p.recency_score, p.orders, p.monetary_score), p.last_order_date, -1, -p.total_spent_cents
  FROM etl_rfm_moved m JOIN rfm_people p ON p.customer_unique_id = m.customer_unique_id;

DELETE FROM rfm_boundaries;
INSERT INTO rfm_boundaries SELECT * FROM etl_rfm_bounds;

INSERT INTO etl_clv_delta
SELECT rfm_segment(p.recency_score, p.orders, p.monetary_score), p.last_order_date, 1, p.total_spent_cents
  FROM (SELECT customer_unique_id FROM etl_rfm_moved UNION ALL SELECT customer_unique_id FROM etl_customers_new) m
  JOIN rfm_people p ON p.customer_unique_id = m.customer_unique_id;

INSERT INTO clv_cells AS c
SELECT rfm_segment, last_order_date, sum(customers), sum(total_spent_cents) FROM etl_clv_delta
 GROUP BY 1, 2
HAVING sum(customers) <> 0 OR sum(total_spent_cents) <> 0
    ON CONFLICT (rfm_segment, last_order_date) DO UPDATE
   SET customers = c.customers + excluded.customers, total_spent_cents = c.total_spent_cents + excluded.total_spent_cents;
DELETE FROM clv_cells WHERE customers = 0;

-- The segment sizes: people are churned more than 90 days before the last day.
DELETE FROM clv_segments;
INSERT INTO clv_segments
SELECT rfm_segment, sum(customers), sum(total_spent_cents),
       coalesce(sum(customers) FILTER (WHERE last_order_date < (SELECT max(last_order_date) FROM rfm_recency_counts) - 90), 0)
  FROM clv_cells GROUP BY rfm_segment;
