"""The `etl` command as a person meets it: one-line errors, nothing half-written."""

import os
import subprocess
import sys
import tempfile

import pandas as pd

from etl.run import setup
from etl.run.plan import PLAN
from tests.conftest import query, scalar

ETL = [sys.executable, "-m", "etl.cli"]


def etl(*args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    # Stage files go to a temporary folder, not the checkout's data/staging.
    with tempfile.TemporaryDirectory(prefix="etl-staging-") as staging:
        return subprocess.run(
            [*ETL, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "ETL_STAGING_DIR": staging, **(env or {})},
        )


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_run_on_the_shipped_sample_prints_a_summary(fresh_db):
    proc = etl("run", env={"DATABASE_URL": fresh_db.database_url})
    assert proc.returncode == 0, proc.stderr
    assert "fact_orders" in proc.stdout and "rows quarantined" in proc.stdout
    assert scalar(fresh_db, "SELECT count(*) FROM fact_orders") == 2_000
    # Each planned stage's seconds, source rows/s and peak RSS, in the plan's order.
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["stage", "seconds"])
    rows = [line.split() for line in lines[header + 1 : header + 1 + len(PLAN)]]
    assert [r[0] for r in rows] == [stage.name for stage in PLAN]
    seconds = [float(r[1]) for r in rows]
    assert all(r[2] == "-" or float(r[2].replace(",", "")) > 0 for r in rows)
    peaks = [float(r[3].replace(",", "")) for r in rows]
    assert all(s >= 0 for s in seconds) and sum(seconds) > 0
    assert peaks == sorted(peaks) and peaks[-1] > 50  # a peak only grows; a Python with pandas is > 50 MB


def test_wrong_database_url_is_one_line(fresh_db):
    proc = etl("run", env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/warehouse"})
    assert_one_line_error(proc, "cannot connect to PostgreSQL at 127.0.0.1:1/warehouse")


def test_missing_data_directory_is_one_line(fresh_db, tmp_path):
    proc = etl("run", "--data-dir", str(tmp_path / "nowhere"), env={"DATABASE_URL": fresh_db.database_url})
    assert_one_line_error(proc, "nowhere", "does not exist")


def test_missing_column_stops_before_anything_is_written(fresh_db, copy_of_sample):
    setup.init_schema(fresh_db)
    items = copy_of_sample / "olist_order_items_dataset.csv"
    pd.read_csv(items, dtype=str).drop(columns=["freight_value"]).to_csv(items, index=False)
    proc = etl("run", "--data-dir", str(copy_of_sample), env={"DATABASE_URL": fresh_db.database_url})
    assert_one_line_error(proc, "olist_order_items_dataset.csv", "freight_value")
    for table in ("fact_orders", "dim_customers", "ingest_audit", "quarantine"):
        assert scalar(fresh_db, f"SELECT count(*) FROM {table}") == 0, table


def test_dirty_rows_are_quarantined_and_counts_reconcile(fresh_db, copy_of_sample):
    orders = copy_of_sample / "olist_orders_dataset.csv"
    frame = pd.read_csv(orders, dtype=str, keep_default_na=False)
    bad = frame.head(3).copy()
    bad.loc[bad.index[0], "order_purchase_timestamp"] = "yesterday"  # format
    bad.loc[bad.index[1], "order_id"] = ""  # missing
    # the third is an exact duplicate of an existing order
    pd.concat([frame, bad]).to_csv(orders, index=False)
    proc = etl("run", "--data-dir", str(copy_of_sample), env={"DATABASE_URL": fresh_db.database_url})
    assert proc.returncode == 0, proc.stderr
    rows = dict(query(fresh_db, "SELECT category, count(*) FROM quarantine GROUP BY 1"))
    assert rows == {"DATA_FORMAT_ERROR": 1, "MISSING_REQUIRED_FIELD": 1, "DUPLICATE": 1}
    read, loaded, quarantined = query(
        fresh_db,
        """SELECT rows_read, rows_loaded, rows_quarantined
        FROM ingest_audit WHERE table_name = 'fact_orders'""",
    )[0]
    assert (read, loaded, quarantined) == (2_003, 2_000, 3)
    row = query(
        fresh_db,
        "SELECT row_number, raw_record->>'order_purchase_timestamp' FROM quarantine "
        "WHERE category = 'DATA_FORMAT_ERROR'",
    )[0]
    assert row == (2_002, "yesterday")


def test_db_status_names_the_mode(fresh_db):
    setup.init_schema(fresh_db)
    proc = etl("db", "status", env={"DATABASE_URL": fresh_db.database_url})
    assert proc.returncode == 0, proc.stderr
    assert "mode: timescaledb-apache" in proc.stdout or "mode: postgresql" in proc.stdout
    assert "fact_orders" in proc.stdout


def test_malformed_database_url_is_one_line():
    proc = etl("db", "init", env={"DATABASE_URL": "garbage"})
    assert_one_line_error(proc, "DATABASE_URL is not a PostgreSQL URL")
