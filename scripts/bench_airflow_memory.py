#!/usr/bin/env python
"""Memory of a real Airflow deployment running etl_pipeline (docs/airflow.md "Memory").

Starts scheduler, dag-processor, api-server and triggerer as separate processes
(tests/airflow_live/harness.py: LocalExecutor, a throwaway PostgreSQL metadata
database, own ports) with ``[core] parallelism`` = --parallelism, triggers one run
through the REST API and samples the resident memory of every component and its
children (task processes included) twice a second, as summed RSS and summed PSS
(shared pages split among the forks that share them: what the machine spends).
Prints the idle figures (all components up, nothing running), the peaks during
the runs (the triggered one and the scheduled one unpausing queues), the most
processes seen, and the peak's ratio to idle. Everything is stopped by process group id at the end.

    .venv/bin/python scripts/bench_airflow_memory.py [--parallelism 4] [--data-dir ../shared/data/olist]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from etl.settings import SAMPLE_DATA_DIR, Settings  # noqa: E402
from etl.warehouse import connection as db  # noqa: E402
from tests.airflow_live.harness import AirflowCluster  # noqa: E402


def processes(cluster: AirflowCluster) -> list[psutil.Process]:
    found = []
    for proc in cluster.processes.values():
        try:
            root = psutil.Process(proc.pid)
            found += [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    return found


def sample(cluster: AirflowCluster) -> tuple[float, float, int]:
    """(summed RSS MB, summed PSS MB, processes). RSS counts pages shared by forks once per
    process; PSS splits them among the sharers, so its sum is what the machine really spends."""
    rss, pss, count = 0, 0, 0
    for p in processes(cluster):
        try:
            info = p.memory_full_info()
            rss, pss, count = rss + info.rss, pss + info.pss, count + 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return rss / 2**20, pss / 2**20, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--data-dir", type=Path, default=SAMPLE_DATA_DIR)
    args = parser.parse_args()

    server = Settings.from_env().database_url
    warehouse_url = db.server_url(server, f"etl_bench_{uuid.uuid4().hex[:8]}")
    db.ensure_database(warehouse_url)
    home = Path(tempfile.mkdtemp(prefix="airflow-mem-"))
    params = db.parse_url(warehouse_url)
    cluster = AirflowCluster(
        home=home,
        venv_bin=Path(sys.executable).parent,
        metadata_url=db.server_url(server, f"airflow_test_{uuid.uuid4().hex[:8]}"),
        parallelism=args.parallelism,
        extra_env={
            "AIRFLOW_CONN_WAREHOUSE": json.dumps(
                {
                    "conn_type": "postgres",
                    "host": params.get("host", "127.0.0.1"),
                    "port": int(params.get("port", 5432)),
                    "login": params.get("user", "postgres"),
                    "schema": params["dbname"],
                }
            ),
            "ETL_DATA_DIR": str(args.data_dir.resolve()),
            "ETL_STAGING_DIR": str(home / "staging"),
            "ETL_AIRFLOW_RETRIES": "0",
        },
    )
    peak = [0.0, 0.0, 0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            rss, pss, count = sample(cluster)
            peak[:] = [max(peak[0], rss), max(peak[1], pss), max(peak[2], count)]
            time.sleep(0.5)

    try:
        cluster.start()
        cluster.wait_for(
            lambda: cluster.api("GET", "/dags", params={"dag_id_pattern": "etl_pipeline"})["total_entries"],
            120,
            "the DAG to be parsed",
        )
        time.sleep(10)  # settle: every component up and idle
        idle, idle_pss, idle_count = sample(cluster)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        run_id = "manual__bench"
        cluster.api(
            "POST",
            "/dags/etl_pipeline/dagRuns",
            json={"dag_run_id": run_id, "logical_date": "2018-08-01T02:00:00Z"},
        )
        cluster.api("PATCH", "/dags/etl_pipeline", json={"is_paused": False})
        started = time.monotonic()
        run = cluster.wait_for_run("etl_pipeline", run_id, ("success",), 1800)
        # Unpausing also queued that morning's scheduled run: wait for every run to end.
        cluster.wait_for(
            lambda: all(
                r["state"] in ("success", "failed")
                for r in cluster.api("GET", "/dags/etl_pipeline/dagRuns")["dag_runs"]
            ),
            1800,
            "every run to end",
        )
        seconds = time.monotonic() - started
        stop.set()
        watcher.join()
        rows = db.connect(warehouse_url)
        try:
            with rows.cursor() as cur:
                cur.execute("SELECT coalesce(sum(rows_read), 0) FROM ingest_audit")
                read = int(cur.fetchone()[0])
        finally:
            rows.close()
        load = os.getloadavg()
        print(
            f"parallelism {args.parallelism}, data {args.data_dir}, load average {load[0]:.2f} {load[1]:.2f}"
        )
        print(f"idle, nothing running: RSS {idle:,.0f} MB, PSS {idle_pss:,.0f} MB in {idle_count} processes")
        print(
            f"peak during the runs:  RSS {peak[0]:,.0f} MB, PSS {peak[1]:,.0f} MB, up to {peak[2]} processes"
        )
        print(f"peak / idle (PSS):     {peak[1] / idle_pss:.2f}x")
        print(f"runs ended {seconds:.1f} s after the trigger ({run['state']}); {read:,} rows read")
    finally:
        stop.set()
        cluster.stop()
        cluster.drop()
        db.drop_database(warehouse_url)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
