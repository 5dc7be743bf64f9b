"""The warehouse's server restarts in the middle of a load (a private cluster this test owns).

The run must fail cleanly -- one line, no traceback, nothing partial in the
warehouse, no file counted as loaded -- and the next run, once the server is
back, must leave the warehouse exactly as an uninterrupted run does.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import make_settings, query
from tests.reliability.conftest import audit_open, snapshot, start_run
from tests.reliability.private_cluster import PrivateCluster


@pytest.mark.slow
def test_a_server_restart_mid_load_fails_cleanly_and_the_rerun_loads_everything(
    orders40k, reference, tmp_path
):
    with PrivateCluster() as cluster:
        settings = make_settings(
            cluster.url, staging_dir=tmp_path / "staging", sources_file=Path("/nonexistent/sources.yml")
        )
        proc = start_run(settings, orders40k, "interrupted")
        deadline = time.monotonic() + 240
        while not audit_open(settings, "interrupted"):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.005)
        cluster.stop("immediate")  # a crash-like restart: no checkpoint, every session cut
        cluster.start()
        _, err = proc.communicate(timeout=300)
        err = err.decode()
        assert proc.returncode != 0
        assert "Traceback" not in err, err[-3000:]
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert "load failed and was rolled back" in lines[0] or "stopped answering" in lines[0], lines[0]

        # nothing partial: the load was one transaction, cut before its commit
        assert query(settings, "SELECT count(*) FROM fact_orders") == [(0,)]
        assert query(settings, "SELECT count(*) FROM fact_order_items") == [(0,)]
        assert query(settings, "SELECT count(*) FROM ingest_files") == [(0,)]
        statuses = {
            s for (s,) in query(settings, "SELECT status FROM ingest_audit WHERE run_id = 'interrupted'")
        }
        assert "succeeded" not in statuses

        rerun = start_run(settings, orders40k, "after-restart")
        _, err = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, err.decode()[-2000:]
        assert snapshot(settings) == reference
        rows = query(settings, "SELECT DISTINCT status FROM ingest_audit WHERE run_id = 'interrupted'")
        assert rows == [("failed",)]
