"""SIGKILL of a real `etl run` during ingest, transform and load; then a rerun.

The data is 40,000 generated orders (every stage lasts long enough to be
caught in the middle; the kill point is observed, not timed: the archive
being written, the clean folder without its metadata, the audit rows open).
After each kill: nothing of the killed run is loaded, no file is recorded as
loaded (the Olist folder's "watermark"), and the audit shows the run as not
succeeded. After the rerun the warehouse equals an uninterrupted run's,
table by table, column by column.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.conftest import query
from tests.reliability.conftest import audit_open, snapshot, start_run


def _archiving(settings, run_id: str) -> bool:
    manifests = list((settings.staging_dir / "raw" / "olist").glob("*/manifest.jsonl"))
    return (
        bool(manifests)
        and manifests[0].stat().st_size > 0
        and not (settings.staging_dir / "clean" / run_id).exists()
    )


def _transforming(settings, run_id: str) -> bool:
    clean = settings.staging_dir / "clean" / run_id
    return clean.exists() and any(clean.iterdir()) and not (clean / "_metadata.json").exists()


MOMENTS = {"ingest": _archiving, "transform": _transforming, "load": audit_open}


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(MOMENTS))
def test_sigkill_then_rerun_equals_an_uninterrupted_run(stage, fresh_db, orders40k, reference):
    settings = fresh_db.with_overrides(sources_file=Path("/nonexistent/sources.yml"))
    proc = start_run(settings, orders40k, "killed")
    caught = MOMENTS[stage]
    deadline = time.monotonic() + 240
    while not caught(settings, "killed"):
        assert proc.poll() is None, f"the run ended before its {stage} stage was caught: {proc.communicate()}"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    # Nothing of the killed run is in the warehouse, and no file counts as loaded.
    tables = {r[0] for r in query(settings, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    if "fact_orders" in tables:
        assert query(settings, "SELECT count(*) FROM fact_orders") == [(0,)]
        assert query(settings, "SELECT count(*) FROM ingest_files") == [(0,)]
        statuses = {s for (s,) in query(settings, "SELECT status FROM ingest_audit WHERE run_id = 'killed'")}
        assert "succeeded" not in statuses
        if stage == "load":
            assert statuses == {"running"}  # unfinished, until the next load says what became of it

    rerun = start_run(settings, orders40k, "rerun")
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()[-2000:]
    assert snapshot(settings) == reference
    if stage == "load":
        rows = query(settings, "SELECT DISTINCT status, error FROM ingest_audit WHERE run_id = 'killed'")
        assert len(rows) == 1 and rows[0][0] == "failed" and rows[0][1].startswith("unfinished: ")
    loads = query(
        settings, "SELECT DISTINCT run_id FROM ingest_audit WHERE status = 'succeeded' AND rows_loaded > 0"
    )
    assert loads == [("rerun",)]
