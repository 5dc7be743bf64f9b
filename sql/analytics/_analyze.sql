-- After a full rebuild: the intermediate tables the derived tables' statements
-- fill were rewritten whole, and the planner's statistics still describe them
-- as they were (often empty). The next refresh probes them by a day's keys;
-- with stale statistics it plans whole-table joins instead (customer_totals
-- 2.1 s instead of 0.2 s for one day at 1M items, docs/performance.md).
-- Autovacuum would get there, later. (Each table of etl.publish.derived.TABLES
-- is analysed as soon as the rebuild has written it, for the tables after it.)
ANALYZE customer_states, rfm_recency_counts, rfm_monetary_counts, rfm_boundaries, clv_cells;
