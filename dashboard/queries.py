"""The dashboards' questions, each one query over the analytics views.

Shared by the Flask API and the Streamlit app. Every function takes a DB-API
connection and parsed ``Filters`` and returns JSON-ready rows: money as integer
cents (``*_cents``), ratios as floats, dates as ISO strings. Filters become
bind parameters or fixed ``psycopg2.sql`` fragments; input is never pasted
into SQL text. Only aggregate views are read, never the fact tables.

Each question is defined once, here: the dashboard's fallback
(``dashboard/fallback.py``) runs these same functions over DuckDB relations made
from an ``etl export``. So the SQL below is written in the dialect both engines
read alike; ratios go through ``_ratio`` because DuckDB divides decimals as
floats (``round(29/200, 2)`` is 0.14 there, 0.15 in PostgreSQL).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg2 import sql

from dashboard.params import Filters


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return (
            int(value)
            if value == value.to_integral_value() and value.as_tuple().exponent >= 0
            else float(value)
        )
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def _rows(conn, statement: sql.Composable | str, params: dict | tuple = ()) -> list[dict]:
    with conn.cursor() as cur:
        cur.execute(statement, params)
        names = [d.name for d in cur.description]
        return [{n: _jsonable(v) for n, v in zip(names, row)} for row in cur.fetchall()]


def _ratio(numerator: str, denominator: str, places: int) -> sql.Composable:
    """``round(numerator / nullif(denominator, 0), places)``, equal in PostgreSQL and DuckDB.

    Scaled to the last kept digit, divided, rounded to a whole number, scaled
    back. A quotient that ends in exactly .5 at that digit (29 * 100 / 200 =
    14.5) is exact as a double too, and both engines round it away from zero;
    any other quotient is at least 1/(2 * denominator) away from a tie, far
    more than a double's error for counts and cents. Dividing the whole number
    by 10^places gives the double nearest the exact figure in either engine.
    The arguments are fixed SQL fragments of this module, never input.
    """
    scale = sql.SQL(str(10**places))
    return sql.SQL("round(({n}) * {s}.0 / nullif({d}, 0)) / {s}").format(
        n=sql.SQL(numerator), d=sql.SQL(denominator), s=scale
    )


def _where(conditions: list[sql.Composable]) -> sql.Composable:
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")


def _day_filters(f: Filters, date_column: str = "purchase_date") -> tuple[list[sql.Composable], dict]:
    conditions, params = [], {}
    col = sql.Identifier(date_column)
    if f.start:
        conditions.append(sql.SQL("{} >= %(start)s").format(col))
        params["start"] = f.start
    if f.end:
        conditions.append(sql.SQL("{} <= %(end)s").format(col))
        params["end"] = f.end
    if f.state:
        conditions.append(sql.SQL("customer_state = %(state)s"))
        params["state"] = f.state
    return conditions, params


class _Grain:
    """Where day x state figures come from: the daily view, or its monthly roll-up."""

    def __init__(self, relation: str, date_column: str, first_day: str, last_day: str, month: str) -> None:
        self.relation = sql.Identifier(relation)
        self.date_column = date_column
        self.first_day, self.last_day = sql.Identifier(first_day), sql.Identifier(last_day)
        self.month = sql.SQL(month)


_DAILY = _Grain(
    "sales_daily_state",
    "purchase_date",
    "purchase_date",
    "purchase_date",
    "date_trunc('month', purchase_date)::date",
)
_MONTHLY = _Grain("sales_monthly_state", "month", "first_day", "last_day", "month")


def _grain(f: Filters) -> _Grain:
    """The monthly roll-up when the range is whole months (or all time): same sums, ~27x fewer rows.

    ``month >= start`` and ``month <= end`` select exactly the days of a range that
    starts on a 1st and ends on a month's last day.
    """
    whole = (f.start is None or f.start.day == 1) and (f.end is None or (f.end + timedelta(days=1)).day == 1)
    return _MONTHLY if whole else _DAILY


def _month_filters(f: Filters) -> tuple[list[sql.Composable], dict]:
    """Month-grain views: a month is in range when any of its days is."""
    conditions, params = [], {}
    if f.start:
        conditions.append(sql.SQL("month >= date_trunc('month', %(start)s::date)::date"))
        params["start"] = f.start
    if f.end:
        conditions.append(sql.SQL("month <= %(end)s"))
        params["end"] = f.end
    if f.state:
        conditions.append(sql.SQL("customer_state = %(state)s"))
        params["state"] = f.state
    if f.category:
        conditions.append(sql.SQL("category = %(category)s"))
        params["category"] = f.category
    return conditions, params


def categories(conn, f: Filters | None = None) -> list[str]:
    return [r["category"] for r in _rows(conn, "SELECT category FROM category_discount_map ORDER BY 1")]


def kpis(conn, f: Filters) -> dict:
    """Orders, revenue, items, average order value and customers for the selection.

    Customers are distinct people, which do not add up across days: the figure
    is all-time (per state when a state is chosen) and says so in ``customers_scope``.
    """
    grain = _grain(f)
    conditions, params = _day_filters(f, grain.date_column)
    (row,) = _rows(
        conn,
        sql.SQL(
            "SELECT coalesce(sum(orders), 0)::bigint AS orders, coalesce(sum(items), 0)::bigint AS items, "
            "coalesce(sum(revenue_cents), 0)::bigint AS revenue_cents, "
            "coalesce(sum(freight_cents), 0)::bigint AS freight_cents, "
            "{aov} AS avg_order_value_cents, "
            "min({first}) AS first_day, max({last}) AS last_day "
            "FROM {grain}"
        ).format(
            aov=_ratio("sum(revenue_cents)", "sum(orders)", 2),
            first=grain.first_day,
            last=grain.last_day,
            grain=grain.relation,
        )
        + _where(conditions),
        params,
    )
    if f.state:
        found = _rows(
            conn, "SELECT customers FROM region_wise_performance WHERE customer_state = %s", (f.state,)
        )
        row["customers"] = found[0]["customers"] if found else 0
        row["customers_scope"] = f"all time, {f.state}"
    else:
        row["customers"] = _rows(conn, "SELECT coalesce(sum(customers), 0)::bigint AS n FROM clv_segments")[
            0
        ]["n"]
        row["customers_scope"] = "all time"
    return row


def monthly_sales(conn, f: Filters) -> list[dict]:
    """Revenue, orders, items, AOV and freight share per month of the selection."""
    if f.category:
        conditions, params = _month_filters(f)
        source = sql.SQL(
            "SELECT month, orders, items, revenue_cents, freight_cents FROM sales_monthly_category"
        ) + _where(conditions)
    else:
        grain = _grain(f)
        conditions, params = _day_filters(f, grain.date_column)
        source = sql.SQL(
            "SELECT {month} AS month, orders, items, revenue_cents, freight_cents FROM {grain}"
        ).format(month=grain.month, grain=grain.relation) + _where(conditions)
    return _rows(
        conn,
        sql.SQL(
            "SELECT month, sum(orders)::bigint AS orders, sum(items)::bigint AS items, "
            "sum(revenue_cents)::bigint AS revenue_cents, sum(freight_cents)::bigint AS freight_cents, "
            "{aov} AS avg_order_value_cents, {share} AS freight_share "
            "FROM ({source}) s GROUP BY month ORDER BY month"
        ).format(
            aov=_ratio("sum(revenue_cents)", "sum(orders)", 2),
            share=_ratio("sum(freight_cents)", "sum(revenue_cents + freight_cents)", 4),
            source=source,
        ),
        params,
    )


def top_products(conn, f: Filters) -> list[dict]:
    """The best products of all time by revenue (default) or units, optionally in one category."""
    rank = sql.Identifier("units_rank" if f.metric == "units" else "revenue_rank")
    params: dict = {"limit": f.limit or 10}
    where = sql.SQL("")
    if f.category:
        where = sql.SQL(" WHERE category = %(category)s")
        params["category"] = f.category
    return _rows(
        conn,
        sql.SQL(
            "SELECT product_id, category, revenue_cents, units, orders, revenue_rank, units_rank "
            "FROM top_products{} ORDER BY {} LIMIT %(limit)s"
        ).format(where, rank),
        params,
    )


def regions(conn, f: Filters) -> list[dict]:
    """Per customer state: orders, revenue, AOV, delivery days, late share (customers all time)."""
    grain = _grain(f)
    conditions, params = _day_filters(f, grain.date_column)
    return _rows(
        conn,
        sql.SQL(
            "SELECT s.customer_state, sum(s.orders)::bigint AS orders, "
            "sum(s.revenue_cents)::bigint AS revenue_cents, sum(s.freight_cents)::bigint AS freight_cents, "
            "{aov} AS avg_order_value_cents, {days} AS avg_delivery_days, {late} AS late_share, "
            "max(r.customers) AS customers "
            "FROM {grain} s LEFT JOIN region_wise_performance r USING (customer_state){where} "
            "GROUP BY s.customer_state ORDER BY revenue_cents DESC, s.customer_state"
        ).format(
            aov=_ratio("sum(s.revenue_cents)", "sum(s.orders)", 2),
            days=_ratio("sum(s.delivery_days_sum)", "sum(s.delivered_orders)", 2),
            late=_ratio("sum(s.late_orders)", "sum(s.delivered_orders)", 4),
            grain=grain.relation,
            where=_where([sql.SQL("s.") + c for c in conditions]),
        ),
        params,
    )


def category_map(conn, f: Filters) -> list[dict]:
    return _rows(conn, "SELECT * FROM category_discount_map ORDER BY revenue_cents DESC, category")


def segments(conn, f: Filters) -> list[dict]:
    return _rows(
        conn,
        "SELECT rfm_segment, customers, total_spent_cents, churned_customers "
        "FROM clv_segments ORDER BY customers DESC",
    )


def anomalies(conn, f: Filters) -> list[dict]:
    conditions, params = _month_filters(Filters(start=f.start, end=f.end, category=f.category))
    params["limit"] = f.limit or 100
    return _rows(
        conn,
        sql.SQL(
            "SELECT order_id, category, month, value_cents, items, peers, mean_value_cents, z_value, z_items "
            "FROM anomaly_records{} ORDER BY greatest(abs(z_value), abs(z_items)) DESC NULLS LAST, order_id "
            "LIMIT %(limit)s"
        ).format(_where(conditions)),
        params,
    )


def quality_scores(conn, f: Filters) -> list[dict]:
    """Run-wide score per quality dimension for each run (oldest first), with targets."""
    return _rows(
        conn,
        "SELECT run_id, dimension, score, target, rows_checked, rows_failed, computed_at "
        "FROM quality_overall ORDER BY computed_at, run_id, dimension",
    )


def quarantine_counts(conn, f: Filters) -> list[dict]:
    """Quarantined rows per category (per table), for one run or all runs."""
    where, params = sql.SQL(""), {}
    if f.run_id:
        where, params = sql.SQL(" WHERE run_id = %(run_id)s"), {"run_id": f.run_id}
    return _rows(
        conn,
        sql.SQL(
            "SELECT category, table_name, sum(rows)::bigint AS rows FROM quarantine_counts{} "
            "GROUP BY category, table_name ORDER BY rows DESC, category, table_name"
        ).format(where),
        params,
    )


def pipeline_runs(conn, f: Filters) -> list[dict]:
    """The latest runs from ingest_audit: when, status, rows read/loaded/quarantined."""
    return _rows(
        conn,
        "SELECT run_id, started_at, finished_at, status, tables, rows_read, rows_loaded, "
        "rows_quarantined, seconds, error FROM pipeline_runs "
        "ORDER BY started_at DESC, run_id LIMIT %(limit)s",
        {"limit": f.limit or 50},
    )


ORDER_STATUSES = (
    "approved",
    "canceled",
    "created",
    "delivered",
    "invoiced",
    "processing",
    "shipped",
    "unavailable",
)


def order_lines_page(
    conn,
    f: Filters,
    statuses: tuple[str, ...] = (),
    page: int = 0,
    page_size: int = 50,
    source: str | None = None,
) -> list[dict]:
    """One page of raw order lines (the raw data viewer), newest first.

    Pages through the ``order_lines`` view with LIMIT/OFFSET so nothing loads
    the whole warehouse; filters are bind parameters like everywhere else.
    """
    conditions, params = _day_filters(f)
    if f.category:
        conditions.append(sql.SQL("category = %(category)s"))
        params["category"] = f.category
    if statuses:
        conditions.append(sql.SQL("order_status = ANY(%(statuses)s)"))
        params["statuses"] = list(statuses)
    if source:  # lineage: 'olist' or a vendor system (sql/views/10_order_lines.sql)
        conditions.append(sql.SQL("source_system = %(source)s"))
        params["source"] = source
    params.update(limit=int(page_size), offset=int(page) * int(page_size))
    return _rows(
        conn,
        sql.SQL(
            "SELECT purchased_at, order_id, order_item_id, order_status, customer_state, category, "
            "product_id, price_cents, freight_cents, source_system, source_id FROM order_lines{} "
            "ORDER BY purchased_at DESC, order_id, order_item_id LIMIT %(limit)s OFFSET %(offset)s"
        ).format(_where(conditions)),
        params,
    )
