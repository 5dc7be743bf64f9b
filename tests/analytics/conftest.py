"""One warehouse for all analytics tests: the Olist subset loaded by the real pipeline.

Loading takes ~15 s, so the database is shared by this folder's modules
(session scope) instead of once per module; it is created with the same
helpers as ``module_db`` and dropped at the end. A second run loads a copy of
the subset with a few broken rows appended, so quarantine and run history are
real, and so are the quality scores the transform stores for both runs.
"""

from __future__ import annotations

import gzip
import shutil
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from etl.run import setup
from etl.run.stages import run_pipeline
from etl.warehouse import connection as db
from tests.conftest import _new_database_url, as_login, make_settings

SOLD_EXCLUDED = {"canceled", "unavailable"}


def _append_rows(source: Path, target: Path, lines: list[str]) -> None:
    with gzip.open(source, "rt", encoding="utf-8", newline="") as fh:
        text = fh.read()
    if not text.endswith("\n"):
        text += "\n"
    with gzip.open(target, "wt", encoding="utf-8", newline="", compresslevel=1) as fh:
        fh.write(text + "".join(line + "\n" for line in lines))


def _broken_copy(olist_dir: Path, target: Path) -> Path:
    """The subset plus rows every one of which must be quarantined."""
    target.mkdir()
    for path in olist_dir.glob("*.csv.gz"):
        shutil.copy(path, target / path.name)
    orders = olist_dir / "olist_orders_dataset.csv.gz"
    with gzip.open(orders, "rt", encoding="utf-8") as fh:
        fh.readline()
        first_order = fh.readline().rstrip("\r\n")
    _append_rows(
        orders,
        target / orders.name,
        [
            first_order,  # DUPLICATE
            "ffffffffffffffffffffffffffff0001,ffffffffffffffffffffffffffff0002,delivered,"
            "02/10/2017,,,,",  # DATA_FORMAT_ERROR
            ",ffffffffffffffffffffffffffff0003,delivered,2017-10-02 10:00:00,,,,",  # MISSING_REQUIRED
        ],
    )
    items = olist_dir / "olist_order_items_dataset.csv.gz"
    with gzip.open(items, "rt", encoding="utf-8") as fh:
        fh.readline()
        product, seller = fh.readline().split(",")[2:4]
    _append_rows(
        items,
        target / items.name,
        [
            f"eeeeeeeeeeeeeeeeeeeeeeeeeeee0001,1,{product},{seller},2017-10-02 10:00:00,10.00,1.00",  # orphan
        ],
    )
    return target


#: The logins `etl db init` creates (tests/analytics/test_roles.py). Roles are
#: cluster-wide, so every warehouse on the test server shares them; the local
#: server trusts loopback, so the passwords only prove they are set.
LOGIN_PASSWORDS = {
    "pipeline_password": "test-pipeline-pw",
    "dashboard_password": "test-dashboard-pw",
    "bi_password": "test-bi-pw",
}


@pytest.fixture(scope="session")
def warehouse(olist_dir, tmp_path_factory):
    """Settings (administrator) of a warehouse holding the Olist subset, two runs and their quarantine.

    `etl db init` runs as the administrator (creating the roles and logins); the
    loads run as the pipeline's own login, as in production.
    """
    url = _new_database_url()
    admin = make_settings(url, staging_dir=tmp_path_factory.mktemp("staging"), **LOGIN_PASSWORDS)
    try:
        setup.init_schema(admin)
        settings = as_login(admin, admin.pipeline_login, admin.pipeline_password)
        run_pipeline(settings, data_dir=olist_dir, run_id="subset-1")
        broken = _broken_copy(olist_dir, tmp_path_factory.mktemp("broken") / "olist")
        # The default gate (seed 001: overall >= 80, nulls <= 20 %, duplicates <= 5 %) lets
        # these few bad rows through to the quarantine, so the pages have some to show.
        run_pipeline(settings, data_dir=broken, run_id="subset-2-broken-rows")
        yield admin
    finally:
        db.drop_database(url)


@pytest.fixture(scope="session")
def dashboard_settings(warehouse):
    """The warehouse as the dashboards reach it: their own login (dashboard_reader)."""
    return as_login(warehouse, warehouse.dashboard_login, warehouse.dashboard_password)


@pytest.fixture(scope="session")
def bi_settings(warehouse):
    """The warehouse as a BI tool reaches it: the BI login (bi_reader)."""
    return as_login(warehouse, warehouse.bi_login, warehouse.bi_password)


# --- the figures, computed independently from the source CSVs with pandas -------------------


def _cents(text: pd.Series) -> pd.Series:
    """'12.3' -> 1230 exactly (decimal arithmetic, no float rounding)."""

    def one(value: str) -> int:
        cents = Decimal(value) * 100
        assert cents == cents.to_integral_value(), value
        return int(cents)

    return text.map(one).astype("int64")


@pytest.fixture(scope="session")
def source(olist_dir) -> dict[str, pd.DataFrame]:
    def read(name: str) -> pd.DataFrame:
        return pd.read_csv(olist_dir / f"olist_{name}_dataset.csv.gz", dtype=str, keep_default_na=False)

    orders = read("orders")
    customers = read("customers")
    items = read("order_items")
    payments = read("order_payments")
    products = read("products")
    translation = pd.read_csv(
        olist_dir / "product_category_name_translation.csv.gz", dtype=str, encoding="utf-8-sig"
    )
    items["price_cents"] = _cents(items["price"])
    items["freight_cents"] = _cents(items["freight_value"])
    payments["value_cents"] = _cents(payments["payment_value"])
    orders = orders.merge(
        customers[["customer_id", "customer_unique_id", "customer_state"]], on="customer_id", how="left"
    )
    # Source timestamps are São Paulo wall-clock, so the month is the text's month.
    orders["month"] = orders["order_purchase_timestamp"].str[:7]
    orders["day"] = orders["order_purchase_timestamp"].str[:10]
    sold = orders[~orders["order_status"].isin(SOLD_EXCLUDED)]
    category = products.merge(translation, on="product_category_name", how="left")
    category["category"] = (
        category["product_category_name_english"]
        .fillna(category["product_category_name"].replace("", None))
        .fillna("UNKNOWN")
    )  # the lookup's bucket, imputed by transform
    sold_items = items.merge(
        sold[["order_id", "customer_state", "month", "day", "customer_unique_id"]], on="order_id"
    ).merge(category[["product_id", "category"]], on="product_id", how="left")
    return {"orders": orders, "sold": sold, "sold_items": sold_items, "payments": payments}
