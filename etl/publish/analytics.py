"""The analytics layer: which views exist and how the materialized ones refresh.

The views are defined in ``sql/views/*.sql`` (applied by ``etl db init``).
Materialized views hold the aggregates the dashboards read, so they go stale
after every load: ``refresh_views`` brings them up to date. The pipeline calls
it after its load commits (``run_pipeline``); the Airflow DAG's
``refresh_aggregates`` task calls it too.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg2.extensions
from psycopg2 import sql

from etl.settings import Settings
from etl.warehouse import connection

log = logging.getLogger(__name__)

#: Materialized views in dependency order (a later one may read an earlier one).
MATERIALIZED_VIEWS: tuple[str, ...] = (
    "sales_daily_state",
    "sales_monthly_state",
    "sales_monthly_category",
    "top_products",
    "region_wise_performance",
    "category_discount_map",
    "anomaly_records",
    "customer_lifetime_value",
    "clv_segments",
)

#: The views in chains a worker refreshes in order, each in its own transaction: a view
#: that reads another materialized view follows it in its chain. Longest first (seconds of
#: the whole-run profile at 1M orders, docs/performance.md), so two workers end together.
REFRESH_CHAINS: tuple[tuple[str, ...], ...] = (
    ("customer_lifetime_value", "clv_segments"),  # 9.3 + 0.1 s
    ("anomaly_records",),  # 6.7 s
    ("sales_daily_state", "sales_monthly_state", "region_wise_performance"),  # 4.1 + 0.0 + 1.7 s
    ("category_discount_map",),  # 5.1 s
    ("top_products",),  # 4.8 s
    ("sales_monthly_category",),  # 3.7 s
)

#: What ``etl export`` writes and BI tools read: the analytical views by name.
#: Views of other capabilities are exported too when they exist.
EXPORT_VIEWS: tuple[str, ...] = (
    "monthly_sales_summary",
    "top_products",
    "region_wise_performance",
    "category_discount_map",
    "anomaly_records",
    "customer_lifetime_value",
    "clv_segments",
    "sales_daily_state",
    "sales_monthly_category",
    # Operational views (sql/views/50_dashboard_operations.sql): the dashboard's fallback reads them.
    "quality_overall",
    "quarantine_counts",
    "pipeline_runs",
)
OPTIONAL_EXPORT_VIEWS: tuple[str, ...] = ("hourly_sales", "daily_customer_metrics")


def existing_relations(conn: psycopg2.extensions.connection, names: tuple[str, ...]) -> list[str]:
    """Those of ``names`` that exist as a table, view or materialized view (in order)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = ANY(%s)",
            (list(names),),
        )
        found = {r[0] for r in cur.fetchall()}
    return [name for name in names if name in found]


def refresh_views(
    conn: psycopg2.extensions.connection,
    work_mem: str | None = None,
    names: tuple[str, ...] = MATERIALIZED_VIEWS,
) -> dict[str, float]:
    """Refresh every materialized view of the analytics layer; seconds per view.

    Uses ``REFRESH ... CONCURRENTLY`` when a view already has rows, so the
    dashboards keep reading the previous contents while it runs; an empty view
    (a new warehouse) is refreshed plainly, which skips the concurrent mode's
    diff against nothing. ``work_mem`` (e.g. ``'256MB'``) is set for this
    transaction only: the refresh queries sort and hash every customer and
    order, and the server default (4 MB) sends them to disk. Runs in the
    caller's transaction (the caller commits).
    """
    timings: dict[str, float] = {}
    with conn.cursor() as cur:
        connection.set_local_work_mem(cur, work_mem)
        cur.execute("SELECT matviewname, ispopulated FROM pg_matviews WHERE schemaname = current_schema()")
        populated = dict(cur.fetchall())
        for name in names:
            if name not in populated:
                log.warning("materialized view %s is missing; run `etl db init`", name)
                continue
            started = time.monotonic()
            statement = (
                "REFRESH MATERIALIZED VIEW CONCURRENTLY {}"
                if populated[name] and _has_rows(cur, name)
                else "REFRESH MATERIALIZED VIEW {}"
            )
            cur.execute(sql.SQL(statement).format(sql.Identifier(name)))
            timings[name] = time.monotonic() - started
            log.info("refreshed %s in %.2f s", name, timings[name])
    return timings


def _has_rows(cur: psycopg2.extensions.cursor, name: str) -> bool:
    cur.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(sql.Identifier(name)))
    return cur.fetchone()[0]


def refresh(settings: Settings) -> dict[str, float]:
    """Refresh the views on ``settings.refresh_workers`` connections (``etl db refresh``, the pipeline).

    Each chain of ``REFRESH_CHAINS`` commits on its own, so the server's cores
    work on two views at once instead of one (the nine views were 35.6 s of a
    108 s run, strictly one after the other). A chain that fails leaves the
    others refreshed; the error is raised after the running chains end, and
    ``etl db refresh`` catches up. ``refresh_workers=1``: one transaction for all.
    """
    if settings.refresh_workers <= 1:
        with connection.transaction(settings.database_url, settings.connect_timeout) as conn:
            return refresh_views(conn, work_mem=settings.refresh_work_mem)

    def chain(names: tuple[str, ...]) -> dict[str, float]:
        with connection.transaction(settings.database_url, settings.connect_timeout) as conn:
            return refresh_views(conn, work_mem=settings.refresh_work_mem, names=names)

    timings: dict[str, float] = {}
    with ThreadPoolExecutor(settings.refresh_workers, thread_name_prefix="refresh") as pool:
        futures = [pool.submit(chain, names) for names in REFRESH_CHAINS]
        errors = []
        for future in futures:
            try:
                timings.update(future.result())
            except psycopg2.Error as exc:
                errors.append(exc)
    if errors:
        raise errors[0]
    return {name: timings[name] for name in MATERIALIZED_VIEWS if name in timings}
