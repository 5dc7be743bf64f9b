"""Shared by the fault tests: 40,000 generated orders, an uninterrupted run's warehouse, a real `etl run`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from etl.generate import generate
from etl.olist import ALL_TABLES
from etl.run.stages import run_pipeline
from etl.warehouse import connection as db
from tests.conftest import _new_database_url, make_settings, query

ORDERS = 40_000


@pytest.fixture(scope="session")
def orders40k(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("orders40k")
    generate(ORDERS, 0.02, 11, out)
    for extra in out.glob("ground_truth*"):
        extra.unlink()
    return out


def snapshot(settings) -> dict[str, tuple[int, str]]:
    """Per table: row count and an md5 over the spec's columns, rows sorted."""
    out = {}
    for spec in ALL_TABLES:
        present = {
            r[0]
            for r in query(
                settings,
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                (spec.name,),
            )
        }
        columns = [c.target for c in spec.columns if c.target in present]
        listed = ", ".join(f'"{c}"' for c in columns)
        count, digest = query(
            settings,
            f"SELECT count(*), md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) "  # noqa: S608
            f"FROM (SELECT {listed} FROM {spec.name}) r",
        )[0]
        out[spec.name] = (count, digest)
    out["quarantine"] = tuple(
        query(settings, "SELECT count(*), count(DISTINCT (table_name, row_number, rule)) FROM quarantine")[0]
    )
    return out


@pytest.fixture(scope="session")
def reference(orders40k, tmp_path_factory):
    url = _new_database_url()
    settings = make_settings(
        url, staging_dir=tmp_path_factory.mktemp("ref"), sources_file=Path("/nonexistent/sources.yml")
    )
    try:
        run_pipeline(settings, data_dir=orders40k, run_id="uninterrupted")
        yield snapshot(settings)
    finally:
        db.drop_database(url)


def start_run(settings, data_dir: Path, run_id: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "etl.cli", "run", "--run-id", run_id, "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "ETL_STAGING_DIR": str(settings.staging_dir),
            "ETL_SOURCES_FILE": "/nonexistent/sources.yml",
        },
    )


def audit_open(settings, run_id: str) -> bool:
    try:
        return bool(
            query(settings, "SELECT 1 FROM ingest_audit WHERE run_id = %s AND status = 'running'", (run_id,))
        )
    except psycopg2.Error:  # not created yet
        return False
