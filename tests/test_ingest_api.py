"""API ingestion against a real HTTP server on 127.0.0.1 with injected faults.

Time is scaled (1 "second" of backoff, Retry-After or rate-limit wait = 1 ms);
only the read timeout is real (0.3 s), because requests enforces it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from etl.ingest import archive, runner
from etl.ingest.records import vendor_id
from etl.ingest.resilience import Clock
from etl.run import replay
from etl.warehouse import connection as db
from tests.conftest import _new_database_url, make_settings, query, scalar
from tests.vendor_server import SHOPIFY_TOKEN, STRIPE_KEY, WOO_KEY, WOO_SECRET, VendorServer

SYSTEM_IDS = {
    "shopify": ("shopify", "order"),
    "stripe": ("stripe", "order"),
    "woocommerce": ("woocommerce", "order"),
}


class ScaledClock(Clock):
    """Real time divided by ``1/scale``: waits are recorded in "seconds", slept in ms."""

    def __init__(self, scale: float = 0.001) -> None:
        self.scale = scale
        self.slept: list[float] = []
        super().__init__(now=lambda: time.monotonic() / scale, sleep=self._sleep)

    def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        time.sleep(max(0.0, seconds) * self.scale)


HTTP = {
    "connect_timeout": 1,
    "read_timeout": 0.3,
    "max_attempts": 5,
    "backoff_base": 0.5,
    "rate_per_minute": 100,
    "circuit_failures": 5,
    "circuit_cooldown": 60,
}


def write_sources(
    path: Path, urls: dict[str, str], http: dict | None = None, only: list[str] | None = None
) -> Path:
    sources = [
        {
            "name": "shopify",
            "kind": "shopify",
            "base_url": urls["shopify"],
            "page_size": 3,
            "shop": "test-shop",
            "auth": {"token": {"env": "TEST_SHOPIFY_TOKEN"}},
        },
        {
            "name": "stripe",
            "kind": "stripe",
            "base_url": urls["stripe"],
            "page_size": 3,
            "auth": {"key": {"env": "TEST_STRIPE_KEY"}},
        },
        {
            "name": "woocommerce",
            "kind": "woocommerce",
            "base_url": urls["woocommerce"],
            "page_size": 3,
            "auth": {"key": {"env": "TEST_WOO_KEY"}, "secret": {"env": "TEST_WOO_SECRET"}},
        },
    ]
    sources = [s for s in sources if only is None or s["name"] in only]
    path.write_text(yaml.safe_dump({"defaults": {"http": {**HTTP, **(http or {})}}, "sources": sources}))
    return path


@pytest.fixture(autouse=True)
def secrets(monkeypatch):
    monkeypatch.setenv("TEST_SHOPIFY_TOKEN", SHOPIFY_TOKEN)
    monkeypatch.setenv("TEST_STRIPE_KEY", STRIPE_KEY)
    monkeypatch.setenv("TEST_WOO_KEY", WOO_KEY)
    monkeypatch.setenv("TEST_WOO_SECRET", WOO_SECRET)


@pytest.fixture
def server():
    with VendorServer(n=7, page_size=3) as srv:
        yield srv


def settings_for(fresh_db, tmp_path, urls, **kw):
    return fresh_db.with_overrides(sources_file=write_sources(tmp_path / "sources.yml", urls, **kw))


def warehouse_order_ids(settings, vendor: str, records: list[dict]) -> set[str]:
    ids = [vendor_id(vendor, "order", r["id"]) for r in records]
    return {
        r[0] for r in query(settings, "SELECT order_id FROM fact_orders WHERE order_id = ANY(%s)", (ids,))
    }


EVERY_FAULT = ["429", None, "empty", "repeat", "500", "502", "503", None, "slow", "reset", "invalid_json"]


@pytest.mark.parametrize("vendor", ["shopify", "stripe", "woocommerce"])
def test_every_fault_still_loads_each_record_exactly_once(vendor, server, fresh_db, tmp_path):
    settings = settings_for(fresh_db, tmp_path, {v: server.url for v in SYSTEM_IDS}, only=[vendor])
    server.faults = list(EVERY_FAULT)
    clock = ScaledClock()
    result = replay.ingest_and_load(settings, "run-faults", resources=runner.Resources(clock=clock))

    (summary,) = result["sources"]
    assert summary["status"] == "succeeded", summary["error"]
    assert server.faults == [], "every injected fault was served"
    assert summary["records_new"] == 7
    assert summary["duplicates_dropped"] >= 3  # the repeated page was seen and dropped
    assert 2.0 in clock.slept  # Retry-After: 2 honoured (429/503)

    records = server.data[vendor]
    assert len(warehouse_order_ids(settings, vendor, records)) == 7
    staged = query(settings, "SELECT count(*) FROM quarantine WHERE run_id = 'run-faults'")[0][0]
    assert staged == 0, query(settings, "SELECT table_name, rule, detail FROM quarantine")
    audit = {
        t: (r, loaded)
        for t, r, loaded in query(
            settings,
            "SELECT table_name, rows_read, rows_loaded FROM ingest_audit WHERE run_id = 'run-faults'",
        )
    }
    assert audit["fact_orders"] == (7, 7) and audit["fact_payments"] == (7, 7)

    # The archive holds every page received (200 with a JSON body, repeats and empties too).
    lines = archive.read_manifest(settings, vendor, summary["archive_day"])
    received = server.ok_pages(vendor)  # 200s with a JSON body (not slow/invalid)
    assert len(lines) == received
    archived_ids = set()
    for line, payload in archive.payloads(settings, vendor, summary["archive_day"]):
        body = json.loads(payload)
        page = body["orders"] if vendor == "shopify" else body["data"] if vendor == "stripe" else body
        assert line["records"] == len(page)
        archived_ids.update(str(r["id"]) for r in page)
    assert archived_ids == {str(r["id"]) for r in records}


def test_vendor_money_and_lineage_mapping(server, fresh_db, tmp_path):
    """Amounts land in cents; Shopify's 3 order lines become 3 items of the shop's seller."""
    settings = settings_for(fresh_db, tmp_path, {v: server.url for v in SYSTEM_IDS})
    replay.ingest_and_load(settings, "run-map", resources=runner.Resources(clock=ScaledClock()))
    first = server.data["shopify"][0]
    oid = vendor_id("shopify", "order", first["id"])
    assert scalar(
        settings, "SELECT payment_value_cents FROM fact_payments WHERE order_id = %s", (oid,)
    ) == round(float(first["total_price"]) * 100)
    assert scalar(settings, "SELECT count(*) FROM fact_order_items WHERE order_id = %s", (oid,)) == 3
    charge = server.data["stripe"][-1]  # oldest
    cid = vendor_id("stripe", "order", charge["id"])
    assert (
        scalar(settings, "SELECT payment_value_cents FROM fact_payments WHERE order_id = %s", (cid,))
        == charge["amount"]
    )
    woo = server.data["woocommerce"][0]
    wid = vendor_id("woocommerce", "order", woo["id"])
    assert scalar(
        settings, "SELECT sum(price_cents) FROM fact_order_items WHERE order_id = %s", (wid,)
    ) == sum(round(float(li["price"]) * 100) * li["quantity"] for li in woo["line_items"])
    # dimension rows repeat across orders (customers k % 3) but load once, none quarantined
    assert scalar(settings, "SELECT count(*) FROM quarantine") == 0


def test_permanent_failure_opens_the_circuit_and_keeps_the_watermark(fresh_db, tmp_path):
    with VendorServer(n=7) as broken, VendorServer(n=7) as healthy:
        urls = {"shopify": broken.url, "stripe": healthy.url, "woocommerce": healthy.url}
        settings = settings_for(fresh_db, tmp_path, urls, http={"circuit_failures": 3})
        resources = runner.Resources(clock=ScaledClock())
        first = replay.ingest_and_load(settings, "run-ok", resources=resources)
        assert all(s["status"] == "succeeded" for s in first["sources"])
        marks = dict(query(settings, "SELECT source, cursor_value FROM ingest_watermarks"))
        assert marks["shopify"] == "2024-03-01T18:00:00Z"

        broken.permanent = "503"
        before = len(broken.log)
        started = time.monotonic()
        second = replay.ingest_and_load(settings, "run-broken", resources=resources)
        elapsed = time.monotonic() - started
        by_name = {s["source"]: s for s in second["sources"]}
        assert by_name["shopify"]["status"] == "failed"
        assert "circuit open after 3 consecutive failures" in by_name["shopify"]["error"]
        assert "HTTP 503" in by_name["shopify"]["error"]
        assert len(broken.log) - before == 3  # no call once the circuit is open
        assert by_name["stripe"]["status"] == by_name["woocommerce"]["status"] == "succeeded"
        assert elapsed < 60  # bounded; no hang (not a timing benchmark)
        after = dict(query(settings, "SELECT source, cursor_value FROM ingest_watermarks"))
        assert after["shopify"] == marks["shopify"]
        manifest = json.loads((settings.staging_dir / "runs" / "run-broken" / "ingest.json").read_text())
        assert [f["source"] for f in manifest["failed_sources"]] == ["shopify"]


def test_second_run_with_no_new_data_reads_and_loads_nothing(server, fresh_db, tmp_path):
    settings = settings_for(fresh_db, tmp_path, {v: server.url for v in SYSTEM_IDS})
    resources = runner.Resources(clock=ScaledClock())
    replay.ingest_and_load(settings, "day-1", resources=resources)
    second = replay.ingest_and_load(settings, "day-2", resources=resources)
    for summary in second["sources"]:
        assert summary["status"] == "succeeded"
        assert summary["records_new"] == 0, summary
        assert summary["tables"] == {}
    assert all(t["rows_read"] == 0 and t["rows_written"] == 0 for t in second["tables"])

    # A record changed at the source after the watermark is read again (and only it).
    changed = server.data["shopify"][2]
    changed["updated_at"] = "2024-03-02T09:00:00+00:00"
    changed["financial_status"] = "refunded"
    third = replay.ingest_and_load(settings, "day-3", resources=resources)
    shop = next(s for s in third["sources"] if s["source"] == "shopify")
    assert shop["records_new"] == 1
    assert (
        scalar(
            settings,
            "SELECT order_status FROM fact_orders WHERE order_id = %s",
            (vendor_id("shopify", "order", changed["id"]),),
        )
        == "canceled"
    )


def test_replay_rebuilds_the_same_rows_from_the_archive_alone(server, fresh_db, tmp_path):
    settings = settings_for(fresh_db, tmp_path, {v: server.url for v in SYSTEM_IDS})
    server.faults = ["repeat", None, "repeat"]
    replay.ingest_and_load(settings, "orig", resources=runner.Resources(clock=ScaledClock()))
    day = archive.today()
    other = make_settings(
        _new_database_url(), staging_dir=settings.staging_dir, sources_file=settings.sources_file
    )
    try:
        requests_before = len(server.log)
        for vendor in SYSTEM_IDS:
            replay.replay(other, vendor, day)
        assert len(server.log) == requests_before, "replay must not call the source"
        for table in (
            "fact_orders",
            "fact_order_items",
            "fact_payments",
            "dim_customers",
            "dim_products",
            "dim_sellers",
        ):
            statement = (
                f"SELECT md5(string_agg(t::text, ',' ORDER BY t::text)), count(*) FROM "
                f"(SELECT * FROM {table}) t"
            )
            cols = [
                c
                for (c,) in query(
                    settings,
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = %s AND column_name <> 'updated_at'",
                    (table,),
                )
            ]
            statement = (
                f"SELECT count(*), md5(string_agg(concat_ws('|', {', '.join(cols)}), ',' "
                f"ORDER BY concat_ws('|', {', '.join(cols)}))) FROM {table}"
            )
            assert query(other, statement) == query(settings, statement), table
        assert scalar(other, "SELECT count(*) FROM fact_orders") == 21
        assert scalar(other, "SELECT count(*) FROM ingest_watermarks") == 0  # replay moves no state
    finally:
        db.drop_database(other.database_url)


def test_bad_credentials_fail_the_source_with_a_one_line_hint(server, ready_db, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_STRIPE_KEY", "sk_wrong")
    settings = settings_for(ready_db, tmp_path, {v: server.url for v in SYSTEM_IDS}, only=["stripe"])
    summary = runner.ingest_source(settings, "run-401", "stripe", runner.Resources(clock=ScaledClock()))
    assert summary["status"] == "failed"
    assert "HTTP 401" in summary["error"] and "credentials" in summary["error"]
    assert "\n" not in summary["error"]


def test_missing_secret_names_the_environment_variable(server, ready_db, tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_SHOPIFY_TOKEN")
    settings = settings_for(ready_db, tmp_path, {v: server.url for v in SYSTEM_IDS}, only=["shopify"])
    summary = runner.ingest_source(settings, "run-nosecret", "shopify")
    assert summary["status"] == "failed" and "TEST_SHOPIFY_TOKEN" in summary["error"]
