"""The full-license TimescaleDB path, against a real full-license server.

Runs when ``ETL_TEST_TIMESCALE_FULL_URL`` points at a TimescaleDB server with
``timescaledb.license = 'timescale'`` (any database on it: each test module
creates its own and drops it); skipped otherwise. What it checks, as a user
would: ``etl db init`` then ``etl run`` on the real subset twice, exit 0; the
time-bucketed aggregates are continuous aggregates (materialized only, no
policy); every dashboard endpoint answers exactly what the same app answers
over a plain-PostgreSQL warehouse of the same files (revenue to the cent); a
late correction to 2016 history reaches the continuous aggregates; a refresh
that fails half-way keeps the queue and the next one drains it; late
corrections go into compressed chunks.
"""

from __future__ import annotations

import json
import os
import uuid

import psycopg2
import pytest

from dashboard.app import API, create_app
from dashboard.config import DashboardConfig
from etl import cli
from etl.publish import aggregates
from etl.run.pipeline import refresh_aggregates_stage
from etl.run.stages import run_pipeline
from etl.warehouse import connection as db
from etl.warehouse import schema
from tests.conftest import _new_database_url, make_settings, query, scalar

FULL_URL = os.environ.get("ETL_TEST_TIMESCALE_FULL_URL", "")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not FULL_URL,
        reason="ETL_TEST_TIMESCALE_FULL_URL is not set (needs a full-license TimescaleDB server)",
    ),
]

RANGES = ["", "?start=2017-03-01&end=2017-12-31", "?start=2017-03-05&end=2018-02-11"]


@pytest.fixture(scope="module")
def full(olist_dir, tmp_path_factory):
    """A warehouse on the full-license server, set up and loaded twice through the CLI."""
    url = db.server_url(FULL_URL, f"etl_test_full_{uuid.uuid4().hex[:10]}")
    staging = tmp_path_factory.mktemp("staging-full")
    env = {"DATABASE_URL": url, "ETL_STAGING_DIR": str(staging)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert cli.main(["db", "init"]) == 0
        assert cli.main(["run", "--data-dir", str(olist_dir), "--run-id", "full-1"]) == 0
        assert cli.main(["run", "--data-dir", str(olist_dir), "--run-id", "full-2"]) == 0
        yield make_settings(url, staging_dir=staging)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        db.drop_database(url)


@pytest.fixture(scope="module")
def plain(olist_dir, tmp_path_factory):
    """The same files in a plain-PostgreSQL warehouse (the machine's server, no TimescaleDB)."""
    settings = make_settings(
        _new_database_url(), staging_dir=tmp_path_factory.mktemp("staging-plain"), timescaledb=False
    )
    try:
        run_pipeline(settings, data_dir=olist_dir, run_id="plain-1")
        yield settings
    finally:
        db.drop_database(settings.database_url)


def test_the_server_is_full_license(full):
    conn = db.connect(full.database_url)
    try:
        assert schema.timescale_mode(conn).name == "timescaledb-full"
    finally:
        conn.close()


def test_the_aggregates_are_continuous_materialized_only_without_policies(full):
    rows = dict(
        query(full, "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates")
    )
    assert set(aggregates.NAMES) <= set(rows) and {"hourly_sales", "daily_customer_metrics"} <= set(rows)
    assert all(rows[name] for name in aggregates.NAMES)
    assert (
        scalar(
            full,
            "SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name = 'policy_refresh_continuous_aggregate'",
        )
        == 0
    )
    assert scalar(full, "SELECT count(*) FROM aggregate_refresh_queue") == 0
    # history years old is materialised, not only the policy's last 30 days
    assert scalar(full, "SELECT min(bucket) FROM hourly_sales") < scalar(
        full, "SELECT now() - interval '5 years'"
    )


def test_every_dashboard_endpoint_answers_as_over_plain_postgresql(full, plain):
    apps = [
        create_app(DashboardConfig(settings=s, cache_seconds=0, allow_superuser=True)).test_client()
        for s in (full, plain)
    ]
    compared = 0
    for name, endpoint in API.items():
        suffixes = RANGES if "start" in endpoint.params else [""]
        if "state" in endpoint.params:
            suffixes = suffixes + ["?start=2017-03-05&end=2018-02-11&state=RJ", "?state=SP"]
        for suffix in suffixes:
            answers = []
            for client in apps:
                response = client.get(f"/api/{name}{suffix}")
                assert response.status_code == 200, (name, response.get_data(as_text=True))
                answers.append(json.loads(response.get_data()))
            if name in ("runs", "quality", "quarantine"):  # run ids and times differ by design
                continue
            assert answers[0] == answers[1], name
            compared += 1
    assert compared >= 12
    monthly = query(full, "SELECT month, revenue_cents FROM monthly_sales_summary ORDER BY 1")
    assert monthly == query(plain, "SELECT month, revenue_cents FROM monthly_sales_summary ORDER BY 1")
    assert sum(r[1] for r in monthly) > 10**8


def test_a_correction_to_2016_reaches_the_continuous_aggregates_and_a_failed_refresh_is_caught_up(full):
    (order_id, day, hour) = query(
        full,
        "SELECT o.order_id, (o.purchased_at AT TIME ZONE %s)::date, date_trunc('hour', o.purchased_at) "
        "FROM fact_orders o JOIN fact_order_items i USING (order_id) "
        "WHERE o.order_status = 'delivered' AND o.purchased_at < '2017-01-01' ORDER BY o.purchased_at LIMIT 1",
        (full.source_timezone,),
    )[0]
    hourly = scalar(full, "SELECT revenue_cents FROM hourly_sales WHERE bucket = %s", (hour,))
    monthly = scalar(full, "SELECT sum(revenue_cents) FROM monthly_sales_summary")
    conn = psycopg2.connect(full.database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE fact_order_items SET price_cents = price_cents + 100 WHERE order_id = %s", (order_id,)
            )
            aggregates.queue_days(cur, "late-2016", [day], full.source_timezone)
            cur.execute("ALTER TABLE top_products RENAME TO top_products_away")
        with pytest.raises(Exception, match="top_products"):
            refresh_aggregates_stage(full, "late-2016")
        # The continuous aggregates were refreshed before the failure; the derived
        # tables were not, and the day is still queued.
        assert scalar(full, "SELECT count(*) FROM aggregate_refresh_queue") == 1
        assert scalar(full, "SELECT sum(revenue_cents) FROM monthly_sales_summary") == monthly
        with conn, conn.cursor() as cur:
            cur.execute("ALTER TABLE top_products_away RENAME TO top_products")
        result = refresh_aggregates_stage(full, "next")
        assert result["mode"] == "timescaledb-full" and result["ranges"] == 1
        assert scalar(full, "SELECT count(*) FROM aggregate_refresh_queue") == 0
        items = scalar(full, "SELECT count(*) FROM fact_order_items WHERE order_id = %s", (order_id,))
        assert (
            scalar(full, "SELECT revenue_cents FROM hourly_sales WHERE bucket = %s", (hour,))
            == hourly + 100 * items
        )
        assert scalar(full, "SELECT sum(revenue_cents) FROM monthly_sales_summary") == monthly + 100 * items
    finally:
        with conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE fact_order_items SET price_cents = price_cents - 100 WHERE order_id = %s", (order_id,)
            )
            aggregates.queue_days(cur, "undo", [day], full.source_timezone)
        conn.close()
        refresh_aggregates_stage(full, "undo")


