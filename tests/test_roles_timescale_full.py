"""The least-privilege set-up on the full-license TimescaleDB (continuous aggregates,
compression policy), as docker-compose runs it.

Runs when ``ETL_TEST_TIMESCALE_FULL_URL`` names such a server (e.g.
postgresql://postgres@127.0.0.1:5444/postgres); skipped with that reason
otherwise. `etl db init` as the administrator, the sample loaded by the
pipeline's login (refreshing the continuous aggregates it now owns through
etl_writer), then the dashboards and BI as theirs.
"""

from __future__ import annotations

import os
import uuid

import psycopg2
import pytest

from dashboard.app import API, PAGES, create_app
from dashboard.config import DashboardConfig
from etl.publish import aggregates
from etl.run import setup
from etl.run.stages import run_pipeline
from etl.warehouse import access
from etl.warehouse import connection as db
from tests.conftest import as_login, make_settings, query

FULL_URL = os.environ.get("ETL_TEST_TIMESCALE_FULL_URL")
pytestmark = pytest.mark.skipif(
    not FULL_URL, reason="set ETL_TEST_TIMESCALE_FULL_URL to a full-license TimescaleDB server"
)
PASSWORDS = {"pipeline_password": "full-pipe", "dashboard_password": "full-dash", "bi_password": "full-bi"}


@pytest.fixture(scope="module")
def full(sample_dir, tmp_path_factory):
    url = db.server_url(FULL_URL, f"etl_test_{uuid.uuid4().hex[:10]}")
    admin = make_settings(url, staging_dir=tmp_path_factory.mktemp("staging"), **PASSWORDS)
    try:
        mode = setup.init_schema(admin)
        assert mode.name == "timescaledb-full"
        run_pipeline(as_login(admin, admin.pipeline_login, admin.pipeline_password), data_dir=sample_dir)
        yield admin
    finally:
        db.drop_database(url)


def test_the_pipeline_login_owns_and_refreshes_the_continuous_aggregates(full):
    owners = dict(
        query(full, "SELECT view_name, view_owner FROM timescaledb_information.continuous_aggregates")
    )
    assert owners == dict.fromkeys(aggregates.NAMES, "etl_writer")
    # the (compression) policy still runs as the administrator that added it (a NOLOGIN
    # owner could not); the aggregates have no refresh policy (the pipeline refreshes them)
    job_owners = {
        r[0] for r in query(full, "SELECT owner FROM timescaledb_information.jobs WHERE job_id >= 1000")
    }
    assert job_owners and "etl_writer" not in job_owners
    assert query(full, "SELECT sum(orders) FROM daily_customer_metrics") == [(2000,)]


def test_dashboards_and_bi_as_their_logins(full):
    dashboard = as_login(full, full.dashboard_login, full.dashboard_password)
    app = create_app(DashboardConfig(settings=dashboard, cache_seconds=0))
    client = app.test_client()
    paths = [href for _, href, _ in PAGES] + [f"/api/{name}" for name in API]
    assert {p: client.get(p).status_code for p in paths} == dict.fromkeys(paths, 200)
    revenue = client.get("/api/kpis").get_json()["data"]["revenue_cents"]
    app.extensions["warehouse"].close()

    bi = as_login(full, full.bi_login, full.bi_password)
    listed = query(
        bi,
        """SELECT table_schema, table_name FROM information_schema.tables
            WHERE table_schema NOT IN ('pg_catalog', 'information_schema')""",
    )
    assert set(listed) == {("bi", name) for name in access.bi_views()}
    # a continuous aggregate (materialized only, refreshed by the run) through a bi view, as the BI login, to the cent
    assert query(bi, "SELECT sum(sold_revenue_cents) FROM bi.hourly_sales") == [(revenue,)]
    conn = psycopg2.connect(bi.database_url)
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("SELECT * FROM _timescaledb_catalog.hypertable")
    finally:
        conn.close()
