-- What a refresh recomputes, as TEMP tables of the refresh's transaction
-- (etl/publish/derived.py fills etl_touched_ranges first: non-overlapping
-- purchase-time ranges aligned to local days, -infinity/infinity for a full
-- rebuild). %(tz)s is the source time zone, whose calendar dim_dates keeps.
CREATE TEMP TABLE etl_touched_days ON COMMIT DROP AS
SELECT (lo AT TIME ZONE %(tz)s)::date AS lo, (hi AT TIME ZONE %(tz)s)::date AS hi FROM etl_touched_ranges;

-- The months those days fall in, as non-overlapping [lo, hi) ranges of month starts.
CREATE TEMP TABLE etl_touched_months ON COMMIT DROP AS
WITH m AS (
    SELECT date_trunc('month', lo)::date AS lo, (date_trunc('month', hi - 1) + interval '1 month')::date AS hi
      FROM etl_touched_days
), flagged AS (
    SELECT lo, hi, CASE WHEN lo <= max(hi) OVER (ORDER BY lo ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                        THEN 0 ELSE 1 END AS starts
      FROM m
), grouped AS (
    SELECT lo, hi, sum(starts) OVER (ORDER BY lo) AS island FROM flagged
)
SELECT min(lo) AS lo, max(hi) AS hi FROM grouped GROUP BY island;

-- People with an order in the touched days (any status: a canceled order may
-- have counted before), and every sold order of theirs.
CREATE TEMP TABLE etl_touched_customers ON COMMIT DROP AS
SELECT DISTINCT c.customer_unique_id
  FROM etl_touched_ranges r
  JOIN fact_orders o   ON o.purchased_at >= r.lo AND o.purchased_at < r.hi
  JOIN dim_customers c ON c.customer_id = o.customer_id;
ANALYZE etl_touched_customers;

CREATE TEMP TABLE etl_customer_orders ON COMMIT DROP AS
SELECT c.customer_unique_id, c.state AS customer_state, o.order_id, o.purchased_at, d.full_date AS purchase_date
  FROM etl_touched_customers t
  JOIN dim_customers c ON c.customer_unique_id = t.customer_unique_id
  JOIN fact_orders o   ON o.customer_id = c.customer_id
  JOIN dim_dates d     ON d.date_key = o.purchase_date_key
 WHERE o.order_status NOT IN ('canceled', 'unavailable');
ANALYZE etl_customer_orders;

-- Products with an item in the touched days.
CREATE TEMP TABLE etl_touched_products ON COMMIT DROP AS
SELECT DISTINCT i.product_id
  FROM etl_touched_ranges r
  JOIN fact_orders o      ON o.purchased_at >= r.lo AND o.purchased_at < r.hi
  JOIN fact_order_items i ON i.order_id = o.order_id;
ANALYZE etl_touched_products;
