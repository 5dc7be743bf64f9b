"""The controls views (Flask and Streamlit) against the loaded warehouse: their numbers equal the tables.

The session warehouse (conftest) holds two real runs of the Olist subset, the
second with broken rows appended, so quarantine, audit and quality detail are
the pipeline's own records. Every figure shown is checked against one SELECT.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.app import create_app
from dashboard.config import DashboardConfig
from tests.conftest import member_login, query, scalar

BROKEN = "subset-2-broken-rows"
CONTROLS_PAGE = Path(__file__).resolve().parents[2] / "dashboard" / "pages" / "controls.py"


@pytest.fixture(scope="module")
def controls_login(warehouse):
    """The dashboards' login where the controls part is wanted: dashboard_reader + controls_reader."""
    with member_login(warehouse, "dashboard_reader", "controls_reader") as settings:
        yield settings


@pytest.fixture(scope="module")
def client(controls_login):
    app = create_app(DashboardConfig(settings=controls_login, cache_seconds=0))
    yield app.test_client()
    app.extensions["warehouse"].close()


def api(client, path: str):
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["data"]


def cells(html: str, table_id: str) -> list[list[str]]:
    """The text of each body row of <table id=...> (tags stripped)."""
    body = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def test_exceptions_equal_the_quarantine_table(client, warehouse):
    expected = {
        (run, table, category, rule): n
        for run, table, category, rule, n in query(
            warehouse,
            "SELECT run_id, table_name, category, rule, count(*) FROM quarantine GROUP BY 1, 2, 3, 4",
        )
    }
    assert expected, "the broken run quarantines rows"
    summary = api(client, "/api/controls/exceptions")
    assert {(r["run_id"], r["table_name"], r["category"], r["rule"]): r["rows"] for r in summary} == expected
    page = client.get(f"/controls/exceptions?run_id={BROKEN}").get_data(as_text=True)
    total = re.search(r'id="exceptions-total">([\d,]+)<', page).group(1)
    assert int(total.replace(",", "")) == scalar(
        warehouse, "SELECT count(*) FROM quarantine WHERE run_id = %s", (BROKEN,)
    )
    rows = cells(page, "exceptions-rows")
    assert rows and all(r[0] == BROKEN for r in rows)
    # a filter narrows both; the raw record is shown as read
    orders = api(client, f"/api/controls/exceptions-rows?run_id={BROKEN}&table=fact_orders")
    assert {r["rule"] for r in orders} == set(
        r[0] for r in query(warehouse, "SELECT rule FROM quarantine WHERE table_name = 'fact_orders'")
    )
    assert all(isinstance(r["raw_record"], dict) and "order_id" in r["raw_record"] for r in orders)


def test_exceptions_export_and_trend(client, warehouse):
    response = client.get(f"/controls/exceptions.csv?run_id={BROKEN}&category=DUPLICATE")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == scalar(
        warehouse, "SELECT count(*) FROM quarantine WHERE run_id = %s AND category = 'DUPLICATE'", (BROKEN,)
    )
    assert json.loads(rows[0]["raw_record"])  # the record, as JSON
    lines = client.get("/controls/exceptions.jsonl").get_data(as_text=True).splitlines()
    assert len(lines) == scalar(warehouse, "SELECT count(*) FROM quarantine")
    trend = api(client, "/api/controls/exceptions-trend")
    assert {(r["run_id"], r["category"]): r["rows"] for r in trend} == {
        (run, cat): n
        for run, cat, n in query(warehouse, "SELECT run_id, category, count(*) FROM quarantine GROUP BY 1, 2")
    }


def test_bad_filters_are_a_400_sentence(client):
    response = client.get("/api/controls/exceptions?category=TYPO")
    assert response.status_code == 400 and "must be one of" in response.get_json()["error"]
    assert client.get("/controls/exceptions?colour=red").status_code == 400


def test_audit_trail_is_the_runs_events_and_tables(client, warehouse):
    timeline = api(client, f"/api/controls/audit?run_id={BROKEN}")
    stages = [e["step"] for e in timeline if e["kind"] == "stage"]
    assert stages == [
        "ingest",
        "transform",
        "quality_gate",
        "load",
        "refresh_aggregates",
        "validate",
        "notify",
    ]
    tables = {
        e["step"]: (e["rows"], e["rows_loaded"], e["rows_quarantined"])
        for e in timeline
        if e["kind"] == "table"
    }
    assert tables == {
        t: (r, lo, q)
        for t, r, lo, q in query(
            warehouse,
            "SELECT table_name, rows_read, rows_loaded, rows_quarantined FROM ingest_audit WHERE run_id = %s",
            (BROKEN,),
        )
    }
    starts = [e["started_at"] for e in timeline]
    assert starts == sorted(starts)
    transform = next(e for e in timeline if e["step"] == "transform")
    assert transform["detail"]["rows_quarantined"] == scalar(
        warehouse, "SELECT count(*) FROM quarantine WHERE run_id = %s", (BROKEN,)
    )
    page = client.get(f"/controls/audit?run_id={BROKEN}").get_data(as_text=True)
    assert len(cells(page, "audit-timeline")) == len(timeline)


