"""Issue 3's acceptance on the real server: changed rows only, SIGKILL mid-load, touched buckets."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from etl.run.pipeline import ingest_stage, load_stage, refresh_aggregates_stage, transform_stage
from etl.run.stages import run_pipeline
from etl.settings import PROJECT_ROOT
from etl.warehouse import connection as db
from tests.conftest import _new_database_url, make_settings, query, scalar
from tests.test_loader import _edit_csv, assert_aggregates_match_facts

TABLES = [
    "category_translation",
    "dim_geolocation",
    "dim_customers",
    "dim_products",
    "dim_sellers",
    "dim_dates",
    "fact_orders",
    "fact_order_items",
    "fact_payments",
    "fact_reviews",
    "quarantine",
]
#: Columns whose values depend on when (not what) a run loaded: left out of state comparisons.
VOLATILE = {
    "updated_at",
    "valid_from",
    "valid_to",
    "product_key",
    "seller_key",
    "quarantine_id",
    "created_at",
    "run_id",
}


def state(settings) -> dict:
    """Content of every warehouse table (without load-time columns) and SCD links of the facts."""
    out = {}
    for table in TABLES:
        cols = [
            c
            for (c,) in query(
                settings,
                """SELECT column_name FROM information_schema.columns
                    WHERE table_name = %s ORDER BY ordinal_position""",
                (table,),
            )
            if c not in VOLATILE
        ]
        row = " || '|' || ".join(f"coalesce({c}::text, '')" for c in cols)
        out[table] = query(
            settings, f"SELECT count(*), md5(string_agg({row}, ',' ORDER BY {row})) FROM {table}"
        )[0]
    out["links"] = query(
        settings,
        """
        SELECT count(*), count(*) FILTER (WHERE p.is_current), count(*) FILTER (WHERE s.is_current)
          FROM fact_order_items i JOIN dim_products p USING (product_key) JOIN dim_sellers s USING (seller_key)""",
    )[0]
    return out


def _audit(settings, run_id: str) -> dict[str, tuple]:
    return {
        r[0]: r[1:]
        for r in query(
            settings,
            """
        SELECT table_name, status, rows_loaded, rows_inserted, rows_updated, rows_unchanged, method, attempts
          FROM ingest_audit WHERE run_id = %s""",
            (run_id,),
        )
    }


# --- 3: only the changed rows are written, SCD versions, audit counts ---------------------------


@pytest.mark.slow
def test_second_load_updates_exactly_the_changed_rows(fresh_db, olist_dir, tmp_path):
    source = tmp_path / "olist"
    shutil.copytree(olist_dir, source)
    run_pipeline(fresh_db, data_dir=source, run_id="acc3-1")
    before = {t: scalar(fresh_db, f"SELECT count(*) FROM {t}") for t in TABLES}

    orders = [
        r[0]
        for r in query(
            fresh_db,
            """SELECT order_id FROM fact_orders WHERE order_status = 'delivered'
                                                ORDER BY order_id LIMIT 100""",
        )
    ]
    products = [
        r[0]
        for r in query(
            fresh_db,
            """SELECT product_id FROM dim_products
                                                  WHERE category_name IS DISTINCT FROM 'brinquedos'
                                                  ORDER BY product_id LIMIT 10""",
        )
    ]
    assert (
        _edit_csv(source / "olist_orders_dataset.csv.gz", "order_id", set(orders), "order_status", "canceled")
        == 100
    )
    assert (
        _edit_csv(
            source / "olist_products_dataset.csv.gz",
            "product_id",
            set(products),
            "product_category_name",
            "brinquedos",
        )
        == 10
    )
    run_pipeline(fresh_db, data_dir=source, run_id="acc3-2")

    audit = _audit(fresh_db, "acc3-2")
    for table, (status, loaded, inserted, updated, unchanged, method, _) in audit.items():
        assert status == "succeeded" and method == "copy", table
        expected_updated = {"fact_orders": 100, "dim_products": 10}.get(table, 0)
        assert (inserted, updated) == (0, expected_updated), table
        if table != "dim_geolocation":  # loaded counts source points; staged rows are zip prefixes
            assert unchanged == loaded - expected_updated, table
    after = {t: scalar(fresh_db, f"SELECT count(*) FROM {t}") for t in TABLES}
    assert after == {**before, "dim_products": before["dim_products"] + 10}
    assert (
        scalar(
            fresh_db,
            "SELECT count(*) FROM fact_orders WHERE order_id = ANY(%s) AND order_status = 'canceled'",
            (orders,),
        )
        == 100
    )
    versions = query(
        fresh_db,
        """SELECT count(*), count(*) FILTER (WHERE is_current), bool_and(
                                           category_name = 'brinquedos') FILTER (WHERE is_current)
                                    FROM dim_products WHERE product_id = ANY(%s)""",
        (products,),
    )[0]
    assert versions == (20, 10, True)
    assert_aggregates_match_facts(fresh_db)


# --- 4: SIGKILL in the middle of a fact load -------------------------------------------------

_CHILD = textwrap.dedent("""
    # The real load stage in its own process; the only change: once the COPY of
    # fact_order_items has sent its first buffer, say so and stall, so the parent
    # can SIGKILL it mid-COPY (dimensions and fact_orders already merged, uncommitted).
    import pathlib, sys, time
    from etl import binary_copy
    from etl.run.pipeline import load_stage
    from etl.settings import Settings

    marker = pathlib.Path(sys.argv[2])
    real_copy, real_encode = binary_copy.copy_binary, binary_copy.encode

    def stalling_encode(data):
        chunks = real_encode(data)
        yield next(chunks)
        yield next(chunks)
        marker.touch()
        time.sleep(600)
        yield from chunks

    def copy_binary(cur, table, data):
        binary_copy.encode = stalling_encode if "fact_order_items" in table else real_encode
        return real_copy(cur, table, data)

    binary_copy.copy_binary = copy_binary
    load_stage(Settings.from_env(), sys.argv[1])
