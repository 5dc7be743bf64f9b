-- anomaly_records for the touched months. mean = sum / n; sample variance =
-- (n * sum of squares - sum^2) / (n (n - 1)), as PostgreSQL's stddev_samp
-- computes it. With n peers |z| can reach at most (n-1)/sqrt(n), so groups
-- under 11 orders can never flag. Flag on the exact z; round only what is shown.
DELETE FROM anomaly_records a USING etl_touched_months m WHERE a.month >= m.lo AND a.month < m.hi;
INSERT INTO anomaly_records
WITH d AS MATERIALIZED (  -- the touched months' groups, deviations computed once each
    SELECT g.month, g.category, g.peers,
           g.value_sum / g.peers AS mean_value,
           g.items_sum / g.peers AS mean_items,
           CASE WHEN g.peers > 1 THEN sqrt((g.peers * g.value_sum_squares - g.value_sum * g.value_sum)
                                           / (g.peers * (g.peers - 1))) END AS sd_value,
           CASE WHEN g.peers > 1 THEN sqrt((g.peers * g.items_sum_squares - g.items_sum * g.items_sum)
                                           / (g.peers * (g.peers - 1))) END AS sd_items
      FROM etl_touched_months m
      JOIN anomaly_groups g ON g.month >= m.lo AND g.month < m.hi
), g AS (
    -- integer bounds a little inside 3 deviations, so the tails are index ranges
    SELECT d.*,
           floor(mean_value - 2.999999 * sd_value)::bigint AS value_below,
           ceil(mean_value + 2.999999 * sd_value)::bigint  AS value_above,
           floor(mean_items - 2.999999 * sd_items)::bigint AS items_below,
           ceil(mean_items + 2.999999 * sd_items)::bigint  AS items_above
      FROM d
), z AS (
    -- Only the tails of each group are read (indexes on value and on items), then the exact z.
    SELECT v.order_id, v.category, v.month, v.value_cents, v.items, g.peers, g.mean_value,
           (v.value_cents - g.mean_value) / nullif(g.sd_value, 0) AS z_value,
           (v.items - g.mean_items) / nullif(g.sd_items, 0)       AS z_items
      FROM g CROSS JOIN LATERAL (
        SELECT * FROM order_category_values v
         WHERE v.month = g.month AND v.category = g.category
           AND (   v.value_cents <= g.value_below OR v.value_cents >= g.value_above
                OR v.items <= g.items_below OR v.items >= g.items_above)
        OFFSET 0) v  -- kept a per-group probe (not flattened into a join of every row)
)
SELECT order_id, category, month, value_cents, items, peers,
       round(mean_value, 2), round(z_value, 3), round(z_items, 3)
  FROM z WHERE abs(z_value) > 3 OR abs(z_items) > 3;
