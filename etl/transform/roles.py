"""What a table hands the tables after it within a run, by its ``TableSpec.role``.

A spec names its role (``etl.olist.Role``); ``ROLES`` maps each name to the hooks
the transform stage calls at the table's start, per chunk, at its end and once
every table is read -- the way dlt's ``rest_api/config_setup.py`` maps kinds to
classes. Reference data (the category translation, geolocation places) and the
per-order totals cross tables here; the orders are enriched with those totals in
a second pass and span the run's calendar (``dim_dates``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl.olist import DATES, TableSpec
from etl.quality import Tally
from etl.settings import Settings
from etl.transform import checks as ck
from etl.transform import shape
from etl.transform.sink import Sink, empty_frame
from etl.transform.table import TableResult


@dataclass
class TableOutcome:
    table: str
    source: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    tally: Tally = field(default_factory=Tally)


@dataclass
class RunState:
    """What one table leaves for the tables after it."""

    references: dict = field(default_factory=dict)
    item_totals: list = field(default_factory=list)
    payment_totals: list = field(default_factory=list)
    purchase_range: list = field(default_factory=list)
    #: Reads a reference table already in the warehouse (None: this run's rows only).
    stored_reference: Callable[[TableSpec], pd.DataFrame] | None = None
    #: Per-order item and payment totals already in the warehouse, for given order ids.
    stored_totals: Callable[[list[str], list[str]], tuple[pd.DataFrame, pd.DataFrame]] | None = None


@dataclass
class TableRun:
    """One table being transformed: where it writes, and what it keeps for the run."""

    settings: Settings
    spec: TableSpec
    out: Path
    run: RunState
    kept: list[pd.DataFrame] = field(default_factory=list)  # whole-table shaping, reference data
    rows_sink: Sink | None = None  # orders: source row and consistency of each clean row


def _orders_start(t: TableRun) -> None:
    t.rows_sink = Sink(t.out / f"{t.spec.name}.rows.parquet")


def _orders_chunk(t: TableRun, result: TableResult) -> None:
    """Date the orders; keep their time span (the calendar) and consistency (enrichment)."""
    clean = result.clean
    if len(clean):
        t.run.purchase_range += [clean["purchased_at"].min(), clean["purchased_at"].max()]
    cons_app, cons_fail = result.clean_masks.get("consistency", (np.zeros(len(clean), bool),) * 2)
    t.rows_sink.write(
        pd.DataFrame({"row_number": result.row_numbers, "cons_app": cons_app, "cons_fail": cons_fail})
    )


def _orders_end(t: TableRun) -> None:
    t.rows_sink.close()


def _orders_complete(
    settings: Settings, out: Path, run: RunState, outcome: TableOutcome, spec: TableSpec, schemas: dict
) -> list[TableOutcome]:
    """Once every table is read: enrich the orders with their totals, and derive the
    calendar (``DATES``) over their purchase dates."""
    _enrich_orders(settings, out, run, outcome, spec)
    schemas[spec.name] = {f.name: str(f.type) for f in pq.read_schema(out / f"{spec.name}.parquet")}
    lo = min(run.purchase_range) if run.purchase_range else None
    hi = max(run.purchase_range) if run.purchase_range else None
    span = pd.DataFrame({"purchased_at": [lo, hi]}).dropna()
    dates = shape.build_dim_dates(span, settings.source_timezone)
    dates.to_parquet(out / f"{DATES.name}.parquet", index=False)
    if settings.clean_csv:
        dates.to_csv(out / f"{DATES.name}.csv", index=False)
    schemas[DATES.name] = {c: str(t) for c, t in dates.dtypes.items()}
    return [TableOutcome(DATES.name, f"derived:{spec.name}", len(dates), len(dates), 0)]


def _item_totals_chunk(t: TableRun, result: TableResult) -> None:
    if len(result.clean):
        t.run.item_totals.append(shape.item_totals(result.clean))


def _payment_totals_chunk(t: TableRun, result: TableResult) -> None:
    if len(result.clean):
        t.run.payment_totals.append(shape.payment_totals(result.clean))


def _translation_end(t: TableRun) -> None:
    translation = pd.concat(t.kept, ignore_index=True)
    if t.run.stored_reference is not None:  # this run's rows win over stored ones
        translation = pd.concat(
            [translation, t.run.stored_reference(t.spec)], ignore_index=True
        ).drop_duplicates("category_name")
    t.run.references[ck.TRANSLATION] = translation
    t.run.references[ck.TRANSLATED_NAMES] = pd.Index(translation["category_name"])


def _places_end(t: TableRun) -> None:
    points = pd.concat(t.kept, ignore_index=True)
    places = points[list(t.spec.reference_columns)]
    if t.run.stored_reference is not None:
        places = pd.concat([places, t.run.stored_reference(t.spec)], ignore_index=True)
    t.run.references[ck.PLACES] = shape.geolocation_places(places)


def _nothing(*_args) -> None:
    return None


def _no_tables(*_args) -> list[TableOutcome]:
    return []


@dataclass(frozen=True)
class _Role:
    """What a table with this ``TableSpec.role`` does in a run: at its start, per chunk,
    at its end (before the tables after it, which may read what it left), and once
    every table is read (``complete``: later passes, tables it derives)."""

    start: Callable[[TableRun], None] = _nothing
    chunk: Callable[[TableRun, TableResult], None] = _nothing
    end: Callable[[TableRun], None] = _nothing
    #: Columns the load needs beyond the checked ones, added to the clean rows in place.
    prepare: Callable[[pd.DataFrame, str], object] = _nothing
    complete: Callable[..., list[TableOutcome]] = _no_tables


#: The roles a spec names in ``TableSpec.role`` (None: no part beyond its own files).
ROLES: dict[str | None, _Role] = {
    None: _Role(),
    "translation": _Role(end=_translation_end),
    "places": _Role(end=_places_end),
    "orders": _Role(
        start=_orders_start,
        chunk=_orders_chunk,
        end=_orders_end,
        prepare=shape.add_purchase_date_key,
        complete=_orders_complete,
    ),
    "item_totals": _Role(chunk=_item_totals_chunk),
    "payment_totals": _Role(chunk=_payment_totals_chunk),
}


def prepare_clean(spec: TableSpec, clean: pd.DataFrame, timezone: str) -> None:
    """Add what the load needs beyond the checked columns (orders: their local date key);
    the stage and the quarantine retry both call this."""
    ROLES[spec.role].prepare(clean, timezone)


def _absent(ids: pa.ChunkedArray, index: pd.Index) -> list[str]:
    """The ids not in ``index``, by arrow's hash set (pandas' ``isin`` took ~3.9 s per
    million order ids here, half of a 1M-order run's transform)."""
    known = pa.array(index.to_numpy(dtype=object), type=pa.large_string())
    return ids.filter(pc.invert(pc.is_in(ids, value_set=known))).to_pylist()


