"""Least privilege against the loaded warehouse: each part as its own login.

The session's warehouse was initialised by the administrator and loaded by the
pipeline's login (conftest.py); here the dashboards serve every page as theirs,
the BI login sees exactly schema bi, and what each must not do is refused by
privileges even after it switches its session settings off.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.app import API, PAGES, create_app
from dashboard.config import DashboardConfig
from dashboard.warehouse import SuperuserRefused
from etl.warehouse import access
from tests.conftest import query

ROOT = Path(__file__).resolve().parents[2]


def _connect(settings):
    conn = psycopg2.connect(settings.database_url)
    conn.autocommit = True
    return conn


def _refused(conn, statement: str) -> str:
    """The SQLSTATE a statement fails with, run in a read-WRITE transaction."""
    with conn.cursor() as cur:
        cur.execute("SET default_transaction_read_only = off")  # any login may: not a guard
        try:
            cur.execute(statement)
        except psycopg2.Error as exc:
            return exc.pgcode
    return "allowed"


def test_the_dashboard_serves_every_page_and_route_as_its_own_role(dashboard_settings):
    app = create_app(DashboardConfig(settings=dashboard_settings, cache_seconds=0))
    client = app.test_client()
    with app.extensions["warehouse"].connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        assert cur.fetchone() == ("etl_dashboard", False)
    paths = [href for _, href, _ in PAGES] + [f"/api/{name}" for name in API] + ["/api/", "/healthz"]
    answers = {path: client.get(path).status_code for path in paths}
    assert answers == dict.fromkeys(paths, 200)
    # a parameterised route too: one run's quarantine counts
    assert client.get("/api/quarantine?run_id=subset-2-broken-rows").status_code == 200
    app.extensions["warehouse"].close()


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT raw_record FROM quarantine LIMIT 1",
        "SELECT * FROM ingest_audit LIMIT 1",
        "SELECT * FROM fact_orders LIMIT 1",
        "DELETE FROM sales_monthly_state",
        "INSERT INTO quality_scores SELECT * FROM quality_scores LIMIT 0",
        "CREATE TABLE scratch (x int)",
        "CREATE TEMP TABLE scratch (x int)",
        "SELECT lo_from_bytea(0, 'x')",
        "SELECT lo_creat(-1)",
        "REFRESH MATERIALIZED VIEW top_products",
    ],
)
def test_the_dashboard_role_is_held_by_privileges(dashboard_settings, statement):
    conn = _connect(dashboard_settings)
    try:
        assert _refused(conn, statement) == "42501"  # insufficient_privilege
    finally:
        conn.close()


def test_dashboards_refuse_a_superuser_unless_told(warehouse):
    with pytest.raises(SuperuserRefused, match="DASHBOARD_ALLOW_SUPERUSER=1"):
        create_app(DashboardConfig(settings=warehouse, cache_seconds=0))
    allowed = create_app(DashboardConfig(settings=warehouse, cache_seconds=0, allow_superuser=True))
    assert allowed.test_client().get("/api/kpis").status_code == 200
    allowed.extensions["warehouse"].close()
    # gunicorn's entry point: one line naming the login and the way out, no traceback
    env = {**os.environ, "DATABASE_URL": warehouse.database_url}
    env.pop("DASHBOARD_ALLOW_SUPERUSER", None)
    done = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to serve dashboards as postgres" in lines[0], done.stderr


def test_streamlit_refuses_a_superuser(warehouse, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", warehouse.database_url)
    monkeypatch.delenv("DASHBOARD_ALLOW_SUPERUSER", raising=False)
    app = AppTest.from_file(str(ROOT / "dashboard" / "streamlit_app.py"), default_timeout=60).run()
    assert not app.metric
    assert "DASHBOARD_ALLOW_SUPERUSER=1" in app.error[0].value


def test_bi_sees_through_information_schema_exactly_the_documented_views(bi_settings):
    documented = set(
        re.findall(r"^\| `bi\.([a-z_]+)` \|", (ROOT / "docs" / "jdbc_setup.md").read_text(), re.M)
    )
    assert documented == set(access.bi_views())
    system = {"pg_catalog", "information_schema"}  # TimescaleDB's catalog included: revoked from PUBLIC
    listed = query(
        bi_settings,
        "SELECT table_schema, table_name, table_type FROM information_schema.tables ORDER BY 1, 2",
    )
    ours = {(schema, name, kind) for schema, name, kind in listed if schema not in system}
    assert ours == {("bi", name, "VIEW") for name in documented}
    # ... and nothing it lists, anywhere, is something it cannot read
    unreadable = query(
        bi_settings,
        """SELECT table_schema, table_name FROM information_schema.tables
            WHERE NOT has_any_column_privilege(
                      quote_ident(table_schema) || '.' || quote_ident(table_name), 'SELECT')""",
    )
    assert unreadable == []
    assert query(bi_settings, "SHOW search_path") == [("bi",)]


def test_every_bi_view_and_column_has_a_description(warehouse):
    missing = query(
        warehouse,
        """SELECT c.relname, a.attname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
            WHERE n.nspname = 'bi'
              AND (obj_description(c.oid, 'pg_class') IS NULL OR col_description(c.oid, a.attnum) IS NULL)""",
    )
    assert missing == []


@pytest.mark.parametrize(
    ("statement", "refusals"),
    [
        ("SELECT raw_record FROM public.quarantine LIMIT 1", {"42501"}),
        ("SELECT * FROM public.sales_daily_state LIMIT 1", {"42501"}),
        # DML on a view over a materialized view: "not updatable" (55000) may come first
        ("INSERT INTO bi.top_products SELECT * FROM bi.top_products LIMIT 0", {"42501", "55000"}),
        ("UPDATE bi.top_products SET units = 0", {"42501", "55000"}),
        ("DELETE FROM bi.top_products", {"42501", "55000"}),
        ("INSERT INTO public.fact_orders SELECT * FROM public.fact_orders LIMIT 0", {"42501"}),
        ("DELETE FROM public.fact_orders", {"42501"}),
        ("TRUNCATE public.fact_orders", {"42501"}),
        ("CREATE TABLE bi.scratch (x int)", {"42501"}),
        ("CREATE TABLE public.scratch (x int)", {"42501"}),
        ("CREATE TEMP TABLE scratch (x int)", {"42501"}),
        ("CREATE SCHEMA scratch", {"42501"}),
        ("SELECT lo_from_bytea(0, 'x')", {"42501"}),
        ("SELECT lo_create(0)", {"42501"}),
        ("ALTER ROLE CURRENT_USER CONNECTION LIMIT -1", {"42501"}),
    ],
)
def test_the_bi_login_is_held_by_privileges(bi_settings, statement, refusals):
    conn = _connect(bi_settings)
    try:
        assert _refused(conn, statement) in refusals
    finally:
        conn.close()


def test_each_login_is_an_ordinary_role_in_its_group(warehouse):
    rows = query(
        warehouse,
        """SELECT r.rolname, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls,
                  array(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                         WHERE m.member = r.oid ORDER BY 1)
             FROM pg_roles r WHERE r.rolname IN ('etl_pipeline', 'etl_dashboard', 'etl_bi') ORDER BY 1""",
    )
    assert rows == [
        ("etl_bi", False, False, False, False, ["bi_reader"]),
        ("etl_dashboard", False, False, False, False, ["dashboard_reader"]),
        ("etl_pipeline", False, False, False, False, ["etl_writer"]),
    ]
    # the pipeline's group owns the warehouse (it refreshes and re-indexes what it loads)
    owners = query(
        warehouse,
        """SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname IN ('public', 'bi') AND c.relkind IN ('r', 'v', 'm')""",
    )
    assert owners == [("etl_writer",)]