def test_controls_summary_equals_quality_issues_and_scores(client, warehouse):
    rows = api(client, f"/api/controls/controls?run_id={BROKEN}")
    failing = {(r["table_name"], r["rule"]): r["rows_failed"] for r in rows if r["rows_failed"]}
    assert failing == {
        (t, rule): n
        for t, rule, n in query(
            warehouse,
            "SELECT table_name, rule, count(DISTINCT row_number) FROM quality_issues "
            "WHERE run_id = %s GROUP BY 1, 2",
            (BROKEN,),
        )
    }
    listed = {r["rule"] for r in rows}
    assert {"price_positive", "payment_type_known", "review_score_1_to_5"} <= listed  # never failed, listed
    checked = dict(
        ((t, d), n)
        for t, d, n in query(
            warehouse,
            "SELECT table_name, dimension, rows_checked FROM quality_scores WHERE run_id = %s",
            (BROKEN,),
        )
    )
    assert all(
        r["rows_checked"] == checked[(r["table_name"], r["dimension"])] for r in rows if r["table_name"]
    )
    gate = api(client, f"/api/controls/gate?run_id={BROKEN}")
    scores = query(
        warehouse,
        "SELECT table_name, dimension, score, target FROM quality_scores WHERE run_id = %s AND target IS NOT NULL",
        (BROKEN,),
    )
    assert len([g for g in gate if g["rule"] == ">="]) == len(scores)
    integrity = next(g for g in gate if g["table_name"] == "_overall" and g["measure"] == "integrity")
    assert integrity["passed"] is False  # the orphan item breaks the integrity target on purpose
    trend = api(client, "/api/controls/controls-trend")
    assert {r["run_id"] for r in trend} == {BROKEN} | {
        r[0] for r in query(warehouse, "SELECT DISTINCT run_id FROM quality_issues")
    }


def test_record_results_list_every_control_a_record_broke(client, warehouse):
    records = api(client, f"/api/controls/records?run_id={BROKEN}&table=fact_orders")
    expected = query(
        warehouse,
        "SELECT row_number, array_agg(rule ORDER BY hard DESC, rule), bool_or(hard) FROM quality_issues "
        "WHERE run_id = %s AND table_name = 'fact_orders' GROUP BY row_number ORDER BY row_number LIMIT 50",
        (BROKEN,),
    )
    assert [(r["row_number"], r["rules"], r["quarantined"]) for r in records] == [tuple(e) for e in expected]
    # the records a hard rule rejected: quarantined, with their raw record, and every rule they broke
    (rule,) = query(
        warehouse,
        "SELECT rule FROM quarantine WHERE run_id = %s AND table_name = 'fact_orders' LIMIT 1",
        (BROKEN,),
    )[0]
    rejected = api(client, f"/api/controls/records?run_id={BROKEN}&table=fact_orders&rule={rule}")
    assert rejected and all(r["quarantined"] and r["raw_record"] and rule in r["rules"] for r in rejected)
    page = client.get(f"/controls/validation?run_id={BROKEN}&table=fact_orders").get_data(as_text=True)
    assert len(cells(page, "records")) == len(records)


def test_the_dashboard_login_alone_gets_a_403_sentence_controls_reader_can(warehouse):
    with member_login(warehouse, "dashboard_reader") as plain:
        app = create_app(DashboardConfig(settings=plain, cache_seconds=0))
        client = app.test_client()
        denied = client.get("/controls/exceptions")
        assert denied.status_code == 403 and "controls_reader" in denied.get_data(as_text=True)
        assert client.get("/api/controls/records").status_code == 403
        assert client.get("/api/kpis").status_code == 200  # the rest of the dashboard is unaffected
        login = psycopg2.extensions.parse_dsn(plain.database_url)["user"]
        admin = psycopg2.connect(warehouse.database_url)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'GRANT controls_reader TO "{login}"')
        admin.close()
        app.extensions["warehouse"].close()  # new sessions see the new membership
        assert client.get("/controls/exceptions").status_code == 200
        assert client.get("/controls/audit").status_code == 200
        app.extensions["warehouse"].close()


@pytest.fixture
def controls_app(controls_login, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", controls_login.database_url)
    return AppTest.from_file(str(CONTROLS_PAGE), default_timeout=60).run()


def test_streamlit_controls_page_shows_the_same_numbers(controls_app, warehouse):
    app = controls_app
    assert not app.exception, app.exception
    assert [t.label for t in app.tabs] == ["Exceptions", "Audit trail", "Controls summary", "Record results"]
    latest = scalar(warehouse, "SELECT run_id FROM pipeline_runs ORDER BY started_at DESC LIMIT 1")
    assert latest == BROKEN and app.selectbox(key="controls_run").value == latest

    def check(run: str) -> None:
        metrics = {m.label: m.value for m in app.metric}
        quarantined = scalar(warehouse, "SELECT count(*) FROM quarantine WHERE run_id = %s", (run,))
        assert metrics["Quarantined rows"] == f"{quarantined:,}"
        tables = scalar(warehouse, "SELECT count(*) FROM ingest_audit WHERE run_id = %s", (run,))
        assert metrics["Tables loaded"] == str(tables)
        rules = scalar(
            warehouse,
            "SELECT count(DISTINCT (table_name, rule)) FROM quality_issues WHERE run_id = %s",
            (run,),
        )
        assert metrics["Controls that caught rows"] == str(rules)
        failing = scalar(
            warehouse,
            "SELECT count(DISTINCT (table_name, source_file, row_number)) FROM quality_issues WHERE run_id = %s",
            (run,),
        )
        assert len(app.dataframe[-1].value) == min(50, failing)

    check(BROKEN)
    first = next(r for r in app.selectbox(key="controls_run").options if r != BROKEN)
    app.selectbox(key="controls_run").select(first).run()
    assert not app.exception
    check(first)
