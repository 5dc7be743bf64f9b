"""The dashboard's fallback: answer from ``etl export`` files when the warehouse is down.

``etl export --format csv|parquet --out DIR`` writes every analytical view and
a manifest (``export.json``: when, from where, each column's type). With
``DASHBOARD_FALLBACK_DIR=DIR`` the app answers every page and API route from
those files while the warehouse is unreachable, saying so (and how old the
export is) on the page and in the JSON.

Each function below is the export-side twin of the ``dashboard.queries``
function of the same name: same filters, same rows, same JSON-ready values.
Money is summed as Python ints and ratios are computed in ``Decimal`` and
rounded half away from zero, as PostgreSQL's ``round(numeric, n)`` does, so the
figures equal the warehouse's to the cent (tests/analytics/test_fallback.py
compares every endpoint). Plain Python over lists of dicts: the exported views
are aggregates (thousands of rows), and this keeps NaN and float dtypes out.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any

import pandas as pd

from dashboard.params import Filters
from dashboard.queries import _jsonable

MANIFEST = "export.json"  # as written by etl.publish.export
#: The exported views the answers below read (others in the folder are not loaded).
VIEWS = (
    "sales_daily_state",
    "sales_monthly_category",
    "top_products",
    "region_wise_performance",
    "category_discount_map",
    "clv_segments",
    "anomaly_records",
    "quality_overall",
    "quarantine_counts",
    "pipeline_runs",
    "sales_by_source",
)


class FallbackUnavailable(Exception):
    """The export cannot be used; the message says why and what to do."""


Row = dict[str, Any]


@dataclass
class Snapshot:
    """One export, loaded: its views as rows of Python values."""

    directory: Path
    exported_at: str
    format: str
    database: str
    views: dict[str, list[Row]] = field(default_factory=dict)

    def rows(self, view: str) -> list[Row]:
        try:
            return self.views[view]
        except KeyError:
            raise FallbackUnavailable(
                f"the export in {self.directory} has no {view}; re-run `etl export` with this version"
            ) from None

    def describe(self, reason: str) -> dict:
        """What API answers carry in ``fallback`` (and pages show)."""
        return {
            "source": "export",
            "exported_at": self.exported_at,
            "format": self.format,
            "database": self.database,
            "reason": reason,
            "notice": f"The warehouse is unavailable; these figures are from an export of "
            f"{self.exported_at} ({self.format}, {self.database}).",
        }


# --- reading the files --------------------------------------------------------------------


def _missing(value: Any) -> bool:
    return value is None or value == "" or (not isinstance(value, str) and pd.isna(value))


def _convert(kind: str, value: Any) -> Any:
    """A CSV cell (text) or Parquet cell back to the value the warehouse returned."""
    if _missing(value):
        return None
    if kind == "int":
        return int(Decimal(str(value)))
    if kind == "decimal":  # CSV keeps the exact text; Parquet stored a double
        return Decimal(str(value))
    if kind == "float":
        return float(value)
    if kind == "date":
        return value if type(value) is date else date.fromisoformat(str(value)[:10])
    if kind == "timestamp":
        if isinstance(value, pd.Timestamp):
            return value.to_pydatetime()
        return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if kind == "bool":
        return value if isinstance(value, bool) else str(value) == "True"
    return str(value)


def _read(path: Path, fmt: str, kinds: dict[str, str]) -> list[Row]:
    if fmt == "csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    else:
        frame = pd.read_parquet(path)
    columns = list(frame.columns)
    converters = [(c, kinds.get(c, "text")) for c in columns]
    return [
        {c: _convert(kind, v) for (c, kind), v in zip(converters, values)}
        for values in frame.itertuples(index=False, name=None)
    ]


def load(directory: Path) -> Snapshot:
    """Read an export folder (manifest first); FallbackUnavailable if it is not usable."""
    manifest_path = directory / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FallbackUnavailable(
            f"there is no export in {directory} ({MANIFEST} is missing); "
            f"write one with `etl export --out {directory}`"
        ) from None
    except (OSError, ValueError) as exc:
        raise FallbackUnavailable(f"the export manifest {manifest_path} cannot be read: {exc}") from None
    snapshot = Snapshot(directory, manifest["exported_at"], manifest["format"], manifest.get("database", "?"))
    for view, entry in manifest["views"].items():
        if view not in VIEWS:
            continue
        try:
            snapshot.views[view] = _read(directory / entry["file"], manifest["format"], entry["columns"])
        except (OSError, ValueError) as exc:
            raise FallbackUnavailable(
                f"the exported file {directory / entry['file']} cannot be read: "
                f"{exc}; re-run `etl export --out {directory}`"
            ) from None
    return snapshot


class ExportedAggregates:
    """The configured export folder, loaded once and re-read when a new export lands.

    A new export is noticed by the manifest's modification time (the manifest
    is written last, after every file is in place).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._snapshot: Snapshot | None = None
        self._stamp: int | None = None
        self._lock = threading.Lock()

    def snapshot(self) -> Snapshot:
        try:
            stamp = (self.directory / MANIFEST).stat().st_mtime_ns
        except OSError:
            stamp = None
        with self._lock:
            if self._snapshot is None or stamp != self._stamp:
                self._snapshot, self._stamp = load(self.directory), stamp
            return self._snapshot


