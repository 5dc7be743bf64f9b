"""Incremental analytics equal a full build, to the cent.

The subset is loaded in two increments -- everything bought before 2017-12-01,
then the rest together with late corrections to orders a year and more old
(statuses, prices, a payment) -- and compared, relation by relation and column
by column, with a warehouse that loaded the final files in one run, and with
a full rebuild (``etl db refresh``) of the incremental warehouse itself.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd
import pytest

from etl.publish import aggregates, analytics
from etl.run.pipeline import ingest_stage, load_stage, refresh_aggregates_stage, transform_stage
from etl.run.stages import run_pipeline
from etl.warehouse import connection as db
from tests.conftest import _new_database_url, make_settings, query, scalar

pytestmark = pytest.mark.slow

#: Every relation a dashboard, Streamlit page, export or BI tool reads, with its key order.
RELATIONS = (
    "hourly_sales",
    "daily_customer_metrics",
    "sales_daily_state",
    "sales_monthly_state",
    "sales_monthly_category",
    "monthly_sales_summary",
    "top_products",
    "region_wise_performance",
    "category_discount_map",
    "anomaly_records",
    "customer_lifetime_value",
    "clv_segments",
)
CUTOFF = "2017-12-01"
ORDER_FILES = ("order_items", "order_payments", "order_reviews")


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _write(frame: pd.DataFrame, path: Path) -> None:
    with gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=1) as fh:
        frame.to_csv(fh, index=False)


def _increments(olist_dir: Path, root: Path) -> tuple[Path, Path]:
    """(first increment, final files): the final files correct old orders."""
    first, final = root / "first" / "olist", root / "final" / "olist"
    for target in (first, final):
        target.mkdir(parents=True)
        for path in olist_dir.glob("*.csv.gz"):
            shutil.copy(path, target / path.name)
    orders = _read(olist_dir / "olist_orders_dataset.csv.gz")
    early = orders[orders["order_purchase_timestamp"] < CUTOFF]
    _write(early, first / "olist_orders_dataset.csv.gz")
    for name in ORDER_FILES:
        frame = _read(olist_dir / f"olist_{name}_dataset.csv.gz")
        _write(frame[frame["order_id"].isin(early["order_id"])], first / f"olist_{name}_dataset.csv.gz")

    # Late corrections, in the final files: old orders canceled, re-priced, re-paid.
    delivered_2017 = orders[
        (orders["order_status"] == "delivered") & (orders["order_purchase_timestamp"] < "2017-06-01")
    ]
    canceled = delivered_2017["order_id"].iloc[:15]
    orders.loc[orders["order_id"].isin(canceled), "order_status"] = "canceled"
    _write(orders, final / "olist_orders_dataset.csv.gz")
    items = _read(olist_dir / "olist_order_items_dataset.csv.gz")
    repriced = items["order_id"].isin(delivered_2017["order_id"].iloc[20:40])
    items.loc[repriced, "price"] = (items.loc[repriced, "price"].astype(float) + 7.5).map("{:.2f}".format)
    _write(items, final / "olist_order_items_dataset.csv.gz")
    payments = _read(olist_dir / "olist_order_payments_dataset.csv.gz")
    oldest = payments["order_id"].isin(delivered_2017["order_id"].iloc[40:45])
    payments.loc[oldest, "payment_type"] = "voucher"
    payments.loc[oldest, "payment_value"] = (payments.loc[oldest, "payment_value"].astype(float) + 3).map(
        "{:.2f}".format
    )
    _write(payments, final / "olist_order_payments_dataset.csv.gz")
    return first, final


def _ordered(settings, name: str) -> list[tuple]:
    rows = query(settings, f"SELECT * FROM {name}")
    return sorted(rows, key=lambda r: tuple((v is None, str(v)) for v in r))


def everything(settings) -> dict[str, list[tuple]]:
    return {name: _ordered(settings, name) for name in RELATIONS}


@pytest.fixture(scope="module")
def builds(olist_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("increments")
    first, final = _increments(olist_dir, root)
    incremental = make_settings(_new_database_url(), staging_dir=root / "staging-inc")
    full = make_settings(_new_database_url(), staging_dir=root / "staging-full")
    try:
        run_pipeline(incremental, data_dir=first, run_id="inc-1")
        # The second increment step by step, to see what it queued.
        ingest_stage(incremental, "inc-2", final)
        transform_stage(incremental, "inc-2")
        load_stage(incremental, "inc-2")
        queued = query(incremental, "SELECT range_start FROM aggregate_refresh_queue ORDER BY 1")
        refresh_aggregates_stage(incremental, "inc-2")
        run_pipeline(full, data_dir=final, run_id="full-1")
        yield incremental, full, queued
    finally:
        db.drop_database(incremental.database_url)
        db.drop_database(full.database_url)


def test_two_increments_equal_one_full_build_to_the_cent(builds):
    incremental, full, _ = builds
    got, expected = everything(incremental), everything(full)
    for name in RELATIONS:
        assert len(got[name]) > 0, name
        assert got[name] == expected[name], name


def test_the_second_increment_touched_its_days_and_the_corrected_history_only(builds):
    incremental, _, queued = builds
    days = [r[0] for r in queued]
    new = [d for d in days if d.isoformat() >= CUTOFF]
    old = [d for d in days if d.isoformat() < "2017-06-01"]
    assert 0 < len(old) <= 45  # the corrected orders' days, a year and more before the run
    assert len(new) > 100 and len(old) + len(new) == len(days)  # nothing else
    assert scalar(incremental, "SELECT count(*) FROM aggregate_refresh_queue") == 0


def test_a_full_rebuild_changes_nothing(builds):
    incremental, _, _ = builds
    before = everything(incremental)
    timings = analytics.refresh(incremental)
    assert set(timings) == set(analytics.REFRESHED)
    assert everything(incremental) == before


def test_a_failed_refresh_keeps_the_queue_and_the_next_one_drains_it(builds):
    incremental, _, _ = builds
    before = everything(incremental)
    conn = db.connect(incremental.database_url)
    try:
        with conn, conn.cursor() as cur:
            # A late price correction of a 2016 order, queued as a load would.
            cur.execute(
                "SELECT o.order_id, o.purchased_at FROM fact_orders o JOIN fact_order_items i USING (order_id) "
                "WHERE o.order_status = 'delivered' ORDER BY o.purchased_at LIMIT 1"
            )
            order_id, purchased_at = cur.fetchone()
            cur.execute(
                "UPDATE fact_order_items SET price_cents = price_cents + 1 WHERE order_id = %s", (order_id,)
            )
            cur.execute(
                "SELECT (%s::timestamptz AT TIME ZONE %s)::date", (purchased_at, incremental.source_timezone)
            )
            day = cur.fetchone()[0]
            aggregates.queue_days(cur, "late-fix", [day], incremental.source_timezone)
            # Break one derived table's refresh: the drain must fail and dequeue nothing.
            cur.execute("ALTER TABLE clv_segments RENAME TO clv_segments_away")
        with pytest.raises(Exception, match="clv_segments"):
            refresh_aggregates_stage(incremental, "late-fix")
        assert (
            scalar(incremental, "SELECT count(*) FROM aggregate_refresh_queue WHERE run_id = 'late-fix'") == 1
        )
        assert _ordered(incremental, "sales_monthly_state") == before["sales_monthly_state"]
        with conn, conn.cursor() as cur:
            cur.execute("ALTER TABLE clv_segments_away RENAME TO clv_segments")
        result = refresh_aggregates_stage(incremental, "next-run")
        assert result["ranges"] == 1
        assert scalar(incremental, "SELECT count(*) FROM aggregate_refresh_queue") == 0
        after = everything(incremental)
        items = scalar(incremental, "SELECT count(*) FROM fact_order_items WHERE order_id = %s", (order_id,))
        assert scalar(incremental, "SELECT sum(revenue_cents) FROM sales_monthly_state") == items + sum(
            r[6] for r in before["sales_monthly_state"]
        )
        assert after["clv_segments"] == before["clv_segments"]  # prices are not payments
    finally:
        with conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE fact_order_items SET price_cents = price_cents - 1 WHERE order_id = %s", (order_id,)
            )
            aggregates.queue_days(cur, "undo", [day], incremental.source_timezone)
        conn.close()
        refresh_aggregates_stage(incremental, "undo")
