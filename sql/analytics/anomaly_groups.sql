-- anomaly_groups: count, sum and sum of squares per category x touched month.
DELETE FROM anomaly_groups g USING etl_touched_months m WHERE g.month >= m.lo AND g.month < m.hi;
INSERT INTO anomaly_groups
SELECT v.month, v.category, count(*), sum(v.value_cents), sum(v.value_cents::numeric * v.value_cents),
       sum(v.items), sum(v.items::numeric * v.items)
  FROM etl_touched_months m
  JOIN order_category_values v ON v.month >= m.lo AND v.month < m.hi
 GROUP BY v.month, v.category;
