-- A full rebuild (all of time touched) starts the tables that move by
-- differences from empty, so what they hold is exactly the sum of the new rows
-- (customer_totals too: every person is rewritten).
TRUNCATE customer_orders, customer_states, region_customers, product_daily, top_products,
         customer_totals, rfm_recency_counts, rfm_monetary_counts, rfm_boundaries, clv_cells;
