"""Progress of the long stages: rich bars on a terminal (a real pty), plain lines otherwise."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import tempfile

from etl import progress
from etl.publish import derived

ETL = [sys.executable, "-m", "etl.cli"]


def run_on_a_pty(args: list[str], env: dict) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; everything it drew."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")


def test_bars_with_rows_per_second_and_eta_on_a_terminal(fresh_db):
    with tempfile.TemporaryDirectory() as staging:
        env = {
            **os.environ,
            "DATABASE_URL": fresh_db.database_url,
            "ETL_STAGING_DIR": staging,
            "TERM": "xterm-256color",
            "COLUMNS": "200",
        }
        env.pop("ETL_PROGRESS", None)
        code, screen = run_on_a_pty([*ETL, "run"], env)
    assert code == 0, screen[-3000:]
    assert "\x1b[" in screen  # drawn with terminal escapes
    assert "━" in screen  # rich's bar
    for label in ("read 9 files", "transform fact_orders", "load tables", "refresh views"):
        assert label in screen, label
    assert "rows/s" in screen and "ETA" in screen
    assert "2,000 rows" in screen  # the sample's orders, counted as they are transformed


def test_plain_lines_without_a_terminal(fresh_db):
    with tempfile.TemporaryDirectory() as staging:
        proc = subprocess.run(
            [*ETL, "run"],
            capture_output=True,
            text=True,
            timeout=300,
            env={
                **os.environ,
                "DATABASE_URL": fresh_db.database_url,
                "ETL_STAGING_DIR": staging,
                "ETL_PROGRESS_SECONDS": "0",  # a line per update, so this short run shows them
            },
        )
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stderr and "━" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert any(line.startswith("transform fact_orders: 100% of") and "2,000 rows" in line for line in lines)
    assert any(line.startswith("load tables: 100% of 10 tables") and "done in" in line for line in lines)
    assert any(line.startswith(f"refresh views: 100% of {len(derived.TABLES)} views") for line in lines)
    assert "fact_orders" in proc.stdout  # the summary still goes to stdout, untouched


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_come_every_interval_with_eta(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    lines: list[str] = []
    reporter = progress.PlainLines(lines.append, every=10)
    task = reporter.task("transform fact_orders", total=1000, unit="bytes")
    for _ in range(10):  # 100 bytes and 5,000 rows every 4 s
        clock.now += 4
        task.advance(100, rows=5000)
    task.done()
    # lines at 12 s, 24 s and 36 s, plus the final one
    assert lines[:3] == [
        "transform fact_orders: 30% of 1,000 bytes, 15,000 rows, 1,250 rows/s, ETA 28 s",
        "transform fact_orders: 60% of 1,000 bytes, 30,000 rows, 1,250 rows/s, ETA 16 s",
        "transform fact_orders: 90% of 1,000 bytes, 45,000 rows, 1,250 rows/s, ETA 4 s",
    ]
    assert lines[3] == "transform fact_orders: 100% of 1,000 bytes, 50,000 rows, 1,250 rows/s, done in 40.0 s"
    quick = reporter.task("refresh views", total=9, unit="views")
    quick.advance(9)
    quick.done()
    assert len(lines) == 4  # a task done before its first interval says nothing


def test_off_and_stream_choice():
    assert type(progress.for_stream(env={"ETL_PROGRESS": "off"})) is progress.Reporter
    with tempfile.TemporaryFile("w+") as not_a_tty:
        assert isinstance(progress.for_stream(not_a_tty, env={}), progress.PlainLines)
