"""The analytics layer: which relations the dashboards and BI read, and ``etl db refresh``.

Every figure comes from the time-bucketed aggregates (``etl.publish.aggregates``,
``sql/aggregates/``) and the tables derived from them (``etl.publish.derived``,
``sql/analytics/``), kept for the days each load touched by the pipeline's
``refresh_aggregates`` stage; the plain views of ``sql/views/`` read them.
``refresh`` here is the full rebuild (``etl db refresh``): all of time is
queued and drained like a load's days.
"""

from __future__ import annotations

import psycopg2.extensions

from etl.publish import aggregates, derived
from etl.settings import Settings
from etl.warehouse import connection

#: What ``etl export`` writes and BI tools read: the analytical relations by name.
EXPORT_VIEWS: tuple[str, ...] = (
    "monthly_sales_summary",
    "top_products",
    "region_wise_performance",
    "category_discount_map",
    "anomaly_records",
    "customer_lifetime_value",
    "clv_segments",
    "sales_daily_state",
    "sales_monthly_state",
    "sales_monthly_category",
    "sales_by_source",  # sql/views/60_sources.sql: lineage of the sales
    # Operational views (sql/views/50_dashboard_operations.sql): the dashboard's fallback reads them.
    "quality_overall",
    "quarantine_counts",
    "pipeline_runs",
)
OPTIONAL_EXPORT_VIEWS: tuple[str, ...] = ("hourly_sales", "daily_customer_metrics")
#: Every relation a refresh writes (aggregates first, then derived tables in order).
REFRESHED: tuple[str, ...] = aggregates.NAMES + derived.TABLES


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


def refresh(settings: Settings, full: bool = True) -> dict[str, float]:
    """Recompute the analytics (``etl db refresh``); seconds per relation refreshed.

    ``full`` queues all of time first (a rebuild); without it only what loads
    queued is drained (what the pipeline's refresh stage does).
    """
    conn = connection.connect(settings.database_url, settings.connect_timeout)
    try:
        if full:
            with conn, conn.cursor() as cur:
                aggregates.queue_everything(cur, "etl-db-refresh")
        result = aggregates.refresh_pending(conn, settings.source_timezone, settings.refresh_work_mem)
    finally:
        conn.close()
    return {name: seconds for name, seconds in result.seconds.items() if name in REFRESHED}
