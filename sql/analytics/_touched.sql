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
