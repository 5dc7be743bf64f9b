"""Where the sales came from: the source systems of the orders (lineage, ``sql/views/60_sources.sql``).

Orders from the Olist files count as ``olist``; vendor orders carry their
system (shopify, stripe, woocommerce, or a database source's name). The
dashboards list the systems for their source filter and show orders and
revenue per system from the BI view ``sales_by_source``.
"""

from __future__ import annotations

from psycopg2 import sql

from dashboard.params import Filters
from dashboard.queries import _rows, _where


def source_systems(conn, f: Filters | None = None) -> list[str]:
    """Every source system with sold orders (the filter's choices)."""
    return [
        r["source_system"]
        for r in _rows(conn, "SELECT DISTINCT source_system FROM sales_by_source ORDER BY 1")
    ]


def sales_by_source(conn, f: Filters) -> list[dict]:
    """Per source system: orders, revenue, freight, first and last purchase (months in start..end)."""
    conditions, params = [], {}
    if f.start:
        conditions.append(sql.SQL("month >= date_trunc('month', %(start)s::date)"))
        params["start"] = f.start
    if f.end:
        conditions.append(sql.SQL("month <= %(end)s"))
        params["end"] = f.end
    return _rows(
        conn,
        sql.SQL(
            "SELECT source_system, sum(orders)::bigint AS orders, sum(revenue_cents)::bigint AS revenue_cents, "
            "sum(freight_cents)::bigint AS freight_cents, min(first_purchase_at) AS first_purchase_at, "
            "max(last_purchase_at) AS last_purchase_at FROM sales_by_source{} "
            "GROUP BY source_system ORDER BY revenue_cents DESC NULLS LAST, source_system"
        ).format(_where(conditions)),
        params,
    )
