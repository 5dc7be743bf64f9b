"""The analytics views themselves: CLV, anomalies, refresh, and `etl export`."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from etl import cli
from etl.publish import aggregates, analytics
from etl.run import setup
from etl.run.pipeline import refresh_aggregates_stage
from etl.warehouse import connection as db
from tests.conftest import query, scalar


def test_customer_lifetime_value_equals_the_source(warehouse, source):
    sold, payments = source["sold"], source["payments"]
    paid = sold.merge(
        payments.groupby("order_id")["value_cents"].sum().reset_index(), on="order_id", how="left"
    )
    expected = paid.groupby("customer_unique_id").agg(
        orders=("order_id", "size"), spent=("value_cents", "sum"), last_day=("day", "max")
    )
    got = (
        pd.DataFrame(
            query(
                warehouse,
                "SELECT customer_unique_id, orders, total_spent_cents, "
                "days_since_last_order, churned, rfm_segment FROM customer_lifetime_value",
            ),
            columns=["customer_unique_id", "orders", "spent", "days", "churned", "segment"],
        )
        .set_index("customer_unique_id")
        .sort_index()
    )
    assert len(got) == len(expected)
    assert (got["orders"] == expected["orders"]).all()
    assert (got["spent"] == expected["spent"].astype("int64")).all()
    data_last_day = date.fromisoformat(sold["day"].max())
    days = expected["last_day"].map(lambda d: (data_last_day - date.fromisoformat(d)).days)
    assert (got["days"] == days).all()
    assert (got["churned"] == (days > 90)).all()
    assert set(got["segment"]) <= {"Champions", "Loyal", "New", "Promising", "At risk", "Hibernating"}
    # Repeat buyers who bought recently are never called hibernating.
    recent_repeat = got[(got["orders"] >= 2) & (got["days"] <= 30)]
    assert not recent_repeat.empty and "Hibernating" not in set(recent_repeat["segment"])


def test_anomaly_records_are_the_orders_with_z_above_3(warehouse, source):
    items = source["sold_items"]
    oc = (
        items.groupby(["order_id", "category", "month"])
        .agg(value=("price_cents", "sum"), n=("price_cents", "size"))
        .reset_index()
    )
    group = oc.groupby(["category", "month"])
    z_value = (oc["value"] - group["value"].transform("mean")) / group["value"].transform("std")
    z_items = (oc["n"] - group["n"].transform("mean")) / group["n"].transform("std")
    flagged = oc[(z_value.abs() > 3) | (z_items.abs() > 3)]
    expected = set(zip(flagged["order_id"], flagged["category"]))
    got = {(o, c) for o, c in query(warehouse, "SELECT order_id, category FROM anomaly_records")}
    assert got == expected and len(got) > 100


def test_category_map_says_what_olist_has_instead_of_discounts(warehouse, source):
    items = source["sold_items"]
    beauty = items[items["category"] == "health_beauty"]
    ((avg_price, freight_ratio, installments, voucher),) = query(
        warehouse,
        "SELECT avg_price_cents, freight_ratio, avg_installments, voucher_share "
        "FROM category_discount_map WHERE category = 'health_beauty'",
    )
    assert float(avg_price) == pytest.approx(beauty["price_cents"].mean(), abs=0.005)
    assert float(freight_ratio) == pytest.approx(
        beauty["freight_cents"].sum() / beauty["price_cents"].sum(), abs=0.00005
    )
    assert 1 <= installments <= 24 and 0 <= voucher < 1


def test_a_new_warehouse_fills_its_analytics_then_follows_a_change_of_one_day(fresh_db):
    """``etl db refresh`` (all of time) on a new warehouse, then a queued day only."""
    setup.init_schema(fresh_db)
    conn = db.connect(fresh_db.database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO dim_dates (date_key, full_date, year, quarter, month, month_name, "
                "day_of_month, day_of_week, day_name, week_of_year, is_weekend) "
                "VALUES (20180105, '2018-01-05', 2018, 1, 1, 'January', 5, 5, 'Friday', 1, false)"
            )
            cur.execute(
                "INSERT INTO dim_customers (customer_id, customer_unique_id, zip_code_prefix, city, state) "
                "VALUES (md5('c'), md5('u'), '01000', 'sao paulo', 'SP')"
            )
            cur.execute(
                "INSERT INTO fact_orders (order_id, customer_id, order_status, purchased_at, "
                "purchase_date_key) VALUES (md5('o'), md5('c'), 'delivered', '2018-01-05 12:00+00', 20180105)"
            )
            cur.execute(
                "INSERT INTO fact_order_items (order_id, order_item_id, product_id, seller_id, "
                "shipping_limit_at, price_cents, freight_cents) "
                "VALUES (md5('o'), 1, md5('p'), md5('s'), '2018-01-06', 1234, 100)"
            )
    finally:
        conn.close()
    timings = analytics.refresh(fresh_db)
    assert set(timings) == set(analytics.REFRESHED)
    assert scalar(fresh_db, "SELECT revenue_cents FROM sales_daily_state") == 1234
    assert scalar(fresh_db, "SELECT count(*) FROM aggregate_refresh_queue") == 0

    conn = db.connect(fresh_db.database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE fact_order_items SET price_cents = 2000")
            aggregates.queue_days(cur, "edit", [date(2018, 1, 5)], fresh_db.source_timezone)
    finally:
        conn.close()
    result = refresh_aggregates_stage(fresh_db, "edit")
    assert result["ranges"] == 1 and result["buckets"]["sales_daily_items"] == 1
    assert scalar(fresh_db, "SELECT revenue_cents FROM sales_daily_state") == 2000
    assert scalar(fresh_db, "SELECT revenue_cents FROM sales_monthly_state") == 2000
    assert query(
        fresh_db,
        "SELECT category, items, orders, revenue_cents, avg_installments, voucher_share "
        "FROM category_discount_map",
    ) == [("UNKNOWN", 1, 1, 2000, None, None)]
    assert query(fresh_db, "SELECT product_id = md5('p'), revenue_cents, revenue_rank FROM top_products") == [
        (True, 2000, 1)
    ]
    assert scalar(fresh_db, "SELECT days_since_last_order FROM customer_lifetime_value") == 0
    assert query(fresh_db, "SELECT customer_state, customers FROM region_customers") == [("SP", 1)]


def test_views_survive_a_second_db_init(warehouse):
    setup.init_schema(warehouse)
    assert scalar(warehouse, "SELECT count(*) FROM top_products") > 10_000


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_etl_export_writes_every_view(warehouse, tmp_path, monkeypatch, capsys, fmt):
    monkeypatch.setenv("DATABASE_URL", warehouse.database_url)
    assert cli.main(["export", "--format", fmt, "--out", str(tmp_path)]) == 0
    assert "monthly_sales_summary" in capsys.readouterr().out
    for view in analytics.EXPORT_VIEWS:
        path = tmp_path / f"{view}.{fmt}"
        frame = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
        assert len(frame) == scalar(warehouse, f"SELECT count(*) FROM {view}"), view
    monthly = (
        pd.read_csv(tmp_path / "monthly_sales_summary.csv")
        if fmt == "csv"
        else pd.read_parquet(tmp_path / "monthly_sales_summary.parquet")
    )
    assert int(monthly["revenue_cents"].sum()) == scalar(
        warehouse, "SELECT sum(revenue_cents) FROM sales_daily_state"
    )
    assert not list(tmp_path.glob(".*.tmp"))


def test_etl_export_rejects_an_unknown_format(warehouse, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", warehouse.database_url)
    with pytest.raises(SystemExit):
        cli.main(["export", "--format", "xlsx", "--out", str(tmp_path)])
    assert "invalid choice: 'xlsx'" in capsys.readouterr().err


def test_etl_db_refresh(warehouse, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", warehouse.database_url)
    assert cli.main(["db", "refresh"]) == 0
    assert f"refreshed {len(analytics.REFRESHED)} analytics views" in capsys.readouterr().out