def test_late_corrections_go_into_compressed_chunks(full):
    """Every chunk compressed; a day's corrections to old orders load and reach the figures."""
    import pandas as pd

    from etl.load import merge

    conn = psycopg2.connect(full.database_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(compress_chunk(c, if_not_compressed => TRUE)) FROM show_chunks('fact_orders') c"
            )
            assert cur.fetchone()[0] > 10
            cur.execute(
                "SELECT order_id, customer_id, 'canceled' AS order_status, purchased_at, approved_at, "
                "delivered_carrier_at, delivered_customer_at, estimated_delivery_at, purchase_date_key "
                "FROM fact_orders WHERE order_status = 'delivered' ORDER BY md5(order_id) LIMIT 200"
            )
            frame = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
            cur.execute("SELECT sum(orders) FROM sales_monthly_state")
            orders_before = cur.fetchone()[0]
        conn.autocommit = False
        with conn, conn.cursor() as cur:
            cur.execute("SET LOCAL timescaledb.max_tuples_decompressed_per_dml_transaction = 1000")
            result = merge.load_table(cur, "fact_orders", frame, timezone=full.source_timezone)
            aggregates.queue_days(cur, "late-compressed", result.touched_days, full.source_timezone)
        assert result.rows_updated == 200 and len(result.touched_days) > 50
        refresh_aggregates_stage(full, "late-compressed")
        assert scalar(full, "SELECT sum(orders) FROM sales_monthly_state") == orders_before - 200
        assert (
            scalar(
                full,
                "SELECT count(*) FROM fact_orders WHERE order_status = 'canceled' AND order_id = ANY(%s)",
                (list(frame["order_id"]),),
            )
            == 200
        )
    finally:
        conn.close()
