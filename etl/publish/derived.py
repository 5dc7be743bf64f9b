"""The analytics tables derived from the buckets, kept for what a load touched.

The dashboards, Streamlit and BI read these (and the plain views over them,
``sql/views/``). Each table's refresh is a file of statements,
``sql/analytics/<name>.sql``, that recomputes only what the touched purchase
time ranges reach:

* additive figures roll the time-bucketed aggregates up
  (``sales_monthly_state``, ``sales_monthly_category``: the touched months);
* per-order and per-day inputs are recomputed for the touched days
  (``order_category_values``, ``category_discount_daily``);
* figures that do not add up over buckets are recomputed for the touched keys
  only: the people whose rows of ``customer_orders`` (one per sold order, kept
  per day) were replaced or added (``customer_totals``, ``region_customers``
  by difference), the products whose rows of ``product_daily`` were
  (``top_products``, by difference), the category x months touched
  (``anomaly_groups`` from sums and sums of squares, then ``anomaly_records``).
  Keys come from the replaced rows too, so an order moved to another person
  or an item to another product updates both; and nothing is looked up in the
  facts by customer or product (compressed chunks have no such index);
* small all-time summaries are recomputed from those partial sums
  (``category_discount_map``: thousands of rows);
* ranks over everyone move by what changed: the RFM quintiles
  (``clv_segments``) keep each person's scores, histograms of last-order days
  and spends place the quintile boundaries, and only the touched people and
  the people a boundary passed are rescored; the segment sizes add up per
  segment x last-order day (``clv_cells``), so churn needs no rescan either.

What was touched is handed to the statements as TEMP tables
(``sql/analytics/_touched.sql``): nothing is formatted into SQL text. A full
rebuild is the same code with one range, all of time.
"""

from __future__ import annotations

import logging
import time

import psycopg2.extensions
from psycopg2 import sql

from etl import progress
from etl.settings import SQL_DIR
from etl.warehouse import deferred_indexes

log = logging.getLogger(__name__)

ANALYTICS_DIR = SQL_DIR / "analytics"

#: Refresh order: a table's statements may read the ones before it.
TABLES: tuple[str, ...] = (
    "order_category_values",
    "category_discount_daily",
    "category_discount_map",
    "sales_monthly_state",
    "sales_monthly_category",
    "anomaly_groups",
    "anomaly_records",
    "customer_orders",
    "customer_totals",
    "region_customers",
    "clv_segments",
    "product_daily",
    "top_products",
)
#: The one range of a full rebuild (the text PostgreSQL gives back for it).
ALL_OF_TIME = ("-infinity", "infinity")


def _start_from_empty(cur: psycopg2.extensions.cursor) -> None:
    """A full rebuild: every derived table emptied, then written by bulk plans.

    Each table's statements then write an empty table, so its indexes are
    built once after them (``etl.warehouse.deferred_indexes``; a statement that
    upserts into its own table keeps its keys) and it is ANALYZEd before the
    next table's statements read it. Hash joins replace the nested loops the
    planner picks from its estimates: every touched set is the whole warehouse,
    and a two-column join (order, purchase time) estimated at one row made the
    touched lines alone take 45-52 s at 1M orders instead of ~12 s.
    """
    cur.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(sql.Identifier(n) for n in TABLES)))
    cur.execute("SELECT set_config('enable_nestloop', 'off', true)")


def statements(name: str) -> str:
    return (ANALYTICS_DIR / f"{name}.sql").read_text()


def refresh(
    cur: psycopg2.extensions.cursor, ranges: list[tuple[str, str]], timezone: str
) -> dict[str, tuple[int, float]]:
    """Recompute every derived table for ``ranges`` (text timestamps, merged), in the caller's transaction.

    Returns table -> (rows its last statement wrote, seconds).
    """
    done: dict[str, tuple[int, float]] = {}
    if not ranges:
        return done
    started = time.monotonic()
    cur.execute("CREATE TEMP TABLE etl_touched_ranges (lo TIMESTAMPTZ, hi TIMESTAMPTZ) ON COMMIT DROP")
    cur.execute(
        "INSERT INTO etl_touched_ranges SELECT * FROM unnest(%s::timestamptz[], %s::timestamptz[])",
        ([lo for lo, _ in ranges], [hi for _, hi in ranges]),
    )
    cur.execute("ANALYZE etl_touched_ranges")
    full = ranges == [ALL_OF_TIME]
    if full:
        _start_from_empty(cur)
    cur.execute(statements("_touched"), {"tz": timezone})
    if full:
        cur.execute(statements("_reset"))
    done["_touched"] = (cur.rowcount, time.monotonic() - started)
    task = progress.current().task("refresh views", len(TABLES), "views")
    for name in TABLES:
        task.description = f"refresh {name}"
        task.advance(0)  # a plain line names the table being refreshed when it is slow
        started = time.monotonic()
        text = statements(name)
        rebuilt = deferred_indexes.MIN_ROWS if full else 0
        with deferred_indexes.deferred(cur, name, rebuilt, keep_keys="ON CONFLICT" in text):
            cur.execute(text)
            rows = cur.rowcount
        if full:
            cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
        done[name] = (rows, time.monotonic() - started)
        log.debug("%s refreshed in %.2f s", name, done[name][1])
        task.advance(1, rows=max(rows, 0))
    task.description = "refresh views"
    task.done()
    if full:
        started = time.monotonic()
        cur.execute(statements("_analyze"))
        done["_analyze"] = (cur.rowcount, time.monotonic() - started)
    return done
