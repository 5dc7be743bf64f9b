"""Analytics refresh benchmark: a full rebuild against a daily increment (docs/performance.md).

  .venv/bin/python -u scripts/bench_refresh.py --items 1000000 [--pipeline] [--http] [--compression]
  DATABASE_URL=postgresql://...full-license... .venv/bin/python -u scripts/bench_refresh.py --compression

1. creates a throwaway database ``etl_bench_<hex>`` (dropped at the end unless
   ``--keep``) and generates ``--items`` order items in SQL, exactly as
   scripts/bench_dashboard.py does (2016-10 .. 2018-08, 30,000 products);
2. **full rebuild**: ``etl db refresh`` (all of time queued and drained: every
   aggregate and analytics table), seconds per relation;
3. **daily increment**: ``--increment`` (1 %) more order items, all bought on the
   day after the last one, 3 % of them by people who bought before, inserted
   and queued in one transaction as a load does; then the pipeline's refresh
   stage (``refresh_aggregates_stage``): its seconds against the full rebuild's;
4. ``--pipeline``: the same share of orders as Olist CSV files (``etl generate``,
   moved to the next day), through the whole ``etl run`` (ingest, transform,
   load, refresh): its wall time against the full rebuild's;
5. ``--http``: the dashboards' API under load, cache off (scripts/bench_dashboard.py's);
6. ``--explain MS``: the increment's refresh runs with auto_explain (superuser
   connections only): the plan, with actual times, of every statement slower
   than MS milliseconds goes to the server's log;
7. ``--reuse DB`` works on a warehouse kept by ``--keep`` (no generation), and
   ``--increments N`` runs N daily increments one after the other;
8. ``--compression`` (full-license TimescaleDB only): compresses the chunks
   older than the policy's 120 days and prints the ratio, a late correction of
   1,000 old orders through the loader's merge into uncompressed and into
   compressed chunks, and an old day's refresh before and after.
Prints the machine's load average next to every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pandas as pd
from psycopg2 import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from etl import generate  # noqa: E402
from etl.load import merge as load  # noqa: E402
from etl.publish import aggregates, analytics  # noqa: E402
from etl.run import setup  # noqa: E402
from etl.run.pipeline import refresh_aggregates_stage  # noqa: E402
from etl.run.stages import run_pipeline  # noqa: E402
from etl.settings import Settings  # noqa: E402
from etl.warehouse import connection as db  # noqa: E402
from etl.warehouse import deferred_indexes, schema  # noqa: E402
from scripts import bench_dashboard as dashboard_bench  # noqa: E402

#: One day of new orders (the numbers continue the generated ones), as a load writes them.
INCREMENT = """
INSERT INTO dim_customers (customer_id, customer_unique_id, zip_code_prefix, city, state)
SELECT md5('c' || o),
       CASE WHEN o %% 33 = 0 THEN md5('u' || (o %% (%(orders)s * 97 / 100))) ELSE md5('new-u' || o) END,
       '01000', 'city',
       (%(states)s::text[])[1 + (hashint4(o) & 2147483647) %% array_length(%(states)s::text[], 1)]
  FROM generate_series(%(first)s, %(last)s) o;
INSERT INTO fact_orders (order_id, customer_id, order_status, purchased_at, approved_at,
                         delivered_customer_at, estimated_delivery_at, purchase_date_key)
SELECT md5('o' || o), md5('c' || o), 'processing', s.ts, s.ts + interval '1 hour', NULL,
       date_trunc('day', s.ts) + interval '18 days',
       to_char(s.ts AT TIME ZONE 'America/Sao_Paulo', 'YYYYMMDD')::int
  FROM generate_series(%(first)s, %(last)s) o,
       LATERAL (SELECT %(day_start)s::timestamptz + (hashint4(o * 7) & 2147483647) %% 86400 * interval '1 second'
                    AS ts) s;
INSERT INTO fact_order_items (order_id, order_item_id, product_id, seller_id, shipping_limit_at, price_cents,
                              freight_cents, product_key, seller_key)
SELECT md5('o' || o), n, md5('p' || k.product), md5('s' || k.seller), %(day_start)s::timestamptz + interval '3 days',
       500 + (hashint4(o * 13 + n) & 2147483647) %% 50000, 700 + (o %% 3000), k.product, k.seller
  FROM generate_series(%(first)s, %(last)s) o, generate_series(1, CASE WHEN o %% 7 = 0 THEN 2 ELSE 1 END) n,
       LATERAL (SELECT 1 + (hashint4(o * 31 + n) & 2147483647) %% 30000 AS product, 1 + o %% 3000 AS seller) k;