def _enrich_orders(
    settings: Settings, out: Path, run: RunState, outcome: TableOutcome, spec: TableSpec
) -> None:
    """Second pass over the clean orders: per-order totals and the payments = items check."""
    items = (
        pd.concat(run.item_totals).groupby(level=0).sum()
        if run.item_totals
        else pd.DataFrame(columns=["item_count", "items_gross_cents", "freight_total_cents"])
    )
    payments = (
        pd.concat(run.payment_totals).groupby(level=0).sum()
        if run.payment_totals
        else pd.DataFrame(columns=["payment_total_cents"])
    )
    path = out / f"{spec.name}.parquet"
    rows_path = out / f"{spec.name}.rows.parquet"
    findings_path = out / f"{spec.name}.findings.parquet"
    extra = out / f"{spec.name}.findings.extra.parquet"
    if run.stored_totals is not None:
        # Orders re-read without their items or payments (a daily run reads only
        # changed files) keep the totals the warehouse already has for them.
        order_ids = pq.read_table(path, columns=["order_id"]).column(0).cast(pa.large_string())
        stored_items, stored_payments = run.stored_totals(
            _absent(order_ids, items.index), _absent(order_ids, payments.index)
        )
        if len(stored_items):
            items = pd.concat([items, stored_items])
        if len(stored_payments):
            payments = pd.concat([payments, stored_payments])
    rows = (
        pq.read_table(rows_path).to_pandas()
        if rows_path.exists()
        else pd.DataFrame(columns=["row_number", "cons_app", "cons_fail"])
    )
    tmp = path.with_suffix(".enriched.parquet")
    sink = Sink(tmp, settings.clean_csv)
    findings = Sink(extra)
    offset = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=settings.chunk_rows):
        orders = batch.to_pandas()
        enriched, applicable, mismatch = shape.enrich_orders(
            orders, items, payments, settings.payment_tolerance_cents
        )
        part = rows.iloc[offset : offset + len(orders)]
        offset += len(orders)
        old_app, old_fail = part["cons_app"].to_numpy(bool), part["cons_fail"].to_numpy(bool)
        outcome.tally.checked["consistency"] += int((applicable & ~old_app).sum())
        outcome.tally.failed["consistency"] += int((mismatch & ~old_fail).sum())
        if mismatch.any():
            flags = enriched["dq_flags"].astype("string")
            rule = ck.PAYMENTS_MATCH_ITEMS.name
            enriched["dq_flags"] = flags.where(~mismatch, (flags.fillna("") + "," + rule).str.lstrip(","))
            sub = enriched.loc[mismatch]
            findings.write(
                pd.DataFrame(
                    {
                        "row_number": part["row_number"].to_numpy()[mismatch],
                        "rule": rule,
                        "dimension": "consistency",
                        "category": ck.QUALITY,
                        "hard": False,
                        "detail": (
                            "payments total "
                            + (sub["payment_total_cents"] / 100).map("{:.2f}".format)
                            + " differs from items + freight "
                            + ((sub["items_gross_cents"] + sub["freight_total_cents"]) / 100).map(
                                "{:.2f}".format
                            )
                        ).to_numpy(),
                    }
                )
            )
        sink.write(enriched)
    sink.close(empty_frame(list(pq.read_schema(path).names)))
    findings.close()
    tmp.replace(path)
    if settings.clean_csv and tmp.with_suffix(".csv").exists():
        tmp.with_suffix(".csv").replace(path.with_suffix(".csv"))
    if extra.exists() and pq.read_metadata(extra).num_rows:
        base = pq.read_table(findings_path)
        merged = pa.concat_tables([base, pq.read_table(extra).cast(base.schema)])
        pq.write_table(merged, findings_path)
    extra.unlink(missing_ok=True)
    rows_path.unlink(missing_ok=True)
