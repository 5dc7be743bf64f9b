"""Transform: type, clean and check one source table; never drop a row silently.

Each table goes through the same steps, all on whole columns:

1. trim text and treat empty fields as missing;
2. required fields present                 -> else MISSING_REQUIRED_FIELD
3. every value parses as its kind          -> else DATA_FORMAT_ERROR
   (ids are 32 hex digits, zip prefixes are zero-padded to 5 digits, states
   are upper-cased Brazilian codes, money becomes integer cents, São Paulo
   wall-clock timestamps become UTC);
4. business rules hold                     -> else BUSINESS_RULE_VIOLATION
5. the natural key is unique (first wins)  -> else DUPLICATE
6. foreign keys resolve                    -> else REFERENTIAL_INTEGRITY

A row is quarantined at the first rule it breaks, with the rule's name, a
sentence for people, and the record exactly as read. So for every table:
rows read = rows clean + rows quarantined.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from etl.ingest import ROW_NUMBER
from etl.olist import (BRAZIL_STATES, GEOLOCATION, ORDER_STATUSES, PAYMENT_TYPES, PRODUCTS,
                       Column, ForeignKey, TableSpec)

QUARANTINE_COLUMNS = ["row_number", "category", "rule", "detail", "raw_record"]

#: Looks up which of the given keys exist outside this batch (e.g. in the warehouse).
KeyLookup = Callable[[ForeignKey, pd.Series], "set[str]"]


@dataclass
class TableResult:
    spec: TableSpec
    clean: pd.DataFrame           # typed, target column names, ready to load
    quarantined: pd.DataFrame     # QUARANTINE_COLUMNS
    rows_read: int

    def __post_init__(self) -> None:
        # The one invariant the whole product rests on.
        assert self.rows_read == self.rows_clean + len(self.quarantined), (
            f"{self.spec.name}: {self.rows_read} read != {self.rows_clean} clean "
            f"+ {len(self.quarantined)} quarantined")

    @property
    def rows_clean(self) -> int:
        """Source rows accepted (geolocation: before merging points per zip prefix)."""
        return int(self.clean.attrs.get("source_rows", len(self.clean)))


class _Rejector:
    """Collects rejected rows while the frame shrinks to the rows still in play."""

    def __init__(self, raw: pd.DataFrame) -> None:
        self.raw = raw
        self.parts: list[pd.DataFrame] = []

    def reject(self, frame: pd.DataFrame, mask: pd.Series, category: str, rule: str,
               detail: pd.Series | str) -> pd.DataFrame:
        """Quarantine rows of ``frame`` where ``mask`` holds; return the others."""
        mask = mask.fillna(False).astype(bool)
        if mask.any():
            if isinstance(detail, str):
                detail = pd.Series(detail, index=frame.index)
            self.parts.append(pd.DataFrame({
                "row_number": frame.loc[mask, ROW_NUMBER].astype("int64"),
                "category": category, "rule": rule,
                "detail": detail[mask].astype(str),
            }))
        return frame.loc[~mask]

    def result(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame(columns=QUARANTINE_COLUMNS)
        rejected = pd.concat(self.parts)
        raw = self.raw.loc[rejected.index].drop(columns=[ROW_NUMBER])
        rejected["raw_record"] = [
            json.dumps({k: (None if pd.isna(v) else v) for k, v in rec.items()}, ensure_ascii=False)
            for rec in raw.to_dict("records")
        ]
        return rejected.sort_values("row_number")[QUARANTINE_COLUMNS].reset_index(drop=True)


# --- parsing of one column kind ---------------------------------------------------

_HEX32 = r"^[0-9a-f]{32}$"


def _parse_timestamps(values: pd.Series, timezone: str) -> pd.Series:
    """Local wall-clock strings -> UTC. Unparseable values become NaT."""
    parsed = pd.to_datetime(values, format="%Y-%m-%d %H:%M:%S", errors="coerce")
    date_only = parsed.isna() & values.notna()
    if date_only.any():
        parsed[date_only] = pd.to_datetime(values[date_only], format="%Y-%m-%d", errors="coerce")
    # Brazil had daylight saving until 2019: a repeated autumn hour is read as
    # standard time, and a time in the skipped spring hour (DST started at
    # midnight, so every date-only value that day) moves forward by that hour.
    localized = parsed.dt.tz_localize(timezone, ambiguous=np.zeros(len(parsed), dtype=bool),
                                      nonexistent=pd.Timedelta(hours=1))
    return localized.dt.tz_convert("UTC")


def _parse_column(col: Column, values: pd.Series, timezone: str) -> tuple[pd.Series, pd.Series, str]:
    """(parsed values, mask of present-but-invalid values, what was expected)."""
    present = values.notna()
    if col.kind == "id":
        parsed = values.str.lower()
        return parsed, present & ~parsed.str.fullmatch(_HEX32).fillna(False), "32 hex digits"
    if col.kind in ("int", "float", "money"):
        numbers = pd.to_numeric(values, errors="coerce")
        bad = present & numbers.isna()
        if col.kind == "int":
            bad |= present & numbers.notna() & (numbers % 1 != 0)
            return numbers.where(~bad).astype("Int64"), bad, "a whole number"
        if col.kind == "money":
            cents = np.rint(numbers * 100)
            return cents.where(~bad).astype("Int64"), bad, "an amount like 12.34"
        return numbers.astype("float64"), bad, "a number"
    if col.kind == "timestamp":
        parsed = _parse_timestamps(values, timezone)
        return parsed, present & parsed.isna(), "a timestamp YYYY-MM-DD HH:MM:SS"
    if col.kind == "zip":
        ok = values.str.fullmatch(r"\d{1,5}").fillna(False)
        return values.str.zfill(5), present & ~ok, "a zip prefix of up to 5 digits"
    if col.kind == "state":
        parsed = values.str.upper()
        return parsed, present & ~parsed.isin(BRAZIL_STATES), "a Brazilian state code (e.g. SP)"
    return values, pd.Series(False, index=values.index), "text"


# --- business rules (hard: the row cannot be loaded as is) --------------------------

def _business_rules(spec: TableSpec) -> list[tuple[str, str, Callable[[pd.DataFrame], pd.Series]]]:
    """(rule name, sentence, mask of violating rows) per table."""
    rules = {
        "fact_orders": [
            ("order_status_known", "order_status is not one of " + ", ".join(sorted(ORDER_STATUSES)),
             lambda f: ~f["order_status"].isin(ORDER_STATUSES)),
        ],
        "fact_order_items": [
            ("price_positive", "price must be greater than 0", lambda f: f["price_cents"] <= 0),
            ("freight_not_negative", "freight_value must not be negative",
             lambda f: f["freight_cents"] < 0),
            ("item_number_positive", "order_item_id must be 1 or more",
             lambda f: f["order_item_id"] < 1),
        ],
        "fact_payments": [
            ("payment_not_negative", "payment_value must not be negative",
             lambda f: f["payment_value_cents"] < 0),
            ("payment_type_known", "payment_type is not one of " + ", ".join(sorted(PAYMENT_TYPES)),
             lambda f: ~f["payment_type"].isin(PAYMENT_TYPES)),
            ("installments_not_negative", "payment_installments must not be negative",
             lambda f: f["payment_installments"] < 0),
            ("sequential_positive", "payment_sequential must be 1 or more",
             lambda f: f["payment_sequential"] < 1),
        ],
        "fact_reviews": [
            ("review_score_1_to_5", "review_score must be between 1 and 5",
             lambda f: ~f["review_score"].between(1, 5)),
        ],
        "dim_geolocation": [
            ("latitude_range", "latitude must be between -90 and 90",
             lambda f: ~f["latitude"].between(-90, 90)),
            ("longitude_range", "longitude must be between -180 and 180",
             lambda f: ~f["longitude"].between(-180, 180)),
        ],
    }
    return rules.get(spec.name, [])


def transform_table(spec: TableSpec, raw: pd.DataFrame, timezone: str = "America/Sao_Paulo",
                    reference_keys: dict[str, pd.DataFrame] | None = None,
                    lookup_keys: KeyLookup | None = None) -> TableResult:
    """Clean one table read by ``ingest.read``.

    ``reference_keys`` maps a referenced table to its clean frame from this run;
    ``lookup_keys`` asks the warehouse for keys that are not in this run.
    """
    rejector = _Rejector(raw)
    frame = raw.copy()
    for col in spec.columns:
        frame[col.source] = frame[col.source].str.strip().replace("", pd.NA)

    for col in spec.columns:
        if col.required:
            frame = rejector.reject(frame, frame[col.source].isna(), "MISSING_REQUIRED_FIELD",
                                    f"required:{col.target}", f"{col.source} is empty")

    typed = pd.DataFrame({ROW_NUMBER: frame[ROW_NUMBER]}, index=frame.index)
    for col in spec.columns:
        parsed, bad, expected = _parse_column(col, frame[col.source], timezone)
        detail = f"{col.source} = '" + frame[col.source].astype(str) + f"' is not {expected}"
        keep = ~bad.fillna(False)
        rejector.reject(frame, bad, "DATA_FORMAT_ERROR", f"format:{col.target}", detail)
        frame, typed = frame.loc[keep], typed.loc[keep]
        typed[col.target] = parsed.loc[keep]

    for rule, sentence, violates in _business_rules(spec):
        mask = violates(typed).fillna(False).astype(bool)
        typed = rejector.reject(typed, mask, "BUSINESS_RULE_VIOLATION", rule, sentence)

    if spec.key:
        dup = typed.duplicated(list(spec.key), keep="first")
        if dup.any():
            first_row = typed.groupby(list(spec.key), sort=False)[ROW_NUMBER].transform("first")
            detail = "duplicate of row " + first_row.astype(str) + " (same " + ", ".join(spec.key) + ")"
            typed = rejector.reject(typed, dup, "DUPLICATE", "unique:" + "+".join(spec.key), detail)

    for fk in spec.foreign_keys:
        typed = _check_foreign_key(typed, fk, rejector, reference_keys or {}, lookup_keys)

    clean = typed.drop(columns=[ROW_NUMBER]).reset_index(drop=True)
    result_clean = _finish(spec, clean, reference_keys or {})
    return TableResult(spec, result_clean, rejector.result(), rows_read=len(raw))


def _check_foreign_key(typed: pd.DataFrame, fk: ForeignKey, rejector: _Rejector,
                       reference_keys: dict[str, pd.DataFrame],
                       lookup_keys: KeyLookup | None) -> pd.DataFrame:
    (column,), (ref_column,) = fk.columns, fk.ref_columns  # single-column keys here
    values = typed[column]
    known = pd.Series(False, index=typed.index)
    if fk.table in reference_keys:
        known |= values.isin(reference_keys[fk.table][ref_column])
    if lookup_keys is not None and (~known).any():
        found = lookup_keys(fk, values[~known].drop_duplicates())
        known |= values.isin(found)
    detail = f"{column} = '" + values.astype(str) + f"' is not in {fk.table}"
    return rejector.reject(typed, ~known, "REFERENTIAL_INTEGRITY", f"fk:{column}->{fk.table}", detail)


def _finish(spec: TableSpec, clean: pd.DataFrame, reference: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Table-specific shaping after the checks (enrichment, aggregation)."""
    if spec is GEOLOCATION:
        return aggregate_geolocation(clean)
    if spec is PRODUCTS and "category_translation" in reference:
        translation = reference["category_translation"].set_index("category_name")["category_name_english"]
        clean["category_name_english"] = clean["category_name"].map(translation)
    return clean


