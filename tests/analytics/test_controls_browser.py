"""The four controls pages in a real headless Chromium: charts drawn, numbers equal the tables.

Reuses gunicorn and Chromium from test_browser.py. The numbers are read from
the page as a person sees it (the rendered tables) and compared with SELECTs
on quarantine, ingest_audit, run_events and quality_issues. Screenshots go to
docs/screenshots/controls-*.png with ETL_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import pytest

from tests.analytics.test_browser import SCREENSHOTS, browser, server  # noqa: F401
from tests.conftest import member_login, query, scalar

pytestmark = pytest.mark.slow
BROKEN = "subset-2-broken-rows"


@pytest.fixture(scope="module")
def dashboard_settings(warehouse):
    """gunicorn (test_browser's ``server``) serves as a login with the controls part granted."""
    with member_login(warehouse, "dashboard_reader", "controls_reader") as settings:
        yield settings


def open_page(browser, url: str):  # noqa: F811
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")
    browser.get(url)
    WebDriverWait(browser, 60).until(
        lambda d: d.execute_script("return document.body.dataset.chartsReady === 'true'")
    )
    drawn = browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-chart]')).map(e => e.dataset.drawn)"
    )
    assert drawn and set(drawn) == {"true"}, (url, drawn)
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(r.startswith(url.split("/controls")[0]) for r in resources), resources


def table_rows(browser, table_id: str) -> list[list[str]]:  # noqa: F811
    from selenium.webdriver.common.by import By

    rows = browser.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")
    return [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def shot(browser, name: str) -> None:  # noqa: F811
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def test_exceptions_page(server, browser, warehouse):  # noqa: F811
    from selenium.webdriver.common.by import By

    open_page(browser, f"{server}/controls/exceptions?run_id={BROKEN}")
    total = browser.find_element(By.ID, "exceptions-total").text
    assert int(total.replace(",", "")) == scalar(
        warehouse, "SELECT count(*) FROM quarantine WHERE run_id = %s", (BROKEN,)
    )
    shown = {(r[2], r[4]): int(r[5].replace(",", "")) for r in table_rows(browser, "exceptions-summary")}
    assert shown == {
        (t, rule): n
        for t, rule, n in query(
            warehouse,
            "SELECT table_name, rule, count(*) FROM quarantine WHERE run_id = %s GROUP BY 1, 2",
            (BROKEN,),
        )
    }
    assert browser.find_elements(By.CSS_SELECTOR, "#exceptions-rows code.raw")  # raw records shown
    shot(browser, "controls-exceptions")


def test_audit_trail_page(server, browser, warehouse):  # noqa: F811
    open_page(browser, f"{server}/controls/audit?run_id={BROKEN}")
    rows = table_rows(browser, "audit-timeline")
    stages = [r[2].split()[0] for r in rows if r[1] == "stage"]
    assert "ingest from olist" in [r[2] for r in rows]  # the source each ingest row is about
    assert stages == [
        "ingest",
        "transform",
        "quality_gate",
        "load",
        "refresh_aggregates",
        "validate",
        "notify",
    ]
    loaded = {r[2].split()[0]: int(r[5].replace(",", "")) for r in rows if r[1] == "table"}
    assert loaded == dict(
        query(warehouse, "SELECT table_name, rows_loaded FROM ingest_audit WHERE run_id = %s", (BROKEN,))
    )
    shot(browser, "controls-audit")


def test_controls_summary_page(server, browser, warehouse):  # noqa: F811
    open_page(browser, f"{server}/controls/summary?run_id={BROKEN}")
    shown = {(r[2], r[0]): int(r[6].replace(",", "")) for r in table_rows(browser, "controls") if r[6] != "0"}
    assert shown == {
        (t, rule): n
        for t, rule, n in query(
            warehouse,
            "SELECT table_name, rule, count(DISTINCT row_number) FROM quality_issues WHERE run_id = %s "
            "GROUP BY 1, 2",
            (BROKEN,),
        )
    }
    failed = [r for r in table_rows(browser, "gate") if r[-1] == "fail"]
    assert ["_overall", "integrity"] in [r[:2] for r in failed]
    shot(browser, "controls-summary")


def test_record_results_page(server, browser, warehouse):  # noqa: F811
    open_page(browser, f"{server}/controls/validation?run_id={BROKEN}&table=fact_order_items")
    rows = table_rows(browser, "records")
    expected = scalar(
        warehouse,
        "SELECT count(DISTINCT row_number) FROM quality_issues "
        "WHERE run_id = %s AND table_name = 'fact_order_items'",
        (BROKEN,),
    )
    assert len(rows) == min(50, expected)
    assert any("quarantined" in r[2] and "fk:" in r[3] for r in rows)  # the orphan item, with its rule
    shot(browser, "controls-validation")
