"""Shaping after the checks: aggregation, calendar, per-order enrichment, reference data."""

from __future__ import annotations

import numpy as np
import pandas as pd


def aggregate_geolocation(points: pd.DataFrame) -> pd.DataFrame:
    """Olist lists many points per zip prefix: keep one row per prefix.

    Latitude/longitude are averaged; city and state are the most frequent
    spelling. ``attrs['source_rows']`` keeps the number of accepted points.
    """
    grouped = points.groupby("zip_code_prefix", sort=True)
    result = grouped.agg(
        latitude=("latitude", "mean"), longitude=("longitude", "mean"), source_points=("latitude", "size")
    ).reset_index()
    for column in ("city", "state"):
        result[column] = result["zip_code_prefix"].map(_mode(points, column))
    result.attrs["source_rows"] = len(points)
    return result


def _mode(points: pd.DataFrame, column: str) -> pd.Series:
    return (
        points.groupby(["zip_code_prefix", column])
        .size()
        .rename("n")
        .reset_index()
        .sort_values(["zip_code_prefix", "n", column], ascending=[True, False, True])
        .drop_duplicates("zip_code_prefix")
        .set_index("zip_code_prefix")[column]
    )


def geolocation_places(points: pd.DataFrame) -> dict:
    """Reference data for the accuracy checks and imputation of customers/sellers.

    Every (zip, city) and (zip, state) pair seen in the geolocation points counts
    as correct (Olist spells one place several ways); the mode fills gaps.
    """
    pairs = points[["zip_code_prefix", "city", "state"]].drop_duplicates()
    return {
        "zips": pd.Index(pairs["zip_code_prefix"].unique()),
        "city_pairs": pd.Index((pairs["zip_code_prefix"] + "|" + pairs["city"]).unique()),
        "state_pairs": pd.Index((pairs["zip_code_prefix"] + "|" + pairs["state"]).unique()),
        "mode_city": _mode(points, "city"),
        "mode_state": _mode(points, "state"),
    }


def build_dim_dates(orders: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """A contiguous calendar over the local purchase dates of the orders."""
    if orders.empty:
        return pd.DataFrame(columns=["date_key", "full_date"])
    local = orders["purchased_at"].dt.tz_convert(timezone)
    days = pd.date_range(local.min().date(), local.max().date(), freq="D")
    iso = days.isocalendar()
    return pd.DataFrame(
        {
            "date_key": (days.year * 10000 + days.month * 100 + days.day).astype("int64"),
            "full_date": days.date,
            "year": days.year,
            "quarter": days.quarter,
            "month": days.month,
            "month_name": days.month_name(),
            "day_of_month": days.day,
            "day_of_week": days.dayofweek + 1,
            "day_name": days.day_name(),
            "week_of_year": iso["week"].to_numpy(),
            "is_weekend": days.dayofweek >= 5,
        }
    )


def add_purchase_date_key(orders: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """Orders are dated by the shop's local calendar day, as analysts count them."""
    local = orders["purchased_at"].dt.tz_convert(timezone)
    orders["purchase_date_key"] = (local.dt.year * 10000 + local.dt.month * 100 + local.dt.day).astype(
        "int64"
    )
    return orders


ENRICHMENT_COLUMNS = [
    "item_count",
    "items_gross_cents",
    "freight_total_cents",
    "payment_total_cents",
    "delivery_days",
    "is_late",
    "payment_mismatch",
]


def item_totals(items: pd.DataFrame) -> pd.DataFrame:
    """Per order: item count, gross and freight totals (partial sums combine by addition)."""
    return items.groupby("order_id", sort=False).agg(
        item_count=("order_item_id", "size"),
        items_gross_cents=("price_cents", "sum"),
        freight_total_cents=("freight_cents", "sum"),
    )


def payment_totals(payments: pd.DataFrame) -> pd.DataFrame:
    return payments.groupby("order_id", sort=False).agg(payment_total_cents=("payment_value_cents", "sum"))


def enrich_orders(
    orders: pd.DataFrame, items: pd.DataFrame, payments: pd.DataFrame, tolerance_cents: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Add the per-order measures analysts ask for first.

    Returns (orders with ENRICHMENT_COLUMNS, mask of orders where the payment
    check applies, mask where payments differ from items + freight by more
    than the tolerance). Orders with neither items nor payments are not checked.
    """
    out = orders.drop(columns=[c for c in ENRICHMENT_COLUMNS if c in orders.columns])
    out = out.join(items, on="order_id").join(payments, on="order_id")
    out["item_count"] = out["item_count"].fillna(0).astype("Int64")
    for col in ("items_gross_cents", "freight_total_cents", "payment_total_cents"):
        out[col] = out[col].astype("Int64")
    delivered = out["delivered_customer_at"]
    out["delivery_days"] = ((delivered - out["purchased_at"]).dt.total_seconds() / 86400).round(2)
    out["is_late"] = (
        (delivered > out["estimated_delivery_at"])
        .where(delivered.notna() & out["estimated_delivery_at"].notna())
        .astype("boolean")
    )
    applicable = (out["payment_total_cents"].notna() & out["items_gross_cents"].notna()).to_numpy(dtype=bool)
    diff = (out["payment_total_cents"] - out["items_gross_cents"] - out["freight_total_cents"]).abs()
    mismatch = applicable & (diff > tolerance_cents).fillna(False).to_numpy(dtype=bool)
    out["payment_mismatch"] = pd.array(np.where(applicable, mismatch, False), dtype="boolean")
    out.loc[~applicable, "payment_mismatch"] = pd.NA
    return out, applicable, mismatch
