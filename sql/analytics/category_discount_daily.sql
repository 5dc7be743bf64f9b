-- category_discount_daily: per touched day x category, the order x category
-- pairs and the payments of their orders. Payment figures ignore orders
-- without payments (an inner join's figures, as before).
DELETE FROM category_discount_daily c USING etl_touched_days d
 WHERE c.purchase_date >= d.lo AND c.purchase_date < d.hi;
INSERT INTO category_discount_daily
WITH oc AS (
    SELECT v.* FROM etl_touched_days d
      JOIN order_category_values v ON v.purchase_date >= d.lo AND v.purchase_date < d.hi
), pay AS (
    SELECT order_id, sum(payment_value_cents) AS paid_cents,
           coalesce(sum(payment_value_cents) FILTER (WHERE payment_type = 'voucher'), 0) AS voucher_cents,
           max(payment_installments) AS installments
      FROM fact_payments WHERE order_id IN (SELECT order_id FROM oc) GROUP BY order_id
)
SELECT oc.purchase_date, oc.category, count(*), sum(oc.items), sum(oc.value_cents), sum(oc.freight_cents),
       sum(p.installments), count(p.installments), sum(p.voucher_cents), sum(p.paid_cents)
  FROM oc LEFT JOIN pay p USING (order_id)
 GROUP BY oc.purchase_date, oc.category;
