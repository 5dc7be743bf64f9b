#!/usr/bin/env python
"""How much Airflow adds over `etl run` for the same data (target: <= 30 s).

Runs, each against its own fresh database on the local server:
  1. baseline: `etl run --data-dir DIR` (the CLI, one process)
  2. `airflow dags test etl_pipeline 2018-08-01` with ETL_DATA_DIR=DIR, in a temporary
     AIRFLOW_HOME (SQLite metadata DB; `airflow db migrate` is done first and timed apart)
and prints wall seconds, rows/s, peak RSS of each and the difference/ratio.
The Airflow run does more than the baseline (refresh_aggregates, validate, notify).

    .venv/bin/python scripts/bench_airflow.py [--data-dir ../shared/data/olist]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from etl.run import setup  # noqa: E402
from etl.settings import Settings  # noqa: E402
from etl.warehouse import connection as db  # noqa: E402

BIN = Path(sys.executable).parent


def timed(cmd: list[str], env: dict) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB of the process tree's largest process, exit code)."""
    with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: Airflow logs a lot
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            log.seek(0)
            sys.stderr.write(log.read()[-3000:])
    return seconds, usage.ru_maxrss / 1024, code


def rows_read(url: str) -> int:
    conn = db.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(sum(rows_read), 0) FROM ingest_audit")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    candidates = [
        os.environ.get("ETL_OLIST_DIR", ""),
        str(ROOT.parent / "shared" / "data" / "olist"),
        "/work/shared/data/olist",
    ]
    default = next((Path(c) for c in candidates if c and Path(c).is_dir()), None)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default,
        help="Olist files (default: ETL_OLIST_DIR or the team's shared subset)",
    )
    args = parser.parse_args()
    server = Settings.from_env().database_url
    urls = [db.server_url(server, f"etl_bench_{uuid.uuid4().hex[:8]}") for _ in range(2)]
    home, staging = tempfile.mkdtemp(prefix="airflow-bench-"), tempfile.mkdtemp(prefix="etl-bench-")
    base_env = {**os.environ, "ETL_STAGING_DIR": staging, "ETL_VALIDATE_REQUIRE_QUALITY_SCORES": "false"}
    try:
        for url in urls:  # schema creation is not what we measure
            setup.init_schema(Settings.from_env({"DATABASE_URL": url}))
        etl_s, etl_rss, rc = timed(
            [str(BIN / "etl"), "run", "--data-dir", str(args.data_dir)], {**base_env, "DATABASE_URL": urls[0]}
        )
        assert rc == 0, "etl run failed"
        af_env = {
            **base_env,
            "DATABASE_URL": urls[1],
            "ETL_DATA_DIR": str(args.data_dir),
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        }
        migrate_s, _, rc = timed([str(BIN / "airflow"), "db", "migrate"], af_env)
        assert rc == 0, "airflow db migrate failed"
        af_s, af_rss, rc = timed([str(BIN / "airflow"), "dags", "test", "etl_pipeline", "2018-08-01"], af_env)
        assert rc == 0, "airflow dags test failed"
        rows = rows_read(urls[0])
        assert rows == rows_read(urls[1]), "the two runs read different amounts"
        print(f"data: {args.data_dir} ({rows:,} source rows read per run)")
        print(
            f"etl run                 {etl_s:7.1f} s  {rows / etl_s:9,.0f} rows/s  peak RSS {etl_rss:6.0f} MiB"
        )
        print(
            f"airflow dags test       {af_s:7.1f} s  {rows / af_s:9,.0f} rows/s  peak RSS {af_rss:6.0f} MiB"
        )
        print(f"  (airflow db migrate, once per AIRFLOW_HOME: {migrate_s:.1f} s, not counted)")
        print(f"Airflow adds {af_s - etl_s:+.1f} s ({af_s / etl_s:.2f}x the etl run); target <= +30 s")
        return 0 if af_s - etl_s <= 30 else 1
    finally:
        for url in urls:
            db.drop_database(url)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
