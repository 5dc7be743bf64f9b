"""Dashboard load benchmark on generated data (docs/performance.md).

  .venv/bin/python scripts/bench_dashboard.py --items 1000000 [--concurrency 32] [--requests 2000]

1. creates a throwaway database ``etl_bench_<hex>`` (dropped at the end), the
   schema and views (``etl db init``), and generates ``--items`` order items
   in SQL (orders = 7/8 of items: every 7th order has two items; 27 states,
   70 categories, 30,000 products, repeat customers), with rows/s;
2. rebuilds the analytics (all of time queued and drained, as ``etl db refresh``), rows/s;
3. times each API question against the aggregate views and the same question
   over the facts (the baseline, in the same process): the ratio is the gain;
4. starts ``gunicorn wsgi:app`` on 127.0.0.1 and fires ``--requests`` requests
   at ``--concurrency`` clients per endpoint with ApacheBench (``ab``, Debian
   apache2-utils) -- or a Python thread pool if ab is missing -- with the
   app's 30 s answer cache on and off; prints p50/p95/max in ms.
Peak RSS is this process's and the gunicorn workers'.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from etl.publish import aggregates  # noqa: E402
from etl.run import setup  # noqa: E402
from etl.settings import Settings  # noqa: E402
from etl.warehouse import connection as db  # noqa: E402
from etl.warehouse import deferred_indexes  # noqa: E402

STATES = "SP SP SP SP SP SP SP SP SP RJ RJ RJ MG MG MG RS RS PR PR SC BA BA DF ES GO PE CE PA MT MA MS PB RN AL PI SE RO TO AM AC AP RR".split()

GENERATE = """
INSERT INTO dim_dates (date_key, full_date, year, quarter, month, month_name, day_of_month, day_of_week,
                       day_name, week_of_year, is_weekend)
SELECT to_char(d, 'YYYYMMDD')::int, d, extract(year FROM d), extract(quarter FROM d), extract(month FROM d),
       to_char(d, 'FMMonth'), extract(day FROM d), extract(isodow FROM d), to_char(d, 'FMDay'),
       extract(week FROM d), extract(isodow FROM d) >= 6
  FROM generate_series(date '2016-09-01', date '2018-10-31', interval '1 day') AS g(d)
ON CONFLICT DO NOTHING;
INSERT INTO category_translation
SELECT 'categoria_' || c, 'category_' || c FROM generate_series(1, 70) c;
-- surrogate keys given explicitly, so the items can point at their version (SCD2)
INSERT INTO dim_products (product_key, product_id, category_name, category_name_english)
SELECT p, md5('p' || p), 'categoria_' || (1 + p %% 70), 'category_' || (1 + p %% 70) FROM generate_series(1, 30000) p;
INSERT INTO dim_sellers (seller_key, seller_id, state) SELECT s, md5('s' || s), 'SP' FROM generate_series(1, 3000) s;
-- one customer row per order (as in Olist); about 3 in 100 people order again
INSERT INTO dim_customers (customer_id, customer_unique_id, zip_code_prefix, city, state)
SELECT md5('c' || o), md5('u' || (o %% (%(orders)s * 97 / 100))), '01000', 'city',
       (%(states)s::text[])[1 + (hashint4(o) & 2147483647) %% array_length(%(states)s::text[], 1)]
  FROM generate_series(1, %(orders)s) o;
INSERT INTO fact_orders (order_id, customer_id, order_status, purchased_at, approved_at,
                         delivered_customer_at, estimated_delivery_at, purchase_date_key)
SELECT md5('o' || o), md5('c' || o), s.status, s.ts, s.ts + interval '1 hour',
       CASE WHEN s.status = 'delivered' THEN s.ts + (3 + (o %% 25)) * interval '1 day' END,
       date_trunc('day', s.ts) + interval '18 days',
       to_char(s.ts AT TIME ZONE 'America/Sao_Paulo', 'YYYYMMDD')::int
  FROM generate_series(1, %(orders)s) o,
       LATERAL (SELECT timestamptz '2016-10-01 12:00+00' + (hashint4(o * 7) & 2147483647) %% 60000000 * interval '1 second' AS ts,
                       CASE WHEN o %% 100 = 0 THEN 'canceled' WHEN o %% 97 = 0 THEN 'shipped' ELSE 'delivered' END AS status) s;
INSERT INTO fact_order_items (order_id, order_item_id, product_id, seller_id, shipping_limit_at, price_cents,
                              freight_cents, product_key, seller_key)
