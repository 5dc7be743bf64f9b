"""Two runs on one warehouse: the advisory run lock makes the second wait (or exit), never double-load."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg2

from etl.run import lock, setup
from tests.conftest import query, scalar
from tests.test_cli import assert_one_line_error

TABLES = (
    "dim_customers",
    "dim_products",
    "dim_sellers",
    "fact_orders",
    "fact_order_items",
    "fact_payments",
    "fact_reviews",
)


def _etl(settings, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "etl.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "ETL_STAGING_DIR": str(settings.staging_dir),
            "ETL_SOURCES_FILE": str(settings.staging_dir / "no-sources.yml"),
        },
    )


def _lock_holder(settings) -> str | None:
    conn = psycopg2.connect(settings.database_url)
    try:
        found = lock.holder(conn)
    finally:
        conn.close()
    return found.label if found else None


def _wait_for_holder(settings, proc: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            name = _lock_holder(settings)
        except Exception:  # noqa: BLE001 - the database may not exist yet
            name = None
        if name:
            return name
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the first run never took the run lock")


def test_two_concurrent_runs_load_once_and_the_second_says_whose_run_it_waits_for(fresh_db, sample_dir):
    first = _etl(fresh_db, "run", "--run-id", "first", "--data-dir", str(sample_dir))
    holder = _wait_for_holder(fresh_db, first)
    assert holder.startswith("etl run first on ")
    second = _etl(fresh_db, "run", "--run-id", "second", "--data-dir", str(sample_dir))
    out1, err1 = first.communicate(timeout=300)
    out2, err2 = second.communicate(timeout=300)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    waits = [line for line in err2.splitlines() if "waiting for the warehouse lock" in line]
    assert len(waits) == 1, err2
    assert "etl run second on" in waits[0] and "held by etl run first on" in waits[0], waits[0]
    assert "nothing new" in out2  # the second run read the files the first had loaded
    counts = {t: scalar(fresh_db, f"SELECT count(*) FROM {t}") for t in TABLES}  # noqa: S608
    assert counts["fact_orders"] == 2000 and counts["fact_order_items"] == 2259
    history = dict(query(fresh_db, "SELECT run_id, rows_loaded FROM pipeline_runs"))
    assert history["first"] > 0 and history["second"] == 0  # one load in the history
    loads = query(fresh_db, "SELECT count(DISTINCT run_id) FROM ingest_audit WHERE rows_loaded > 0")
    assert loads == [(1,)]


def test_no_wait_exits_at_once_naming_the_run_that_holds_the_warehouse(fresh_db, sample_dir):
    setup.init_schema(fresh_db)  # the lock lives in the warehouse database
    with lock.warehouse_lock(fresh_db, "etl run holder-run on a laptop"):
        started = time.monotonic()
        proc = _etl(fresh_db, "run", "--no-wait", "--run-id", "late", "--data-dir", str(sample_dir))
        _, err = proc.communicate(timeout=120)
        seconds = time.monotonic() - started
    proc.stderr = err
    assert proc.returncode == 4
    assert_one_line_error(
        proc, "the warehouse is busy: etl run holder-run on a laptop (pid ", "holds the etl run lock"
    )
    assert seconds < 60
    assert scalar(fresh_db, "SELECT count(*) FROM ingest_audit") == 0  # it loaded nothing, opened nothing


def test_a_killed_run_releases_the_lock(fresh_db, sample_dir):
    first = _etl(fresh_db, "run", "--run-id", "doomed", "--data-dir", str(sample_dir))
    _wait_for_holder(fresh_db, first)
    first.kill()
    first.communicate()
    deadline = time.monotonic() + 30
    while _lock_holder(fresh_db) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _lock_holder(fresh_db) is None  # the server ended the dead run's session, and its lock
    with lock.warehouse_lock(fresh_db, "next", wait=0):
        pass
