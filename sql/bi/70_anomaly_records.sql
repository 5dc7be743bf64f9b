-- bi.anomaly_records over public.anomaly_records (a table kept per touched month: sql/analytics/).
CREATE OR REPLACE VIEW bi.anomaly_records AS
SELECT order_id, category, month, value_cents, items, peers,
       mean_value_cents::numeric(14, 2) AS mean_value_cents, z_value, z_items
  FROM public.anomaly_records;
COMMENT ON VIEW bi.anomaly_records IS
    'An order''s items of one category in one month whose value or item count lies more than 3 standard '
    'deviations from its category x month peers. Key: (order_id, category). Money in integer cents (BRL).';
COMMENT ON COLUMN bi.anomaly_records.order_id IS 'Olist order id.';
COMMENT ON COLUMN bi.anomaly_records.category IS 'Product category in English.';
COMMENT ON COLUMN bi.anomaly_records.month IS 'First day of the São Paulo month of purchase.';
COMMENT ON COLUMN bi.anomaly_records.value_cents IS 'The order''s item prices in the category, integer cents (BRL).';
COMMENT ON COLUMN bi.anomaly_records.items IS 'The order''s items in the category.';
COMMENT ON COLUMN bi.anomaly_records.peers IS 'Orders of the same category and month compared against.';
COMMENT ON COLUMN bi.anomaly_records.mean_value_cents IS 'The peers'' mean value, cents as an exact decimal.';
COMMENT ON COLUMN bi.anomaly_records.z_value IS 'Standard score of value_cents among the peers.';
COMMENT ON COLUMN bi.anomaly_records.z_items IS 'Standard score of items among the peers.';
