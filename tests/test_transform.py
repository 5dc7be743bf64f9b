"""Transform rules on small hand-made frames (no database needed)."""

import json

import pandas as pd

from etl import transform
from etl.olist import CUSTOMERS, ORDER_ITEMS, ORDERS, PAYMENTS, REVIEWS, ROW_NUMBER


def raw(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, dtype="string").replace("", pd.NA)  # as ingest.read gives it
    frame[ROW_NUMBER] = range(2, len(frame) + 2)
    return frame


OID = "a" * 32
CID = "b" * 32


def order(**changes) -> dict:
    row = {
        "order_id": OID,
        "customer_id": CID,
        "order_status": "delivered",
        "order_purchase_timestamp": "2017-10-02 10:56:33",
        "order_approved_at": "2017-10-02 11:07:15",
        "order_delivered_carrier_date": "",
        "order_delivered_customer_date": "",
        "order_estimated_delivery_date": "2017-10-18 00:00:00",
    }
    row.update(changes)
    return row


def customers_ref(*ids: str) -> dict[str, pd.DataFrame]:
    return {"dim_customers": pd.DataFrame({"customer_id": list(ids)})}


def test_timestamps_become_utc_from_sao_paulo_time():
    result = transform.transform_table(ORDERS, raw([order()]), reference_keys=customers_ref(CID))
    purchased = result.clean.loc[0, "purchased_at"]
    assert str(purchased.tz) == "UTC"
    assert purchased == pd.Timestamp("2017-10-02 13:56:33", tz="UTC")  # São Paulo was UTC-3
    assert pd.isna(result.clean.loc[0, "delivered_carrier_at"])


def test_daylight_saving_gap_and_overlap_do_not_reject_rows():
    # Brazil's DST began at midnight on 2017-10-15 (that hour did not exist)
    # and ended on 2018-02-17 at midnight (23:00-23:59 happened twice).
    rows = [
        order(order_id=f"{i:032x}", order_purchase_timestamp=ts)
        for i, ts in enumerate(["2017-10-15 00:30:00", "2018-02-17 23:30:00"])
    ]
    result = transform.transform_table(ORDERS, raw(rows), reference_keys=customers_ref(CID))
    assert result.quarantined.empty
    assert list(result.clean["purchased_at"].astype(str)) == [
        "2017-10-15 03:30:00+00:00",
        "2018-02-18 02:30:00+00:00",
    ]


def test_money_becomes_exact_integer_cents():
    items = raw(
        [
            {
                "order_id": OID,
                "order_item_id": "1",
                "product_id": "c" * 32,
                "seller_id": "d" * 32,
                "shipping_limit_date": "2017-10-06 11:07:15",
                "price": "216.87",
                "freight_value": "0.10",
            }
        ]
    )
    refs = {
        "fact_orders": pd.DataFrame({"order_id": [OID]}),
        "dim_products": pd.DataFrame({"product_id": ["c" * 32]}),
        "dim_sellers": pd.DataFrame({"seller_id": ["d" * 32]}),
    }
    result = transform.transform_table(ORDER_ITEMS, items, reference_keys=refs)
    assert result.clean.loc[0, "price_cents"] == 21687
    assert result.clean.loc[0, "freight_cents"] == 10


def test_zip_prefixes_are_zero_padded_and_states_upper_cased():
    rows = raw(
        [
            {
                "customer_id": CID,
                "customer_unique_id": "e" * 32,
                "customer_zip_code_prefix": "1001",
                "customer_city": "sao paulo",
                "customer_state": "sp",
            }
        ]
    )
    result = transform.transform_table(CUSTOMERS, rows)
    assert result.clean.loc[0, "zip_code_prefix"] == "01001"
    assert result.clean.loc[0, "state"] == "SP"


def test_each_bad_row_is_quarantined_once_with_its_reason():
    rows = [
        order(),  # good
        order(order_id=""),  # missing key
        order(order_id="f" * 32, order_purchase_timestamp="02/10/2017"),  # bad date
        order(order_id="1" * 32, order_status="teleported"),  # unknown status
        order(),  # duplicate of row 2
        order(order_id="2" * 32, customer_id="9" * 32),  # orphan customer
        order(order_id="not-an-id"),  # bad id format
    ]
    result = transform.transform_table(ORDERS, raw(rows), reference_keys=customers_ref(CID))
    q = result.quarantined.set_index("row_number")
    assert result.rows_read == 7 and len(result.clean) == 1 and len(q) == 6
    assert q.loc[3, "category"] == "MISSING_REQUIRED_FIELD" and q.loc[3, "rule"] == "required:order_id"
    assert q.loc[4, "category"] == "DATA_FORMAT_ERROR" and "02/10/2017" in q.loc[4, "detail"]
    assert q.loc[5, "category"] == "BUSINESS_RULE_VIOLATION" and q.loc[5, "rule"] == "order_status_known"
    assert q.loc[6, "category"] == "DUPLICATE" and "duplicate of row 2" in q.loc[6, "detail"]
    assert q.loc[7, "category"] == "REFERENTIAL_INTEGRITY" and "dim_customers" in q.loc[7, "detail"]
    assert q.loc[8, "category"] == "DATA_FORMAT_ERROR" and q.loc[8, "rule"] == "format:order_id"
    # the raw record is kept exactly as read, for a person to fix
    assert json.loads(q.loc[4, "raw_record"])["order_purchase_timestamp"] == "02/10/2017"
    assert json.loads(q.loc[3, "raw_record"])["order_id"] is None


def test_business_rules_on_payments_and_reviews():
    payments = raw(
        [
            {
                "order_id": OID,
                "payment_sequential": "1",
                "payment_type": "voucher",
                "payment_installments": "1",
                "payment_value": "0.00",
            },  # zero voucher: real, kept
            {
                "order_id": OID,
                "payment_sequential": "2",
                "payment_type": "credit_card",
                "payment_installments": "1",
                "payment_value": "-5.00",
            },  # negative: rejected
            {
                "order_id": OID,
                "payment_sequential": "3",
                "payment_type": "barter",
                "payment_installments": "1",
                "payment_value": "5.00",
            },  # unknown type: rejected
        ]
    )
    result = transform.transform_table(
        PAYMENTS, payments, reference_keys={"fact_orders": pd.DataFrame({"order_id": [OID]})}
    )
    assert list(result.clean["payment_sequential"]) == [1]
    assert sorted(result.quarantined["rule"]) == ["payment_not_negative", "payment_type_known"]

    reviews = raw(
        [
            {
                "review_id": "c" * 32,
                "order_id": OID,
                "review_score": "6",
                "review_comment_title": "",
                "review_comment_message": "",
                "review_creation_date": "2018-01-01 00:00:00",
                "review_answer_timestamp": "",
            }
        ]
    )
    result = transform.transform_table(
        REVIEWS, reviews, reference_keys={"fact_orders": pd.DataFrame({"order_id": [OID]})}
    )
    assert result.clean.empty and result.quarantined.loc[0, "rule"] == "review_score_1_to_5"


def test_foreign_keys_resolve_through_the_warehouse_lookup():
    seen = []

    def lookup(fk, values):
        seen.append((fk.table, sorted(values)))
        return {CID}

    result = transform.transform_table(ORDERS, raw([order()]), reference_keys={}, lookup_keys=lookup)
    assert len(result.clean) == 1 and seen == [("dim_customers", [CID])]
