-- region_customers: distinct people per state they bought with (sold orders).
-- The touched people's old states are subtracted and their new ones added, so
-- the cost follows the touched people, not all of them.
CREATE TEMP TABLE etl_region_delta (customer_state CHAR(2), delta BIGINT) ON COMMIT DROP;
WITH gone AS (
    DELETE FROM customer_states s USING etl_touched_customers t
     WHERE s.customer_unique_id = t.customer_unique_id RETURNING s.customer_state
)
INSERT INTO etl_region_delta SELECT customer_state, -count(*) FROM gone GROUP BY 1;
WITH added AS (
    INSERT INTO customer_states
    SELECT DISTINCT o.customer_unique_id, o.customer_state
      FROM etl_touched_customers t
      JOIN customer_orders o ON o.customer_unique_id = t.customer_unique_id
     WHERE o.customer_state IS NOT NULL
    RETURNING customer_state
)
INSERT INTO etl_region_delta SELECT customer_state, count(*) FROM added GROUP BY 1;
INSERT INTO region_customers AS r
SELECT customer_state, sum(delta) FROM etl_region_delta GROUP BY 1
    ON CONFLICT (customer_state) DO UPDATE SET customers = r.customers + excluded.customers;
DELETE FROM region_customers WHERE customers = 0;
DROP TABLE etl_region_delta;
