-- What a refresh recomputes, as TEMP tables of the refresh's transaction
-- (etl/publish/derived.py fills etl_touched_ranges first: non-overlapping
-- purchase-time ranges aligned to local days, -infinity/infinity for a full
-- rebuild). %(tz)s is the source time zone, whose calendar dim_dates keeps.
CREATE TEMP TABLE etl_touched_days ON COMMIT DROP AS
SELECT (lo AT TIME ZONE %(tz)s)::date AS lo, (hi AT TIME ZONE %(tz)s)::date AS hi FROM etl_touched_ranges;
-- Analysed, as every TEMP table here: unanalysed, the planner assumes 2,260 rows
-- and joins a day's probes as if it were years (whole-table merge joins).
ANALYZE etl_touched_days;

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
ANALYZE etl_touched_months;

-- The orders bought in the touched ranges (any status), and the sold lines of
-- them, each read once through the purchase-time index; the statements join
-- these (analysed, so the planner knows they are small) rather than ranges.
CREATE TEMP TABLE etl_touched_orders ON COMMIT DROP AS
SELECT o.order_id, o.customer_id, o.order_status, o.purchased_at, o.purchase_date_key
  FROM etl_touched_ranges r
  JOIN fact_orders o ON o.purchased_at >= r.lo AND o.purchased_at < r.hi;
ANALYZE etl_touched_orders;

CREATE TEMP TABLE etl_touched_lines ON COMMIT DROP AS
SELECT l.purchase_date, l.order_id, l.product_id, l.category, l.price_cents, l.freight_cents, l.purchased_at
  FROM etl_touched_orders t
  JOIN sales_order_lines l ON l.order_id = t.order_id AND l.purchased_at = t.purchased_at
 -- the span of the touched ranges, a superset: lets the planner skip the chunks
 -- (or index ranges) outside it rather than hash every order of the warehouse
 WHERE l.purchased_at >= (SELECT min(lo) FROM etl_touched_ranges)
   AND l.purchased_at < (SELECT max(hi) FROM etl_touched_ranges);
ANALYZE etl_touched_lines;
