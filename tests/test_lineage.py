"""Source lineage: API orders land with source_system/source_id, and lead back to their archived payload."""

from __future__ import annotations

import contextlib
import gzip
import json

from streamlit.testing.v1 import AppTest

from dashboard.app import create_app
from dashboard.config import DashboardConfig
from etl.ingest import lineage, runner
from etl.ingest.records import vendor_id
from etl.run import replay
from etl.settings import PROJECT_ROOT
from tests.conftest import member_login, query
from tests.test_cli import etl
from tests.test_ingest_api import SYSTEM_IDS, ScaledClock, secrets, server, settings_for  # noqa: F401

VENDORS = ["shopify", "stripe", "woocommerce"]


def test_every_api_order_has_its_lineage_and_its_archived_payload(server, fresh_db, tmp_path, monkeypatch):  # noqa: F811
    with contextlib.ExitStack() as stack:
        _every_api_order(stack, server, fresh_db, tmp_path, monkeypatch)


def _every_api_order(stack, vendors, fresh_db, tmp_path, monkeypatch):
    settings = settings_for(fresh_db, tmp_path, {v: vendors.url for v in SYSTEM_IDS})
    replay.ingest_and_load(settings, "run-lineage", resources=runner.Resources(clock=ScaledClock()))
    rows = query(settings, "SELECT order_id, source_system, source_id, currency FROM fact_orders")
    assert len(rows) == 21  # 7 per vendor
    assert all(system and source_id for _, system, source_id, _ in rows), rows
    for vendor in VENDORS:
        by_id = {str(r["id"]): r for r in vendors.data[vendor]}
        mine = [r for r in rows if r[1] == vendor]
        assert {r[2] for r in mine} == set(by_id)
        for order_id, system, source_id, _ in mine:
            assert order_id == vendor_id(system, "order", source_id)  # the documented id mapping
        # the lineage leads a person from a warehouse row to the raw record as received
        order_id = mine[0][0]
        system, source_id = lineage.warehouse_lineage(settings, "fact_orders", "order_id", order_id)
        (hit,) = lineage.find_raw(settings, system, source_id)
        assert hit.record == by_id[source_id]
        archived = settings.staging_dir / hit.location
        page = json.loads(gzip.decompress(archived.read_bytes()))
        records = page["orders"] if vendor == "shopify" else page["data"] if vendor == "stripe" else page
        assert by_id[source_id] in records
    # lineage rides on the other tables vendor records land in, too
    assert query(settings, "SELECT count(*) FROM fact_payments WHERE source_system IS NULL") == [(0,)]
    assert query(settings, "SELECT count(*) FROM dim_customers WHERE source_system IS NULL") == [(0,)]
    assert query(settings, "SELECT DISTINCT currency FROM fact_orders WHERE source_system = 'stripe'")[0][0]
    # ... and in the analytics views: each order line and order says its source
    lines = dict(
        query(settings, "SELECT source_system, count(DISTINCT source_id) FROM order_lines GROUP BY 1")
    )
    assert lines == {"shopify": 7, "woocommerce": 7}  # Stripe charges have no items
    by_source = dict(query(settings, "SELECT source_system, sum(orders) FROM sales_by_source GROUP BY 1"))
    sold = dict(query(settings, "SELECT source_system, count(*) FROM sales_orders GROUP BY 1"))
    assert by_source == sold and set(sold) <= set(VENDORS)
    # the dashboards: Flask's sales-by-source and Streamlit's source filter
    dashboard = stack.enter_context(member_login(settings, "dashboard_reader"))
    app = create_app(DashboardConfig(settings=dashboard, cache_seconds=0))
    shown = app.test_client().get("/api/sources").get_json()["data"]
    assert {r["source_system"]: r["orders"] for r in shown} == sold
    app.extensions["warehouse"].close()
    streamlit = AppTest.from_file(str(PROJECT_ROOT / "dashboard" / "streamlit_app.py"), default_timeout=60)
    monkeypatch.setenv("DATABASE_URL", dashboard.database_url)
    streamlit.run()
    assert "shopify" in streamlit.sidebar.selectbox(key="source").options
    streamlit.sidebar.selectbox(key="source").select("shopify").run()
    assert not streamlit.exception
    raw = streamlit.dataframe[0].value
    assert len(raw) == lines["shopify"] * 3 and set(raw["source_system"]) == {"shopify"}


def test_cli_prints_the_archived_record_of_an_order(server, fresh_db, tmp_path):  # noqa: F811
    settings = settings_for(fresh_db, tmp_path, {v: server.url for v in SYSTEM_IDS}, only=["stripe"])
    replay.ingest_and_load(settings, "run-lineage-cli", resources=runner.Resources(clock=ScaledClock()))
    charge = server.data["stripe"][0]
    oid = vendor_id("stripe", "order", charge["id"])
    env = {
        "DATABASE_URL": settings.database_url,
        "ETL_SOURCES_FILE": str(settings.sources_file),
        "ETL_STAGING_DIR": str(settings.staging_dir),
    }
    proc = etl("lineage", "--order", oid, env=env)
    assert proc.returncode == 0, proc.stderr
    first, *rest = proc.stdout.splitlines()
    assert first == f"fact_orders {oid}: source_system stripe, source_id {charge['id']}"
    assert any("raw/stripe/" in line for line in rest)
    assert json.loads("\n".join(rest[rest.index("record:") + 1 :])) == charge


def test_olist_rows_have_no_lineage_and_say_so(fresh_db):
    proc = etl("run", env={"DATABASE_URL": fresh_db.database_url})
    assert proc.returncode == 0, proc.stderr
    (oid,) = query(fresh_db, "SELECT order_id FROM fact_orders LIMIT 1")[0]
    assert lineage.warehouse_lineage(fresh_db, "fact_orders", "order_id", oid) is None
    proc = etl("lineage", "--order", oid, env={"DATABASE_URL": fresh_db.database_url})
    assert proc.returncode == 0 and "came from the Olist files" in proc.stdout
    assert (PROJECT_ROOT / "data" / "sample" / "olist").is_dir()
