#!/usr/bin/env python3
"""Benchmark: stream a big MariaDB table through `etl.ingest` with bounded memory.

Creates a throwaway MariaDB database with ROWS orders (MariaDB's sequence
engine fills it server-side) and a throwaway warehouse database, then measures
in separate child processes (so each peak RSS is its own):

* ``etl``      -- ``etl.ingest.ingest_source`` of the table (unbuffered SSCursor, batches,
                  raw archive + mapped CSV written as it goes);
* ``baseline`` -- the naive read: PyMySQL's default buffered cursor, ``fetchall()``.

Prints rows/s and peak RSS of both and their ratio. Acceptance: the etl peak
RSS of 1,000,000 rows stays under 500 MB. Figures go to docs/performance.md.

    .venv/bin/python scripts/bench_ingest_db.py [--rows 1000000] [--batch-size 10000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_etl(args) -> dict:
    import yaml

    from etl.ingest import runner
    from etl.settings import Settings

    staging = Path(args.staging)
    sources = staging / "sources.yml"
    sources.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {
                        "name": "bench-orders",
                        "kind": "mysql",
                        "url": args.mysql_url,
                        "from": "orders",
                        "table": "fact_orders",
                        "cursor": "updated_at",
                        "id_field": "id",
                        "batch_size": args.batch_size,
                        "hash_ids": ["order_id", "customer_id"],
                        "id_namespace": "bench",
                        "columns": {
                            "order_id": "id",
                            "customer_id": "cid",
                            "order_status": "status",
                            "order_purchase_timestamp": "created_at",
                        },
                    }
                ]
            }
        )
    )
    settings = Settings.from_env().with_overrides(
        database_url=args.warehouse_url, database_url_explicit=True, staging_dir=staging, sources_file=sources
    )
    started = time.perf_counter()
    summary = runner.ingest_source(settings, "bench", "bench-orders")
    seconds = time.perf_counter() - started
    if summary["status"] != "succeeded":
        raise SystemExit(summary["error"])
    return {
        "rows": summary["records_new"],
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "batches": summary["batches"],
        "archived": summary["payloads_archived"],
    }


def child_baseline(args) -> dict:
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", user="root", password="", database=args.database)
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM orders ORDER BY updated_at")
        rows = cur.fetchall()
    seconds = time.perf_counter() - started
    conn.close()
    return {"rows": len(rows), "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def run_child(mode: str, extra: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, *extra], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"{mode} child failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--child", default=None)
    parser.add_argument("--mysql-url")
    parser.add_argument("--database")
    parser.add_argument("--warehouse-url")
    parser.add_argument("--staging")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_etl(args) if args.child == "etl" else child_baseline(args)))
        return

    import pymysql

    from etl.settings import Settings
    from etl.warehouse import connection as db

    name = f"etl_bench_{uuid.uuid4().hex[:8]}"
    admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    warehouse = db.server_url(Settings.from_env().database_url, name)
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
            cur.execute(f"USE `{name}`")
            cur.execute(
                f"CREATE TABLE `{name}`.orders (id BIGINT PRIMARY KEY, cid VARCHAR(20), "
                "status VARCHAR(20), created_at DATETIME, updated_at DATETIME, KEY (updated_at))"
            )
            t = time.perf_counter()
            cur.execute(
                f"INSERT INTO `{name}`.orders SELECT seq, concat('c', seq % 50000), 'delivered', "
                "'2024-01-01 00:00:00' + INTERVAL seq SECOND, '2024-01-01 00:00:00' + INTERVAL seq SECOND "
                f"FROM seq_1_to_{args.rows}"
            )
            print(f"filled {args.rows:,} rows in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="etl-bench-") as staging:
            common = [
                "--mysql-url",
                f"mysql://root@127.0.0.1:3306/{name}",
                "--database",
                name,
                "--warehouse-url",
                warehouse,
                "--staging",
                staging,
                "--batch-size",
                str(args.batch_size),
            ]
            base = run_child("baseline", common)
            etl = run_child("etl", common)
        print(f"{'read':<28} {'rows':>10} {'seconds':>8} {'rows/s':>9} {'peak RSS MB':>12}")
        for label, r in (("baseline fetchall (buffered)", base), ("etl.ingest (SSCursor, batches)", etl)):
            print(
                f"{label:<28} {r['rows']:>10,} {r['seconds']:>8.1f} {r['rows'] / r['seconds']:>9,.0f} "
                f"{r['peak_rss_mb']:>12.0f}"
            )
        print(
            f"peak RSS ratio etl/baseline: {etl['peak_rss_mb'] / base['peak_rss_mb']:.2f}; "
            f"throughput ratio: {(etl['rows'] / etl['seconds']) / (base['rows'] / base['seconds']):.2f}; "
            f"{etl['batches']} batches archived"
        )
        print(
            "acceptance (< 500 MB):",
            "PASS" if etl["peak_rss_mb"] < 500 and etl["rows"] == args.rows else "FAIL",
        )
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()
        db.drop_database(warehouse)


if __name__ == "__main__":
    main()
