#!/usr/bin/env python3
"""Benchmark: stream a big MariaDB and a big PostgreSQL table through `etl.ingest`.

For each server, creates a throwaway source database with ROWS orders (filled
server-side: MariaDB's sequence engine, PostgreSQL's generate_series) and a
throwaway warehouse database, then measures in separate child processes (so
each peak RSS is its own):

* ``etl``      -- ``etl.ingest.ingest_source`` of the table (PostgreSQL: ``COPY ... TO
                  STDOUT`` CSV parsed by pyarrow; MariaDB: connectorx Arrow stream;
                  batches archived as Parquet, mapped by columns, CSV written as it goes);
* ``etl-connectorx`` -- PostgreSQL only: the same ``ingest_source`` with the table read
                  by connectorx, as before the COPY reader (the A/B of the reader alone);
* ``baseline`` -- the naive read: the plain driver's buffered ``fetchall()``
                  (PyMySQL's default cursor; psycopg2's client-side cursor).

Each round runs the children one after the other (order reversed every other
round). Prints rows/s and peak RSS of each and their ratios. Acceptance (issue 16):
each table at >= 150k rows/s, >= 1x its fetchall(), peak RSS < 500 MB.
Figures go to docs/performance.md.

    .venv/bin/python scripts/bench_ingest_db.py [--rows 1000000] [--batch-size 100000]
        [--servers mysql postgres] [--partitions 1] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_etl(args) -> dict:
    import yaml

    from etl.ingest import runner, sql_arrow
    from etl.settings import Settings

    if args.child == "etl-connectorx":  # the reader PostgreSQL sources had before COPY
        sql_arrow._postgres_batches = lambda url, stmt, on, parts: sql_arrow._connectorx_batches(
            "postgres", url, stmt, args.batch_size, on, parts
        )

    staging = Path(args.staging)
    sources = staging / "sources.yml"
    entry = {
        "name": "bench-orders",
        "kind": args.server,
        "url": args.source_url,
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
    if args.partitions > 1:
        entry.update(partition_on="id", partitions=args.partitions)
    sources.write_text(yaml.safe_dump({"sources": [entry]}))
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
    if args.server == "mysql":
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", user="root", password="", database=args.database)
    else:
        import psycopg2

        conn = psycopg2.connect(args.source_url)
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM orders")
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


def fill_mysql(name: str, rows: int) -> str:
    import pymysql

    admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        cur.execute(f"USE `{name}`")  # the sequence engine's seq_1_to_N lives in the current database
        cur.execute(
            f"CREATE TABLE `{name}`.orders (id BIGINT PRIMARY KEY, cid VARCHAR(20), "
            "status VARCHAR(20), created_at DATETIME, updated_at DATETIME, KEY (updated_at))"
        )
        cur.execute(
            f"INSERT INTO `{name}`.orders SELECT seq, concat('c', seq % 50000), 'delivered', "
            "'2024-01-01 00:00:00' + INTERVAL seq SECOND, '2024-01-01 00:00:00' + INTERVAL seq SECOND "
            f"FROM seq_1_to_{rows}"
        )
    admin.close()
    return f"mysql://root@127.0.0.1:3306/{name}"


def drop_mysql(name: str) -> None:
    import pymysql

    admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


def fill_postgres(url: str, rows: int) -> str:
    """Fill the table; the database as a postgresql:// URL (what sources.yml holds)."""
    import psycopg2
    import psycopg2.extensions

    from etl.warehouse import connection as db

    db.ensure_database(url)
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, cid VARCHAR(20), status VARCHAR(20), "
            "created_at TIMESTAMP, updated_at TIMESTAMP)"
        )
        cur.execute(
            "INSERT INTO orders SELECT g, 'c' || (g %% 50000), 'delivered', "
            "timestamp '2024-01-01' + g * interval '1 second', timestamp '2024-01-01' + g * interval '1 second' "
            "FROM generate_series(1, %s) g",
            (rows,),
        )
        cur.execute("CREATE INDEX ON orders (updated_at)")
    conn.close()
    params = psycopg2.extensions.parse_dsn(url)
    return (
        f"postgresql://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:"
        f"{params.get('port', '5432')}/{params['dbname']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=100_000)
    parser.add_argument("--servers", nargs="*", default=["mysql", "postgres"], choices=["mysql", "postgres"])
    parser.add_argument("--partitions", type=int, default=1, help="parallel range reads on the id column")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each reader, alternated")
    parser.add_argument("--child", default=None)
    parser.add_argument("--server", default="mysql")
    parser.add_argument("--source-url")
    parser.add_argument("--database")
    parser.add_argument("--warehouse-url")
    parser.add_argument("--staging")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_baseline(args) if args.child == "baseline" else child_etl(args)))
        return

    from etl.run import setup
    from etl.settings import Settings
    from etl.warehouse import connection as db

    print(f"load average: {load()}")
    server = Settings.from_env().database_url
    results = {}
    for kind in args.servers:
        name = f"etl_bench_{uuid.uuid4().hex[:8]}"
        warehouse = db.server_url(server, name)
        source_pg = db.server_url(server, f"{name}_src")
        try:
            t = time.perf_counter()
            source_url = (
                fill_mysql(name, args.rows) if kind == "mysql" else fill_postgres(source_pg, args.rows)
            )
            print(f"{kind}: filled {args.rows:,} rows in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            # The warehouse schema once, untimed: the children measure the read, not the migrations.
            setup.init_schema(
                Settings.from_env().with_overrides(database_url=warehouse, database_url_explicit=True)
            )
            with tempfile.TemporaryDirectory(prefix="etl-bench-") as staging:
                common = [
                    "--server", kind, "--source-url", source_url, "--database", name,
                    "--warehouse-url", warehouse, "--staging", staging,
                    "--batch-size", str(args.batch_size), "--partitions", str(args.partitions),
                ]  # fmt: skip
                modes = ["baseline", "etl"] + (["etl-connectorx"] if kind == "postgres" else [])
                results[kind] = {mode: [] for mode in modes}
                for n in range(args.rounds):
                    for mode in modes if n % 2 == 0 else modes[::-1]:
                        results[kind][mode].append(run_child(mode, common))
                        print(f"{kind} round {n + 1} {mode}: load {load()}", file=sys.stderr)
        finally:
            if kind == "mysql":
                drop_mysql(name)
            else:
                db.drop_database(source_pg)
            db.drop_database(warehouse)

    print(f"{'read':<40} {'rows':>10} {'seconds':>8} {'rows/s':>9} {'peak RSS MB':>12}")
    labels = {
        "baseline": "baseline fetchall (buffered)",
        "etl": "etl.ingest (COPY)",
        "etl-connectorx": "etl.ingest (connectorx)",
    }
    ok = True
    for kind, runs in results.items():
        labels["etl"] = "etl.ingest (COPY)" if kind == "postgres" else "etl.ingest (connectorx)"
        for n in range(args.rounds):
            for mode, r in ((mode, rs[n]) for mode, rs in runs.items()):
                print(
                    f"{kind + ': ' + labels[mode]:<40} {r['rows']:>10,} {r['seconds']:>8.2f} "
                    f"{r['rows'] / r['seconds']:>9,.0f} {r['peak_rss_mb']:>12.0f}"
                )
            base, etl = runs["baseline"][n], runs["etl"][n]
            rate = etl["rows"] / etl["seconds"]
            ratio = rate / (base["rows"] / base["seconds"])
            line = f"{kind}: round {n + 1}: throughput ratio etl/fetchall {ratio:.2f}"
            if "etl-connectorx" in runs:
                cx = runs["etl-connectorx"][n]
                line += f" (connectorx/fetchall {base['seconds'] / cx['seconds']:.2f}; COPY/connectorx {cx['seconds'] / etl['seconds']:.2f})"
            print(
                f"{line}; peak RSS ratio {etl['peak_rss_mb'] / base['peak_rss_mb']:.2f}; {etl['batches']} batches"
            )
            passed = rate >= 150_000 and ratio >= 1 and etl["peak_rss_mb"] < 500 and etl["rows"] == args.rows
            ok = ok and passed
            print(
                f"{kind}: acceptance (>= 150k rows/s, >= 1x fetchall, < 500 MB):",
                "PASS" if passed else "FAIL",
            )
    print(f"load average: {load()}")
    print("overall:", "PASS" if ok else "FAIL")


if __name__ == "__main__":
    main()
