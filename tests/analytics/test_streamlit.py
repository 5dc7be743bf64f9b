"""The Streamlit app run by streamlit's AppTest against the loaded warehouse."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import query

APP = Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py"


def _brl(cents: int) -> str:
    return "R$ " + f"{cents // 100:,}".replace(",", ".") + f",{cents % 100:02d}"


@pytest.fixture
def app(dashboard_settings, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", dashboard_settings.database_url)
    return AppTest.from_file(str(APP), default_timeout=60).run()


def test_kpi_cards_show_the_source_figures(app, source, warehouse):
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    sold, items = source["sold"], source["sold_items"]
    assert metrics["Orders"] == f"{len(sold):,}"
    assert metrics["Revenue"] == _brl(int(items["price_cents"].sum()))
    aov = round(int(items["price_cents"].sum()) / len(sold))
    assert metrics["Average order value"] == _brl(aov)
    assert metrics["Customers"] == f"{sold['customer_unique_id'].nunique():,}"
    # Quality metrics of the latest run, with pass/fail against the target.
    latest = dict(
        query(
            warehouse,
            """SELECT dimension, score FROM quality_scores
                                       WHERE table_name = '_overall' AND run_id = 'subset-2-broken-rows'""",
        )
    )
    assert metrics["validity"] == f"{latest['validity']:.2f}"
    assert metrics["completeness"] == f"{latest['completeness']:.2f}"


def test_state_filter_changes_the_kpis_and_pages_raw_rows(app, source):
    app.sidebar.selectbox(key="state").select("RJ").run()
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    rj = source["sold_items"][source["sold_items"]["customer_state"] == "RJ"]
    assert metrics["Revenue"] == _brl(int(rj["price_cents"].sum()))
    raw = app.dataframe[0].value
    assert len(raw) == 50 and set(raw["customer_state"]) == {"RJ"}
    app.number_input(key="page").set_value(2).run()
    second = app.dataframe[0].value
    assert len(second) == 50 and set(second["customer_state"]) == {"RJ"}
    # Newest first: page 2 continues where page 1 ended.
    assert second["purchased_at"].iloc[0] <= raw["purchased_at"].iloc[-1]
    assert list(second["order_id"]) != list(raw["order_id"])


def test_status_filter_reaches_the_raw_viewer(app):
    app.sidebar.multiselect(key="statuses").select("canceled").run()
    raw = app.dataframe[0].value
    assert len(raw) > 0 and set(raw["order_status"]) == {"canceled"}
