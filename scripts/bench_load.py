#!/usr/bin/env python
"""Load the same N synthetic order-item rows by several methods into the same server.

    .venv/bin/pip install -r requirements-bench.txt   # dlt, adbc (peers; optional)
    .venv/bin/python scripts/bench_load.py [--rows 1000000] [--repeat 1]

Each method loads an in-memory Arrow table (or the same rows as CSV, for psql)
into a freshly created, empty table: a plain table and a TimescaleDB hypertable
(when the server has the extension). Both have the primary key; the hypertable
is made like the product's fact_orders (sql/timescaledb_setup.sql): 30-day
chunks and TimescaleDB's default time index, which the plain table lacks. The
loader (etl.load.merge.load_table) is also timed merging the same rows over themselves (nothing changed) and with 10 %
changed. Slow methods (to_sql, execute_values) run on fewer rows, scaled.
Prints rows/s, the process's peak RSS and the ratios loader/psql and
loader/to_sql, all from this one process run. Uses its own database
(etl_bench_*), dropped at the end; never the warehouse.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from etl.load import merge
from etl.settings import Settings  # noqa: E402
from etl.warehouse import connection as db

COLUMNS_SQL = """order_id CHAR(32) NOT NULL, order_item_id SMALLINT NOT NULL, product_id CHAR(32) NOT NULL,
    seller_id CHAR(32) NOT NULL, shipping_limit_at TIMESTAMPTZ NOT NULL, price_cents BIGINT NOT NULL,
    freight_cents BIGINT NOT NULL, quantity INTEGER NOT NULL, payment_type TEXT NOT NULL,
    weight_kg DOUBLE PRECISION"""
KEY = ("order_id", "order_item_id", "shipping_limit_at")


def make_rows(n: int, seed: int = 7) -> pa.Table:
    """n rows shaped like fact_order_items (10 columns), built vectorised."""
    rng = np.random.default_rng(seed)
    hexes = lambda values: pa.array(np.char.zfill(np.char.mod("%x", values), 32))  # noqa: E731
    start = np.datetime64("2017-01-01T00:00:00", "us")
    return pa.table(
        {
            "order_id": hexes(np.arange(n) // 2 + 10**12),
            "order_item_id": pa.array((np.arange(n) % 2 + 1).astype(np.int16)),
            "product_id": hexes(rng.integers(0, 30_000, n)),
            "seller_id": hexes(rng.integers(0, 3_000, n)),
            "shipping_limit_at": pa.array(
                start + rng.integers(0, 2 * 365 * 86_400 * 10**6, n).astype("timedelta64[us]"),
                pa.timestamp("us", tz="UTC"),
            ),
            "price_cents": pa.array(rng.integers(100, 500_000, n)),
            "freight_cents": pa.array(rng.integers(0, 20_000, n)),
            "quantity": pa.array(rng.integers(1, 5, n).astype(np.int32)),
            "payment_type": pa.array(rng.choice(["credit_card", "boleto", "voucher", "debit_card"], n)),
            "weight_kg": pa.array(rng.random(n) * 30),
        }
    )


class Bench:
    def __init__(self, url: str, hypertable: bool) -> None:
        self.url = url
        self.hypertable = hypertable

    def fresh_table(self, name: str, schema: str = "public") -> str:
        conn = db.connect(self.url)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                cur.execute(f"DROP TABLE IF EXISTS {schema}.{name}")
                cur.execute(
                    f"CREATE TABLE {schema}.{name} ({COLUMNS_SQL}, PRIMARY KEY (order_id, order_item_id, shipping_limit_at))"
                )
                if self.hypertable:
                    cur.execute(
                        "SELECT create_hypertable(%s, by_range('shipping_limit_at', INTERVAL '30 days'))",
                        (f"{schema}.{name}",),
                    )
            with conn.cursor() as cur:  # start each method from a clean buffer state
                conn.autocommit = True
                cur.execute("CHECKPOINT")
        finally:
            conn.close()
        return name

    def drop_schema(self, schema: str) -> None:
        conn = db.connect(self.url)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            conn.close()


def timed(fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run_loader(url: str, table: str, rows: pa.Table) -> None:
    conn = db.connect(url)
    try:
        with conn, conn.cursor() as cur:
            merge.load_table(cur, table, rows, key=KEY)
    finally:
        conn.close()


def run_loader_indexes_kept(url: str, table: str, rows: pa.Table) -> None:
    """The loader with the table's indexes maintained during the COPY (etl/deferred_indexes.py
    switched off; rows ordered by chunk, as before that), to show what deferring them buys."""
    from unittest import mock

    with mock.patch.object(merge.deferred_indexes, "MIN_ROWS", sys.maxsize):
        run_loader(url, table, rows)


def run_psql(url: str, table: str, csv_path: Path) -> None:
    subprocess.run(
        [
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            f"\\copy {table} FROM '{csv_path}' WITH (FORMAT csv)",
        ],
        check=True,
    )


def run_to_sql(url: str, table: str, rows: pa.Table) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        rows.to_pandas().to_sql(
            table, engine, if_exists="append", index=False, method="multi", chunksize=10_000
        )
    finally:
        engine.dispose()


def run_execute_values(url: str, table: str, rows: pa.Table) -> None:
    import psycopg2.extras

    conn = db.connect(url)
    try:
        with conn, conn.cursor() as cur:
            tuples = list(zip(*(c.to_pylist() for c in rows.columns)))
            psycopg2.extras.execute_values(cur, f"INSERT INTO {table} VALUES %s", tuples, page_size=10_000)
    finally:
        conn.close()


def run_pgpq_psycopg3(url: str, table: str, rows: pa.Table) -> None:
    import psycopg

    from etl import binary_copy

    with psycopg.connect(url) as conn:
        with conn.cursor().copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy:
            for chunk in binary_copy.encode(rows):
                copy.write(chunk)


def run_adbc(url: str, table: str, rows: pa.Table) -> None:
    import adbc_driver_postgresql.dbapi as adbc

    with adbc.connect(url) as conn:
        with conn.cursor() as cur:
            cur.adbc_ingest(table, rows, mode="append")
        conn.commit()


def run_dlt(url: str, table: str, rows: pa.Table, dataset: str) -> None:
    import dlt

    if "@" in url and ":" not in url.split("@")[0].split("//")[1]:
        # dlt insists on a password even where the server trusts the connection.
        url = url.replace("@", ":unused@", 1)
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{uuid.uuid4().hex[:6]}",
        dataset_name=dataset,
        destination=dlt.destinations.postgres(credentials=url),
        pipelines_dir=tempfile.mkdtemp(prefix="dlt-"),
    )
    pipeline.run(rows, table_name=table, write_disposition="append", loader_file_format="parquet")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def available(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=20_000, help="rows for to_sql (scaled)")
    parser.add_argument("--medium-rows", type=int, default=100_000, help="rows for execute_values (scaled)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of all methods, alternating (median reported)"
    )
    parser.add_argument("--only", nargs="*", help="run only methods whose name contains one of these words")
    parser.add_argument(
        "--targets", nargs="*", default=["plain", "hypertable"], help="plain and/or hypertable"
    )
    parser.add_argument("--no-merge", action="store_true", help="skip the merge measurements")
    args = parser.parse_args()

    server = Settings.from_env().database_url
    url = db.server_url(server, f"etl_bench_{uuid.uuid4().hex[:8]}")
    db.ensure_database(url)
    try:
        conn = db.connect(url)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
            has_tsdb = cur.fetchone() is not None
            if has_tsdb:
                cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        conn.close()
        url_dsn = _as_url(url)
        rows = make_rows(args.rows)
        small, medium = rows.slice(0, args.small_rows), rows.slice(0, args.medium_rows)
        tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
        csv_path = tmp / "rows.csv"
        pacsv.write_csv(rows, csv_path, pacsv.WriteOptions(include_header=False))
        mask = np.arange(args.rows) % 10 == 0
        changed = rows.set_column(
            rows.schema.get_field_index("price_cents"),
            "price_cents",
            pc.if_else(pa.array(mask), pc.add(rows["price_cents"], 1), rows["price_cents"]),
        )
        n_changed = int(mask.sum())
        print(
            f"{args.rows:,} rows x {rows.num_columns} columns; Arrow {rows.nbytes / 2**20:.0f} MiB, "
            f"CSV {csv_path.stat().st_size / 2**20:.0f} MiB; server {db.describe_url(url)}; "
            f"TimescaleDB {'yes' if has_tsdb else 'no'}",
            flush=True,
        )

        targets = [
            (t, h)
            for t, h in [("plain", False)] + ([("hypertable", True)] if has_tsdb else [])
            if t in args.targets
        ]
        methods: list[tuple[str, int, Callable[[Bench, str], None]]] = [
            ("etl loader (pgpq binary COPY, psycopg2)", args.rows, lambda b, t: run_loader(url_dsn, t, rows)),
            (
                "etl loader, indexes kept during COPY",
                args.rows,
                lambda b, t: run_loader_indexes_kept(url_dsn, t, rows),
            ),
            ("psql \\copy CSV (yardstick)", args.rows, lambda b, t: run_psql(url_dsn, t, csv_path)),
            ("pgpq binary COPY via psycopg 3", args.rows, lambda b, t: run_pgpq_psycopg3(url_dsn, t, rows)),
        ]
        if available("adbc_driver_postgresql"):
            methods.append(("ADBC adbc_ingest", args.rows, lambda b, t: run_adbc(url_dsn, t, rows)))
        methods += [
            (
                "psycopg2 execute_values",
                args.medium_rows,
                lambda b, t: run_execute_values(url_dsn, t, medium),
            ),
            ("pandas to_sql(method='multi')", args.small_rows, lambda b, t: run_to_sql(url_dsn, t, small)),
        ]
        if available("dlt"):
            methods.append(("dlt parquet (ADBC) pipeline.run", args.rows, None))
        if args.only:
            methods = [m for m in methods if any(w.lower() in m[0].lower() for w in args.only)]
        results: dict[tuple[str, str], float] = {}
        for target, hyper in targets:
            bench = Bench(url_dsn, hyper)
            # Alternate the methods round by round (A B C A B C ...), so a burst of
            # load from other users of the machine hits every method alike.
            times: dict[str, list[float]] = {name: [] for name, _, _ in methods}
            for i in range(args.repeat):
                for name, n, fn in methods:
                    if fn is None:  # dlt creates its own table in its own dataset schema
                        dataset = f"dlt_{target}_{i}"
                        bench.fresh_table(f"bench_{target}", schema=dataset)
                        seconds = timed(lambda: run_dlt(url_dsn, f"bench_{target}", rows, dataset))
                        bench.drop_schema(dataset)  # else autovacuum of its 1M rows hits the next method
                    else:
                        table = bench.fresh_table(f"bench_{target}")
                        seconds = timed(lambda: fn(bench, table))
                    times[name].append(seconds)
                    print(
                        f"    round {i + 1} {target:<10} {name:<42} {n / seconds:>12,.0f} rows/s", flush=True
                    )
            for name, n, _ in methods:
                results[(name, target)] = n / statistics.median(times[name])
                print(
                    f"  {target:<10} {name:<42} {results[(name, target)]:>12,.0f} rows/s median "
                    f"(n={n:,}, peak RSS {peak_rss_mib():,.0f} MiB)",
                    flush=True,
                )
            if args.no_merge:
                continue
            # Merges: the loader over a full table.
            table = bench.fresh_table(f"bench_{target}")
            run_loader(url_dsn, table, rows)
            for name, data in [
                ("etl loader merge, nothing changed", rows),
                (f"etl loader merge, {n_changed / args.rows:.0%} changed", changed),
            ]:
                results[(name, target)] = args.rows / timed(lambda: run_loader(url_dsn, table, data))
                print(f"  {target:<10} {name:<42} {results[(name, target)]:>12,.0f} rows/s", flush=True)
            bench.fresh_table(table)  # empty it, so autovacuum of 1M rows does not run into the next target

        names = list(dict.fromkeys(name for name, _ in results))
        loader, psql, to_sql = (
            "etl loader (pgpq binary COPY, psycopg2)",
            "psql \\copy CSV (yardstick)",
            "pandas to_sql(method='multi')",
        )
        print()
        print("| method | " + " | ".join(f"{t} rows/s" for t, _ in targets) + " | vs psql \\copy |")
        print("|---|" + "---:|" * (len(targets) + 1))
        for name in names:
            cells = [f"{results[(name, t)]:,.0f}" if (name, t) in results else "n/a" for t, _ in targets]
            ratio = " / ".join(
                f"{results[(name, t)] / results[(psql, t)]:.2f}"
                for t, _ in targets
                if (name, t) in results and (psql, t) in results
            )
            print(f"| {name} | " + " | ".join(cells) + f" | {ratio} |")
        print()
        dlt_name = "dlt parquet (ADBC) pipeline.run"
        for t, _ in targets:
            ratios = [
                f"{label} = {results[(loader, t)] / results[(other, t)]:.{digits}f}x"
                for label, other, digits in [
                    ("loader/psql", psql, 2),
                    ("loader/to_sql", to_sql, 0),
                    ("loader/dlt", dlt_name, 2),
                ]
                if (loader, t) in results and (other, t) in results
            ]
            print(f"{t}: " + ", ".join(ratios))
        print(f"peak RSS of this process: {peak_rss_mib():,.0f} MiB")
    finally:
        db.drop_database(url)
    return 0


def _as_url(dsn: str) -> str:
    """A postgresql:// URL for tools that want one (psql, dlt, adbc, SQLAlchemy)."""
    import psycopg2.extensions

    params = psycopg2.extensions.parse_dsn(dsn)
    user = params.get("user", os.environ.get("PGUSER", "postgres"))
    password = f":{params['password']}" if params.get("password") else ""
    return f"postgresql://{user}{password}@{params.get('host', '127.0.0.1')}:{params.get('port', '5432')}/{params['dbname']}"


if __name__ == "__main__":
    sys.exit(main())
