-- A full rebuild (all of time touched) starts the tables that move by
-- differences from empty, so what they hold is exactly the sum of the new rows.
TRUNCATE customer_orders, customer_states, region_customers, product_daily, top_products;