INSERT INTO fact_payments (order_id, payment_sequential, payment_type, payment_installments, payment_value_cents)
SELECT i.order_id, 1, 'credit_card', 1 + abs(hashtext(i.order_id)) %% 10, sum(i.price_cents + i.freight_cents)
  FROM fact_order_items i
 WHERE i.order_id IN (SELECT md5('o' || o) FROM generate_series(%(first)s, %(last)s) o)
 GROUP BY i.order_id;
"""


def load_average() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument(
        "--increment", type=float, default=0.01, help="the daily increment, a share of the items"
    )
    parser.add_argument("--pipeline", action="store_true", help="also run the increment through `etl run`")
    parser.add_argument("--http", action="store_true", help="also load the API (cache off)")
    parser.add_argument("--compression", action="store_true", help="full license: ratio and late corrections")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="do not drop the benchmark database")
    parser.add_argument("--reuse", metavar="DB", help="a database kept by --keep: no generation")
    parser.add_argument("--increments", type=int, default=1, help="daily increments, one after the other")
    parser.add_argument(
        "--no-rebuild", action="store_true", help="with --reuse: skip the full rebuild (no ratio)"
    )
    parser.add_argument(
        "--explain", type=int, metavar="MS", help="auto_explain the increments' statements slower than MS"
    )
    parser.add_argument(
        "--compression-only", action="store_true", help="generate, then only --compression (no rebuild)"
    )
    args = parser.parse_args()

    base = Settings.from_env()
    url = db.server_url(base.database_url, args.reuse or f"etl_bench_{uuid.uuid4().hex[:8]}")
    staging = Path(tempfile.mkdtemp(prefix="bench-refresh-"))
    settings = base.with_overrides(database_url=url, database_url_explicit=True, staging_dir=staging)
    orders = args.items * 7 // 8
    try:
        mode = setup.init_schema(settings)
        print(f"database {db.describe_url(url)} ({mode.name}); {load_average()}", flush=True)
        if args.reuse:
            with contextlib.closing(db.connect(url)) as conn, conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM fact_order_items")
                items = cur.fetchone()[0]
        else:
            items = generate_items(url, orders)

        if args.compression_only:
            compression(settings, refresh=False)
            return
        full = float("nan")
        if not args.no_rebuild:
            started = time.perf_counter()
            timings = analytics.refresh(settings)  # etl db refresh
            full = time.perf_counter() - started
            print(
                f"\nfull rebuild (etl db refresh): {full:.1f} s ({items / full:,.0f} items/s); {load_average()}\n  "
                + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(timings.items(), key=lambda kv: -kv[1])),
                flush=True,
            )
        if args.explain is not None:
            # Every connection this process opens from now on (superuser only: session_preload_libraries).
            os.environ["PGOPTIONS"] = (
                "-c session_preload_libraries=auto_explain -c auto_explain.log_analyze=on "
                f"-c auto_explain.log_nested_statements=on -c auto_explain.log_min_duration={args.explain}"
            )
            print(
                f"auto_explain: plans of statements over {args.explain} ms go to the server log", flush=True
            )
        for _ in range(args.increments):
            increment = daily_increment(settings, orders, args.increment)
            started = time.perf_counter()
            result = refresh_aggregates_stage(settings, "bench-increment")
            seconds = time.perf_counter() - started
            print(
                f"\ndaily increment of {increment:,} orders (one day): analytics refresh {seconds:.2f} s "
                f"= {100 * seconds / full:.2f} % of the full rebuild (goal <= 2 %); "
                f"{result['ranges']} range(s); {load_average()}\n  "
                + ", ".join(
                    f"{k} {v:.2f} s" for k, v in sorted(result["seconds"].items(), key=lambda kv: -kv[1])
                ),
                flush=True,
            )
        os.environ.pop("PGOPTIONS", None)
        if args.pipeline:
            pipeline_increment(settings, orders, args.increment, full)
        if args.http:
            print(f"\n{load_average()} before HTTP", flush=True)
            dashboard_bench.ENDPOINTS.append("/api/top-products?category=category_7&metric=units")
            dashboard_bench.serve_and_load(url, args, cache_seconds=0)
            print(f"{load_average()} after HTTP", flush=True)
        if args.compression:
            compression(settings)
    finally:
        if not args.keep:
            db.drop_database(url)
    print(f"\nbench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def generate_items(url: str, orders: int) -> int:
    """Generate the warehouse's orders in SQL (scripts/bench_dashboard.py's); order items written."""
    conn = db.connect(url)
    started = time.perf_counter()
    with conn, conn.cursor() as cur:
        cur.execute("SET LOCAL maintenance_work_mem = '1GB'")
        with contextlib.ExitStack() as stack:
            for table in dashboard_bench.GENERATED_TABLES:
                stack.enter_context(deferred_indexes.deferred(cur, table, deferred_indexes.MIN_ROWS))
            cur.execute(dashboard_bench.GENERATE, {"orders": orders, "states": dashboard_bench.STATES})
        # the generator gives the versions' keys explicitly: move the identities past them
        for table, key in (("dim_products", "product_key"), ("dim_sellers", "seller_key")):
            cur.execute(
                sql.SQL("SELECT setval(pg_get_serial_sequence(%s, %s), (SELECT max({}) FROM {}))").format(
                    sql.Identifier(key), sql.Identifier(table)
                ),
                (table, key),
            )
        cur.execute("ANALYZE")
        cur.execute("SELECT count(*) FROM fact_order_items")
        items = cur.fetchone()[0]
    conn.close()
    print(
        f"generated {items:,} order items ({orders:,} orders) in {time.perf_counter() - started:.1f} s; "
        f"{load_average()}",
        flush=True,
    )
    return items


def _next_day(cur, timezone: str):
    cur.execute("SELECT (max(purchased_at) AT TIME ZONE %s)::date + 1 FROM fact_orders", (timezone,))
    return cur.fetchone()[0]


def daily_increment(settings: Settings, orders: int, share: float) -> int:
    """Insert one day of new orders and queue the day, in one transaction (what a load does)."""
    count = max(1, int(orders * share))
    conn = db.connect(settings.database_url)
    try:
        with conn, conn.cursor() as cur:
            day = _next_day(cur, settings.source_timezone)
            # the new orders' numbers follow the generated ones and earlier increments'
            cur.execute("SELECT count(*) FROM fact_orders")
            last = cur.fetchone()[0]
            cur.execute("SELECT %s::timestamp AT TIME ZONE %s", (day, settings.source_timezone))
            day_start = cur.fetchone()[0]
            cur.execute(
                INCREMENT,
                {
                    "first": last + 1,
                    "last": last + count,
                    "orders": orders,
                    "states": dashboard_bench.STATES,
                    "day_start": day_start,
                },
            )
            aggregates.queue_days(cur, "bench-increment", [day], settings.source_timezone)
    finally:
        conn.close()
    return count


def pipeline_increment(settings: Settings, orders: int, share: float, full: float) -> None:
    """``etl generate`` files moved to the next day, through the whole run."""
    count = max(10, int(orders * share))
    folder = settings.staging_dir / "increment"
    generate.generate(count, 0.0, 17, folder)
    conn = db.connect(settings.database_url)
    try:
        with conn.cursor() as cur:
            day = _next_day(cur, settings.source_timezone)
    finally:
        conn.close()
    orders_csv = folder / "olist_orders_dataset.csv"
    frame = pd.read_csv(orders_csv, dtype=str, keep_default_na=False)
    purchased = pd.to_datetime(frame["order_purchase_timestamp"])
    shift = (pd.Timestamp(day) + (purchased - purchased.dt.normalize())) - purchased
    for column in (
        "order_purchase_timestamp",
        "order_approved_at",
        "order_delivered_carrier_date",
        "order_delivered_customer_date",
        "order_estimated_delivery_date",
    ):
        moved = (pd.to_datetime(frame[column].replace("", None)) + shift).dt.strftime("%Y-%m-%d %H:%M:%S")
        frame[column] = moved.where(frame[column] != "", "")
    frame.to_csv(orders_csv, index=False)
    by_order = dict(zip(frame["order_id"], shift))
    for name, columns in (
        ("olist_order_items_dataset.csv", ("shipping_limit_date",)),
        ("olist_order_reviews_dataset.csv", ("review_creation_date", "review_answer_timestamp")),
    ):
        other = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
        delta = other["order_id"].map(by_order).fillna(timedelta(0))
        for column in columns:
            moved = (pd.to_datetime(other[column].replace("", None)) + delta).dt.strftime("%Y-%m-%d %H:%M:%S")
            other[column] = moved.where(other[column] != "", "")
        other.to_csv(folder / name, index=False)
    started = time.perf_counter()
    summary = run_pipeline(
        settings.with_overrides(dq_enforce=False), data_dir=folder, run_id="bench-pipeline"
    )
    seconds = time.perf_counter() - started
    loaded = {t.table: t.rows_loaded for t in summary.tables}
    print(
        f"\nincrement through `etl run` ({count:,} generated orders, {loaded.get('fact_order_items', 0):,} "
        f"items loaded): {seconds:.1f} s = {100 * seconds / full:.1f} % of the full rebuild (goal <= 15 %); "
        f"{load_average()}",
        flush=True,
    )


def compression(settings: Settings, refresh: bool = True) -> None:
    """Full license: compress old chunks; ratio, late corrections, an old day's refresh."""
    conn = db.connect(settings.database_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            if not aggregates.is_continuous(schema.timescale_mode(conn)):
                print("\ncompression: needs full-license TimescaleDB; skipped")
                return
            cur.execute("SELECT max(purchased_at) - interval '120 days' FROM fact_orders")
            horizon = cur.fetchone()[0]
            cur.execute("SELECT min(purchased_at) + interval '40 days' FROM fact_orders")
            old_day_start = cur.fetchone()[0]
            late_uncompressed = late_correction(settings, "before", horizon)
            old_refresh_before = old_day_refresh(settings, old_day_start) if refresh else float("nan")
            cur.execute(
                "SELECT pg_total_relation_size(c) FROM show_chunks('fact_orders', older_than => %s) c",
                (horizon,),
            )
            before = sum(r[0] for r in cur.fetchall())
            started = time.perf_counter()
            cur.execute(
                "SELECT count(compress_chunk(c, if_not_compressed => TRUE)) FROM show_chunks('fact_orders', older_than => %s) c",
                (horizon,),
            )
            chunks = cur.fetchone()[0]
            seconds = time.perf_counter() - started
            cur.execute(
                "SELECT sum(before_compression_total_bytes), sum(after_compression_total_bytes) "
                "FROM chunk_compression_stats('fact_orders') WHERE compression_status = 'Compressed'"
            )
            stats_before, stats_after = cur.fetchone()
        print(
            f"\ncompression: {chunks} chunks of fact_orders older than 120 days in {seconds:.1f} s: "
            f"{stats_before / 2**20:,.0f} MB -> {stats_after / 2**20:,.0f} MB "
            f"({100 * (1 - stats_after / stats_before):.0f} % smaller; on-disk chunks before {before / 2**20:,.0f} MB); "
            f"{load_average()}",
            flush=True,
        )
        late_compressed = late_correction(settings, "after", horizon)
        old_refresh_after = old_day_refresh(settings, old_day_start) if refresh else float("nan")
        print(
            f"late correction of 1,000 old orders through the merge: {late_uncompressed:.2f} s uncompressed, "
            f"{late_compressed:.2f} s compressed ({late_compressed / late_uncompressed:.1f}x); {load_average()}\n"
            f"an old day's analytics refresh: {old_refresh_before:.2f} s uncompressed, "
            f"{old_refresh_after:.2f} s compressed",
            flush=True,
        )
    finally:
        conn.close()


def late_correction(settings: Settings, label: str, horizon) -> float:
    """1,000 orders older than ``horizon`` change status, through the loader's merge; seconds."""
    conn = db.connect(settings.database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT order_id, customer_id, %s AS order_status, purchased_at, approved_at, "
                "delivered_carrier_at, delivered_customer_at, estimated_delivery_at, purchase_date_key "
                "FROM fact_orders WHERE purchased_at < %s AND order_status = 'delivered' "
                "ORDER BY md5(order_id || %s) LIMIT 1000",
                ("shipped" if label == "before" else "invoiced", horizon, label),
            )
            frame = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
        conn.rollback()
        started = time.perf_counter()
        with conn, conn.cursor() as cur:
            result = load.load_table(cur, "fact_orders", frame, timezone=settings.source_timezone)
            aggregates.queue_days(cur, f"late-{label}", result.touched_days, settings.source_timezone)
        return time.perf_counter() - started
    finally:
        conn.close()


def old_day_refresh(settings: Settings, day_start) -> float:
    conn = db.connect(settings.database_url)
    try:
        refresh_aggregates_stage(settings, "catch-up")  # what late corrections queued
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT (%s::timestamptz AT TIME ZONE %s)::date", (day_start, settings.source_timezone)
            )
            aggregates.queue_days(cur, "old-day", [cur.fetchone()[0]], settings.source_timezone)
    finally:
        conn.close()
    started = time.perf_counter()
    refresh_aggregates_stage(settings, "old-day")
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