SELECT md5('o' || o), n, md5('p' || k.product), md5('s' || k.seller), timestamptz '2017-01-01',
       500 + (hashint4(o * 13 + n) & 2147483647) %% 50000, 700 + (o %% 3000), k.product, k.seller
  FROM generate_series(1, %(orders)s) o, generate_series(1, CASE WHEN o %% 7 = 0 THEN 2 ELSE 1 END) n,
       LATERAL (SELECT 1 + (hashint4(o * 31 + n) & 2147483647) %% 30000 AS product, 1 + o %% 3000 AS seller) k;
INSERT INTO fact_payments (order_id, payment_sequential, payment_type, payment_installments, payment_value_cents)
SELECT order_id, 1, CASE WHEN hashtext(order_id) %% 20 = 0 THEN 'voucher' ELSE 'credit_card' END,
       1 + abs(hashtext(order_id)) %% 10, sum(price_cents + freight_cents)
  FROM fact_order_items GROUP BY order_id;
"""

#: Tables the generator fills: their keys and indexes are built once at the end
#: (etl.warehouse.deferred_indexes: one sort per index instead of ~10M random B-tree inserts).
GENERATED_TABLES = ("dim_customers", "fact_orders", "fact_order_items", "fact_payments")


# The same question over the aggregate views (what the API runs) and over the facts.
QUESTIONS = {
    "kpis": (
        "SELECT sum(orders), sum(revenue_cents) FROM sales_daily_state",
        "SELECT count(*), sum(revenue_cents) FROM sales_orders",
    ),
    "monthly-sales": (
        "SELECT date_trunc('month', purchase_date), sum(revenue_cents), sum(orders) "
        "FROM sales_daily_state GROUP BY 1 ORDER BY 1",
        "SELECT date_trunc('month', purchase_date), sum(revenue_cents), count(*) "
        "FROM sales_orders GROUP BY 1 ORDER BY 1",
    ),
    "top-products": (
        "SELECT product_id, revenue_cents FROM top_products ORDER BY revenue_rank LIMIT 10",
        "SELECT product_id, sum(price_cents) r FROM sales_order_lines GROUP BY product_id "
        "ORDER BY r DESC, product_id LIMIT 10",
    ),
    "regions": (
        "SELECT customer_state, sum(orders), sum(revenue_cents) FROM sales_daily_state GROUP BY 1",
        "SELECT customer_state, count(*), sum(revenue_cents) FROM sales_orders GROUP BY 1",
    ),
    "segments": (
        "SELECT * FROM clv_segments",
        "SELECT rfm_segment, count(*) FROM customer_lifetime_value GROUP BY 1",
    ),
}
ENDPOINTS = [
    "/api/kpis",
    "/api/monthly-sales",
    "/api/monthly-sales?state=RJ&start=2017-03-01&end=2017-12-31",
    "/api/top-products",
    "/api/top-products?category=category_7",
    "/api/regions",
    "/api/categories",
    "/api/segments",
    "/api/anomalies",
    "/api/runs",
    "/api/quarantine",
]


def timed(cur, statement: str, repeat: int) -> float:
    """Median seconds of ``repeat`` runs (after one warm-up)."""
    cur.execute(statement)
    cur.fetchall()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        cur.execute(statement)
        cur.fetchall()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_ab(url: str, concurrency: int, requests: int) -> tuple[float, float, float]:
    out = subprocess.run(
        ["ab", "-q", "-k", "-c", str(concurrency), "-n", str(requests), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    if failed or non2xx:
        raise SystemExit(f"{url}: {failed} failed, {non2xx.group(1) if non2xx else 0} non-2xx\n{out}")
    pct = {int(m.group(1)): float(m.group(2)) for m in re.finditer(r"^\s+(\d+)%\s+(\d+)", out, re.M)}
    return pct[50], pct[95], pct[100]


def load_python(url: str, concurrency: int, requests: int) -> tuple[float, float, float]:
    def one(_):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
            assert response.status == 200
        return (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(concurrency) as pool:
        times = sorted(pool.map(one, range(requests)))
    return times[len(times) // 2], times[int(len(times) * 0.95) - 1], times[-1]


def rss_mb_of(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total = max(total, int(line.split()[1]))
        except OSError:
            pass
    return total / 1024


def serve_and_load(url: str, args, cache_seconds: int) -> None:
    port = free_port()
    # a throwaway warehouse, served as its administrator (the dashboards refuse a superuser unless told)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DASHBOARD_CACHE_SECONDS": str(cache_seconds),
        "DASHBOARD_ALLOW_SUPERUSER": "1",
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    proc = subprocess.Popen(
        [
            str(gunicorn),
            "--workers",
            str(args.workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/api/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        load = load_ab if shutil.which("ab") else load_python
        print(
            f"\nHTTP, gunicorn {args.workers} workers, cache {cache_seconds or 'off'}, "
            f"{args.concurrency} clients, {args.requests} requests each ({load.__name__}):"
        )
        print(f"  {'endpoint':<62} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}")
        worst = 0.0
        for path in ENDPOINTS:
            p50, p95, top = load(base + path, args.concurrency, args.requests)
            worst = max(worst, p95)
            print(f"  {path:<62} {p50:>7.0f} {p95:>7.0f} {top:>7.0f}")
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        print(
            f"  worst p95 {worst:.0f} ms; peak RSS per worker {rss_mb_of([int(p) for p in children]):.0f} MB"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="do not drop the benchmark database")
    parser.add_argument(
        "--database",
        help="measure a database kept by an earlier --keep run "
        "(no generation; views refreshed only if --refresh)",
    )
    parser.add_argument("--refresh", action="store_true", help="with --database: refresh the views first")
    parser.add_argument("--no-facts", action="store_true", help="skip the aggregate-vs-facts timings")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP load")
    parser.add_argument(
        "--work-mem", help="work_mem of the refresh (default: ETL_REFRESH_WORK_MEM's; '' = the server's)"
    )
    args = parser.parse_args()

    base = Settings.from_env()
    reuse = args.database is not None
    url = db.server_url(base.database_url, args.database or f"etl_bench_{uuid.uuid4().hex[:8]}")
    settings = base.with_overrides(database_url=url, database_url_explicit=True)
    if args.work_mem is None:
        args.work_mem = settings.refresh_work_mem
    orders = args.items * 7 // 8
    try:
        setup.init_schema(settings)
        conn = db.connect(url)
        if reuse:
            measure(conn, url, args, refresh=args.refresh)
            return
        print(f"database {db.describe_url(url)}", flush=True)
        started = time.perf_counter()
        with conn, conn.cursor() as cur:
            cur.execute("SET LOCAL maintenance_work_mem = '1GB'")
            with contextlib.ExitStack() as stack:
                for table in GENERATED_TABLES:
                    stack.enter_context(deferred_indexes.deferred(cur, table, deferred_indexes.MIN_ROWS))
                cur.execute(GENERATE, {"orders": orders, "states": STATES})
            cur.execute("ANALYZE")
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM fact_order_items")
            items = cur.fetchone()[0]
        seconds = time.perf_counter() - started
        print(
            f"generated {items:,} order items ({orders:,} orders) in {seconds:.1f} s "
            f"({items / seconds:,.0f} items/s)",
            flush=True,
        )
        measure(conn, url, args, refresh=True, items=items)
    finally:
        if not args.keep and not reuse:
            db.drop_database(url)


def measure(conn, url: str, args, refresh: bool, items: int | None = None) -> None:
    """Refresh (optionally), compare aggregates with facts, then load the API over HTTP."""
    if items is None:  # a kept database: count what it holds
        with conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM fact_order_items")
            items = cur.fetchone()[0]
        print(f"{items:,} order items in the warehouse", flush=True)
    if refresh:
        started = time.perf_counter()
        with conn, conn.cursor() as cur:
            aggregates.queue_everything(cur, "bench-dashboard")
        timings = aggregates.refresh_pending(conn, "America/Sao_Paulo", args.work_mem).seconds
        with conn.cursor() as cur:
            cur.execute("ANALYZE")
        seconds = time.perf_counter() - started
        print(
            f"refreshed {len(timings)} aggregates and tables (work_mem {args.work_mem or 'server default'}) in {seconds:.1f} s ({items / seconds:,.0f} items/s): "
            + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(timings.items(), key=lambda kv: -kv[1])),
            flush=True,
        )

    if not args.no_facts:
        print(f"\nquery over aggregates vs same query over facts (median of {args.repeat}):")
        print(f"  {'question':<15} {'aggregate ms':>13} {'facts ms':>10} {'ratio':>8}")
        with conn.cursor() as cur:
            for name, (fast, slow) in QUESTIONS.items():
                agg, facts = timed(cur, fast, args.repeat), timed(cur, slow, max(1, args.repeat // 2))
                print(
                    f"  {name:<15} {agg * 1000:>13.2f} {facts * 1000:>10.0f} {facts / agg:>7.0f}x", flush=True
                )
    conn.close()

    if not args.no_http:
        print(f"load average before HTTP: {os.getloadavg()[0]:.2f}", flush=True)
        serve_and_load(url, args, cache_seconds=30)
        serve_and_load(url, args, cache_seconds=0)
        print(f"load average after HTTP: {os.getloadavg()[0]:.2f}")
    print(f"\nbench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