# --- the queries, over the exported rows ---------------------------------------------------


def _round(numerator: Any, denominator: Any, places: int) -> Any:
    """PostgreSQL's round(a / nullif(b, 0), places) for numerics, as the JSON value."""
    if not denominator:
        return None
    with localcontext() as ctx:
        ctx.prec = 60
        exact = Decimal(numerator) / Decimal(denominator)
        return _jsonable(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def _sum(rows: Iterable[Row], column: str) -> Any:
    with localcontext() as ctx:
        ctx.prec = 60
        return sum((r[column] for r in rows if r[column] is not None), 0)


def _json(rows: Iterable[Row], columns: Iterable[str]) -> list[Row]:
    columns = list(columns)
    return [{c: _jsonable(r[c]) for c in columns} for r in rows]


def _days(rows: list[Row], f: Filters) -> list[Row]:
    """sales_daily_state rows in the date range and state (queries._day_filters)."""
    return [
        r
        for r in rows
        if (f.start is None or r["purchase_date"] >= f.start)
        and (f.end is None or r["purchase_date"] <= f.end)
        and (f.state is None or r["customer_state"] == f.state)
    ]


def _months(rows: list[Row], f: Filters) -> list[Row]:
    """Month-grain rows: a month is in range when any of its days is (queries._month_filters)."""
    first = f.start.replace(day=1) if f.start else None
    return [
        r
        for r in rows
        if (first is None or r["month"] >= first)
        and (f.end is None or r["month"] <= f.end)
        and (f.state is None or r.get("customer_state") == f.state)
        and (f.category is None or r["category"] == f.category)
    ]


def _group(rows: Iterable[Row], key: str) -> dict[Any, list[Row]]:
    groups: dict[Any, list[Row]] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    return groups


def categories(s: Snapshot, f: Filters | None = None) -> list[str]:
    return sorted(r["category"] for r in s.rows("category_discount_map"))


def kpis(s: Snapshot, f: Filters) -> dict:
    days = _days(s.rows("sales_daily_state"), f)
    orders, revenue = _sum(days, "orders"), _sum(days, "revenue_cents")
    dates = [r["purchase_date"] for r in days]
    row = {
        "orders": orders,
        "items": _sum(days, "items"),
        "revenue_cents": revenue,
        "freight_cents": _sum(days, "freight_cents"),
        "avg_order_value_cents": _round(revenue, orders, 2),
        "first_day": _jsonable(min(dates)) if dates else None,
        "last_day": _jsonable(max(dates)) if dates else None,
    }
    if f.state:
        found = [r for r in s.rows("region_wise_performance") if r["customer_state"] == f.state]
        row["customers"] = found[0]["customers"] if found else 0
        row["customers_scope"] = f"all time, {f.state}"
    else:
        row["customers"] = _sum(s.rows("clv_segments"), "customers")
        row["customers_scope"] = "all time"
    return row


def monthly_sales(s: Snapshot, f: Filters) -> list[Row]:
    if f.category:
        lines = _months(s.rows("sales_monthly_category"), f)
    else:
        lines = [
            dict(r, month=r["purchase_date"].replace(day=1)) for r in _days(s.rows("sales_daily_state"), f)
        ]
    out = []
    for month, rows in sorted(_group(lines, "month").items()):
        orders, revenue, freight = (
            _sum(rows, "orders"),
            _sum(rows, "revenue_cents"),
            _sum(rows, "freight_cents"),
        )
        out.append(
            {
                "month": _jsonable(month),
                "orders": orders,
                "items": _sum(rows, "items"),
                "revenue_cents": revenue,
                "freight_cents": freight,
                "avg_order_value_cents": _round(revenue, orders, 2),
                "freight_share": _round(freight, revenue + freight, 4),
            }
        )
    return out


def top_products(s: Snapshot, f: Filters) -> list[Row]:
    rank = "units_rank" if f.metric == "units" else "revenue_rank"
    rows = [r for r in s.rows("top_products") if f.category is None or r["category"] == f.category]
    rows.sort(key=lambda r: (r[rank], r["product_id"]))
    return _json(
        rows[: f.limit or 10],
        ("product_id", "category", "revenue_cents", "units", "orders", "revenue_rank", "units_rank"),
    )


def regions(s: Snapshot, f: Filters) -> list[Row]:
    customers = {r["customer_state"]: r["customers"] for r in s.rows("region_wise_performance")}
    out = []
    for state, rows in _group(_days(s.rows("sales_daily_state"), f), "customer_state").items():
        orders, revenue = _sum(rows, "orders"), _sum(rows, "revenue_cents")
        delivered = _sum(rows, "delivered_orders")
        out.append(
            {
                "customer_state": state,
                "orders": orders,
                "revenue_cents": revenue,
                "freight_cents": _sum(rows, "freight_cents"),
                "avg_order_value_cents": _round(revenue, orders, 2),
                "avg_delivery_days": _round(_sum(rows, "delivery_days_sum"), delivered, 2),
                "late_share": _round(_sum(rows, "late_orders"), delivered, 4),
                "customers": customers.get(state),
            }
        )
    out.sort(key=lambda r: (-r["revenue_cents"], r["customer_state"]))
    return out


def category_map(s: Snapshot, f: Filters) -> list[Row]:
    rows = sorted(s.rows("category_discount_map"), key=lambda r: (-r["revenue_cents"], r["category"]))
    return _json(rows, rows[0].keys() if rows else ())


def segments(s: Snapshot, f: Filters) -> list[Row]:
    rows = sorted(s.rows("clv_segments"), key=lambda r: (-r["customers"], r["rfm_segment"]))
    return _json(rows, ("rfm_segment", "customers", "total_spent_cents", "churned_customers"))


def anomalies(s: Snapshot, f: Filters) -> list[Row]:
    rows = _months(s.rows("anomaly_records"), Filters(start=f.start, end=f.end, category=f.category))

    def order(r: Row) -> tuple:
        scores = [abs(z) for z in (r["z_value"], r["z_items"]) if z is not None]  # greatest() skips NULLs
        return (not scores, -max(scores) if scores else 0, r["order_id"])

    rows.sort(key=order)
    return _json(
        rows[: f.limit or 100],
        (
            "order_id",
            "category",
            "month",
            "value_cents",
            "items",
            "peers",
            "mean_value_cents",
            "z_value",
            "z_items",
        ),
    )


def quality_scores(s: Snapshot, f: Filters) -> list[Row]:
    rows = sorted(s.rows("quality_overall"), key=lambda r: (r["computed_at"], r["run_id"], r["dimension"]))
    return _json(
        rows, ("run_id", "dimension", "score", "target", "rows_checked", "rows_failed", "computed_at")
    )


def quarantine_counts(s: Snapshot, f: Filters) -> list[Row]:
    rows = [r for r in s.rows("quarantine_counts") if f.run_id is None or r["run_id"] == f.run_id]
    totals: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (r["category"], r["table_name"])
        totals[key] = totals.get(key, 0) + r["rows"]
    out = [{"category": c, "table_name": t, "rows": n} for (c, t), n in totals.items()]
    out.sort(key=lambda r: (-r["rows"], r["category"], r["table_name"]))
    return out


def pipeline_runs(s: Snapshot, f: Filters) -> list[Row]:
    rows = s.rows("pipeline_runs")
    # ORDER BY started_at DESC, run_id (NULLs first, as PostgreSQL sorts them descending).
    rows = sorted(rows, key=lambda r: r["run_id"])
    rows.sort(key=lambda r: (r["started_at"] is None, r["started_at"] or datetime.min), reverse=True)
    return _json(
        rows[: f.limit or 50],
        (
            "run_id",
            "started_at",
            "finished_at",
            "status",
            "tables",
            "rows_read",
            "rows_loaded",
            "rows_quarantined",
            "seconds",
            "error",
        ),
    )


def sales_by_source(s: Snapshot, f: Filters) -> list[Row]:
    """Twin of ``dashboard.sources.sales_by_source``."""
    first = f.start.replace(day=1) if f.start else None
    rows = [
        r
        for r in s.rows("sales_by_source")
        if (first is None or r["month"] >= first) and (f.end is None or r["month"] <= f.end)
    ]
    out = []
    for system, mine in _group(rows, "source_system").items():
        out.append(
            {
                "source_system": system,
                "orders": _sum(mine, "orders"),
                "revenue_cents": _sum(mine, "revenue_cents"),
                "freight_cents": _sum(mine, "freight_cents"),
                "first_purchase_at": _jsonable(min(r["first_purchase_at"] for r in mine)),
                "last_purchase_at": _jsonable(max(r["last_purchase_at"] for r in mine)),
            }
        )
    out.sort(key=lambda r: (-(r["revenue_cents"] or 0), r["source_system"]))
    return out


#: The export-side twin of each ``dashboard.queries`` function, by name.
QUERIES: dict[str, Callable[[Snapshot, Filters], Any]] = {
    fn.__name__: fn
    for fn in (
        categories,
        kpis,
        monthly_sales,
        top_products,
        regions,
        category_map,
        segments,
        anomalies,
        quality_scores,
        quarantine_counts,
        pipeline_runs,
        sales_by_source,
    )
}


def answer(snapshot: Snapshot, query: Callable, filters: Filters) -> Any:
    """What ``query`` (a dashboard.queries function) would have answered, from the export."""
    twin = QUERIES.get(query.__name__)
    if twin is None:
        raise FallbackUnavailable(f"{query.__name__} has no export-based answer")
    return twin(snapshot, filters)
