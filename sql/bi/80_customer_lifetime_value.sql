-- bi.customer_lifetime_value and bi.clv_segments over the relations of the same
-- names (a view over customer_totals, sql/views/40_anomalies_clv.sql; a table).
CREATE OR REPLACE VIEW bi.customer_lifetime_value AS
SELECT customer_unique_id, customer_state, orders, total_spent_cents,
       avg_order_value_cents::numeric(14, 2) AS avg_order_value_cents,
       first_order_at, last_order_at, days_since_last_order, churned,
       recency_score, frequency_score, monetary_score, rfm_segment
  FROM public.customer_lifetime_value;
COMMENT ON VIEW bi.customer_lifetime_value IS
    'One row per person (customer_unique_id; Olist issues a new customer_id per order) with lifetime value '
    'and RFM scores. Key: customer_unique_id. Money in integer cents (BRL). Timestamps are UTC (timestamptz).';
COMMENT ON COLUMN bi.customer_lifetime_value.customer_unique_id IS 'Olist''s id of the person.';
COMMENT ON COLUMN bi.customer_lifetime_value.customer_state IS 'State of the person''s latest order.';
COMMENT ON COLUMN bi.customer_lifetime_value.orders IS 'Sold orders of the person.';
COMMENT ON COLUMN bi.customer_lifetime_value.total_spent_cents IS 'Payments of those orders, integer cents (BRL).';
COMMENT ON COLUMN bi.customer_lifetime_value.avg_order_value_cents IS 'total_spent_cents / orders, exact decimal cents.';
COMMENT ON COLUMN bi.customer_lifetime_value.first_order_at IS 'First purchase, timestamptz (UTC).';
COMMENT ON COLUMN bi.customer_lifetime_value.last_order_at IS 'Latest purchase, timestamptz (UTC).';
COMMENT ON COLUMN bi.customer_lifetime_value.days_since_last_order IS 'Days from the latest purchase to the data''s last purchase day.';
COMMENT ON COLUMN bi.customer_lifetime_value.churned IS 'days_since_last_order > 90.';
COMMENT ON COLUMN bi.customer_lifetime_value.recency_score IS 'Recency quintile, 5 = most recent.';
COMMENT ON COLUMN bi.customer_lifetime_value.frequency_score IS 'Order count capped at 5.';
COMMENT ON COLUMN bi.customer_lifetime_value.monetary_score IS 'Spending quintile, 5 = highest.';
COMMENT ON COLUMN bi.customer_lifetime_value.rfm_segment IS 'Champions, Loyal, New, Promising, At risk or Hibernating.';

CREATE OR REPLACE VIEW bi.clv_segments AS
SELECT rfm_segment, customers, total_spent_cents, churned_customers
  FROM public.clv_segments;
COMMENT ON VIEW bi.clv_segments IS
    'Customers per RFM segment (sizes of bi.customer_lifetime_value). Key: rfm_segment. Money in integer cents (BRL).';
COMMENT ON COLUMN bi.clv_segments.rfm_segment IS 'Segment name, as in bi.customer_lifetime_value.';
COMMENT ON COLUMN bi.clv_segments.customers IS 'People in the segment.';
COMMENT ON COLUMN bi.clv_segments.total_spent_cents IS 'Their payments, integer cents (BRL).';
COMMENT ON COLUMN bi.clv_segments.churned_customers IS 'Of them, churned (no order for 90 days).';
