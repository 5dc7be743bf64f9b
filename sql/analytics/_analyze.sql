-- After a full rebuild: every derived table was rewritten whole, and the
-- planner's statistics still describe the tables as they were (often empty).
-- The next refresh probes them by a day's keys; with stale statistics it
-- plans whole-table joins instead (customer_totals 2.1 s instead of 0.2 s for
-- one day at 1M items, docs/performance.md). Autovacuum would get there, later.
ANALYZE order_category_values, category_discount_daily, category_discount_map, sales_monthly_state,
        sales_monthly_category, anomaly_groups, anomaly_records, customer_orders, customer_totals,
        customer_states, region_customers, rfm_recency_counts, rfm_monetary_counts, rfm_boundaries,
        clv_cells, clv_segments, product_daily, top_products;