def aggregate_geolocation(points: pd.DataFrame) -> pd.DataFrame:
    """Olist lists many points per zip prefix: keep one row per prefix.

    Latitude/longitude are averaged; city and state are the most frequent
    spelling. ``attrs['source_rows']`` keeps the number of accepted points.
    """
    grouped = points.groupby("zip_code_prefix", sort=True)
    result = grouped.agg(latitude=("latitude", "mean"), longitude=("longitude", "mean"),
                         source_points=("latitude", "size")).reset_index()
    for column in ("city", "state"):
        mode = (points.groupby(["zip_code_prefix", column]).size().rename("n").reset_index()
                .sort_values(["zip_code_prefix", "n", column], ascending=[True, False, True])
                .drop_duplicates("zip_code_prefix").set_index("zip_code_prefix")[column])
        result[column] = result["zip_code_prefix"].map(mode)
    result.attrs["source_rows"] = len(points)
    return result


def build_dim_dates(orders: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """A contiguous calendar over the local purchase dates of the orders."""
    if orders.empty:
        return pd.DataFrame(columns=["date_key", "full_date"])
    local = orders["purchased_at"].dt.tz_convert(timezone)
    days = pd.date_range(local.min().date(), local.max().date(), freq="D")
    iso = days.isocalendar()
    return pd.DataFrame({
        "date_key": (days.year * 10000 + days.month * 100 + days.day).astype("int64"),
        "full_date": days.date,
        "year": days.year, "quarter": days.quarter, "month": days.month,
        "month_name": days.month_name(), "day_of_month": days.day,
        "day_of_week": days.dayofweek + 1, "day_name": days.day_name(),
        "week_of_year": iso["week"].to_numpy(), "is_weekend": days.dayofweek >= 5,
    })


def add_purchase_date_key(orders: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """Orders are dated by the shop's local calendar day, as analysts count them."""
    local = orders["purchased_at"].dt.tz_convert(timezone)
    orders["purchase_date_key"] = (local.dt.year * 10000 + local.dt.month * 100
                                   + local.dt.day).astype("int64")
    return orders
