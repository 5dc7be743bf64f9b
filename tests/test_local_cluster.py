"""With no DATABASE_URL and nothing on the default port, a private cluster is used."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def local_dir():
    # Not under pytest's tmp_path: that is private to root, and the server must
    # run as an unprivileged user when the tests run as root.
    path = Path(tempfile.mkdtemp(prefix="etl-local-"))
    path.chmod(0o755)
    yield path / ".local"
    shutil.rmtree(path, ignore_errors=True)


def test_run_starts_a_private_cluster_when_nothing_answers(local_dir):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        PGPORT=str(free_port()),
        ETL_LOCAL_DIR=str(local_dir),
        ETL_STAGING_DIR=str(local_dir.parent / "staging"),
    )
    etl = [sys.executable, "-m", "etl.cli"]
    try:
        proc = subprocess.run([*etl, "run"], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "private cluster" in proc.stderr and str(local_dir) in proc.stderr
        assert "fact_orders" in proc.stdout
        # A second command reuses the running cluster and sees the data.
        status = subprocess.run([*etl, "db", "status"], env=env, capture_output=True, text=True, timeout=120)
        assert status.returncode == 0, status.stderr
        assert any(line.split()[:2] == ["fact_orders", "2,000"] for line in status.stdout.splitlines()), (
            status.stdout
        )
        if os.geteuid() == 0:
            owner = (local_dir / "pgdata").stat().st_uid
            assert owner != 0, "the private server must not run as root"
    finally:
        stop = subprocess.run(
            [*etl, "db", "stop-local"], env=env, capture_output=True, text=True, timeout=120
        )
        assert stop.returncode == 0, stop.stderr