""")


def _edited_sample(base, sample_dir):
    target = base / "olist-2"
    shutil.copytree(sample_dir, target)
    orders = [
        line.split(",")[0].strip('"')
        for line in (sample_dir / "olist_orders_dataset.csv").read_text().splitlines()[1:21]
    ]
    assert (
        _edit_csv(target / "olist_orders_dataset.csv", "order_id", set(orders), "order_status", "canceled")
        == 20
    )
    assert (
        _edit_csv(target / "olist_order_items_dataset.csv", "order_id", set(orders[:5]), "price", "1.00") >= 5
    )
    return target


@pytest.mark.slow
def test_sigkill_mid_fact_load_leaves_previous_state_and_rerun_completes(fresh_db, sample_dir, tmp_path):
    run_pipeline(fresh_db, data_dir=sample_dir, run_id="kill-1")
    previous = state(fresh_db)
    changed = _edited_sample(tmp_path, sample_dir)
    ingest_stage(fresh_db, "kill-2", changed)
    transform_stage(fresh_db, "kill-2")

    marker = tmp_path / "copying"
    env = {
        **os.environ,
        "DATABASE_URL": fresh_db.database_url,
        "ETL_STAGING_DIR": str(fresh_db.staging_dir),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, "kill-2", str(marker)],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, child.stdout.read().decode()
            assert time.monotonic() < deadline, "the child never reached the fact COPY"
            time.sleep(0.1)
        # The COPY is really in progress on the server when we kill.
        assert (
            scalar(fresh_db, "SELECT count(*) FROM pg_stat_progress_copy WHERE datname = current_database()")
            == 1
        )
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL

    # The server rolls the dead session back; wait until its backend is gone.
    deadline = time.monotonic() + 30
    while (
        scalar(
            fresh_db,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()",
        )
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert state(fresh_db) == previous
    assert {row[0] for row in _audit(fresh_db, "kill-2").values()} == {"running"}
    assert scalar(fresh_db, "SELECT count(*) FROM aggregate_refresh_queue") == 0

    load_stage(fresh_db, "kill-2")  # the rerun (an Airflow retry)
    refresh_aggregates_stage(fresh_db, "kill-2")
    audit = _audit(fresh_db, "kill-2")
    assert {(row[0], row[-1]) for row in audit.values()} == {("succeeded", 2)}
    assert audit["fact_orders"][3] == 20  # 20 statuses changed

    # Same state as a run that was never interrupted.
    reference = make_settings(_new_database_url(), staging_dir=tmp_path / "ref-staging")
    try:
        run_pipeline(reference, data_dir=sample_dir, run_id="kill-1")
        run_pipeline(reference, data_dir=changed, run_id="kill-2")
        assert state(fresh_db) == state(reference)
    finally:
        db.drop_database(reference.database_url)
    assert_aggregates_match_facts(fresh_db)


# --- 5: aggregates equal the facts; only touched buckets are recomputed ---------------------


@pytest.mark.slow
def test_incremental_load_recomputes_only_touched_buckets(fresh_db, sample_dir, tmp_path):
    run_pipeline(fresh_db, data_dir=sample_dir, run_id="agg-1")
    assert_aggregates_match_facts(fresh_db)
    versions = dict(query(fresh_db, "SELECT bucket, xmin::text FROM daily_customer_metrics"))
    hourly_versions = dict(query(fresh_db, "SELECT bucket, xmin::text FROM hourly_sales"))

    changed = _edited_sample(tmp_path, sample_dir)  # 20 orders canceled, 5 of them with new prices
    ingest_stage(fresh_db, "agg-2", changed)
    transform_stage(fresh_db, "agg-2")
    load_stage(fresh_db, "agg-2")
    touched_days = scalar(fresh_db, "SELECT count(*) FROM aggregate_refresh_queue WHERE run_id = 'agg-2'")
    result = refresh_aggregates_stage(fresh_db, "agg-2")

    assert 0 < touched_days < 20 + 1
    assert result["mode"] == "timescaledb-apache"
    assert result["buckets"]["daily_customer_metrics"] == touched_days
    rewritten = [
        b
        for b, x in query(fresh_db, "SELECT bucket, xmin::text FROM daily_customer_metrics")
        if versions.get(b) != x
    ]
    assert len(rewritten) == touched_days and len(versions) > 10 * touched_days
    hourly_rewritten = [
        b
        for b, x in query(fresh_db, "SELECT bucket, xmin::text FROM hourly_sales")
        if hourly_versions.get(b) != x
    ]
    assert 0 < len(hourly_rewritten) == result["buckets"]["hourly_sales"] < len(hourly_versions) / 10
    assert_aggregates_match_facts(fresh_db)
