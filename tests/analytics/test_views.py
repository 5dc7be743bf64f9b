"""The analytics views themselves: CLV, anomalies, refresh, and `etl export`."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from etl import cli
from etl.publish import analytics
from etl.run import setup
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


def test_refresh_of_a_new_warehouse_fills_its_empty_views_with_the_given_work_mem(fresh_db):
    """An empty view is refreshed plainly (nothing to diff against), then concurrently."""
    import psycopg2.extensions

    statements: list[str] = []

    class Recording(psycopg2.extensions.cursor):
        def execute(self, query, vars=None):
            statements.append(query.as_string(self) if hasattr(query, "as_string") else query)
            return super().execute(query, vars)

    setup.init_schema(fresh_db)
    conn = db.connect(fresh_db.database_url)
    conn.cursor_factory = Recording
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
            first = analytics.refresh_views(conn, work_mem="77MB")
            plain = [q for q in statements if q.startswith("REFRESH")]
            cur.execute("SHOW work_mem")
            assert cur.fetchone()[0] == "77MB"  # set for the refresh's own transaction only
        with conn, conn.cursor() as cur:
            cur.execute("SHOW work_mem")
            assert cur.fetchone()[0] != "77MB"
            cur.execute("UPDATE fact_order_items SET price_cents = 2000")
            second = analytics.refresh_views(conn)  # populated now: concurrently
            concurrent = [q for q in statements if q.startswith("REFRESH")][len(plain) :]
        assert list(first) == list(second) == list(analytics.MATERIALIZED_VIEWS)
        assert plain == [f'REFRESH MATERIALIZED VIEW "{v}"' for v in analytics.MATERIALIZED_VIEWS]
        # one order has no anomalies: that view is still empty, so still refreshed plainly
        assert concurrent == [
            f'REFRESH MATERIALIZED VIEW {"" if v == "anomaly_records" else "CONCURRENTLY "}"{v}"'
            for v in analytics.MATERIALIZED_VIEWS
        ]
        assert scalar(fresh_db, "SELECT revenue_cents FROM sales_daily_state") == 2000
        assert query(
            fresh_db,
            "SELECT category, items, orders, revenue_cents, avg_installments, voucher_share "
            "FROM category_discount_map",
        ) == [("UNKNOWN", 1, 1, 2000, None, None)]
        assert scalar(fresh_db, "SELECT days_since_last_order FROM customer_lifetime_value") == 0
    finally:
        conn.close()


def test_refresh_views_picks_up_new_facts(warehouse):
    before = scalar(warehouse, "SELECT sum(revenue_cents) FROM monthly_sales_summary")
    conn = db.connect(warehouse.database_url)
    try:
        with conn.cursor() as cur:  # a change inside a transaction that is rolled back
            cur.execute(
                "UPDATE fact_order_items SET price_cents = price_cents + 100 "
                "WHERE (order_id, order_item_id) = (SELECT order_id, order_item_id FROM sales_order_lines "
                "ORDER BY order_id LIMIT 1)"
            )
            timings = analytics.refresh_views(conn)
            cur.execute("SELECT sum(revenue_cents) FROM monthly_sales_summary")
            assert cur.fetchone()[0] == before + 100
        assert list(timings) == list(analytics.MATERIALIZED_VIEWS)
    finally:
        conn.rollback()
        conn.close()
    assert scalar(warehouse, "SELECT sum(revenue_cents) FROM monthly_sales_summary") == before


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
    assert f"refreshed {len(analytics.MATERIALIZED_VIEWS)} analytics views" in capsys.readouterr().out


def test_refresh_chains_keep_each_view_after_the_views_it_reads(warehouse):
    reads = query(
        warehouse,
        "SELECT DISTINCT v.relname, d.relname FROM pg_rewrite r JOIN pg_class v ON v.oid = r.ev_class "
        "JOIN pg_depend dep ON dep.objid = r.oid JOIN pg_class d ON d.oid = dep.refobjid "
        "WHERE v.relkind = 'm' AND d.relkind = 'm' AND v.oid <> d.oid",
    )
    assert reads, "some materialized view reads another (else the chains are trivial)"
    chained = [name for chain in analytics.REFRESH_CHAINS for name in chain]
    assert sorted(chained) == sorted(analytics.MATERIALIZED_VIEWS)
    chain_of = {name: chain for chain in analytics.REFRESH_CHAINS for name in chain}
    for view, read in reads:
        assert read in chain_of[view] and chain_of[view].index(read) < chain_of[view].index(view), (
            view,
            read,
        )


def test_views_refreshed_on_two_connections_equal_one_transaction(warehouse):
    def contents() -> dict:
        return {
            name: query(
                warehouse,
                f"SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text)) FROM \"{name}\" t",
            )
            for name in analytics.MATERIALIZED_VIEWS
        }

    parallel = analytics.refresh(warehouse.with_overrides(refresh_workers=2))
    after_parallel = contents()
    serial = analytics.refresh(warehouse.with_overrides(refresh_workers=1))
    assert list(parallel) == list(serial) == list(analytics.MATERIALIZED_VIEWS)
    assert contents() == after_parallel
