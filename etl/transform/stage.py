"""The transform stage of a run: every table in bounded-memory chunks, to files.

For each source table, chunk by chunk (``Settings.chunk_rows``):

    clean/{run}/{table}.parquet             typed rows to load (+ .csv when asked)
    clean/{run}/{table}.quarantine.parquet  rows that broke a hard rule, as read
    clean/{run}/{table}.findings.parquet    every failed check of every row
    clean/{run}/_metadata.json              run id, sources + checksums, counts, schema, scores

What crosses chunks is small: 64-bit key hashes (uniqueness, foreign keys),
and what a table's role hands on (``etl.transform.roles``: per-order totals,
reference data). Orders are enriched in a second pass once items and
payments are known.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from psycopg2 import sql

from etl import lookups as lk
from etl import progress, quality
from etl.olist import DERIVED_TABLES, REFERENCED, SourceFile, TableSpec
from etl.quality import QualityReport
from etl.settings import Settings
from etl.staging import file_sha256
from etl.transform import checks as ck
from etl.transform.columns import KeySet, parse_hex_ids
from etl.transform.reader import read_chunks
from etl.transform.roles import ROLES, RunState, TableOutcome, TableRun, prepare_clean
from etl.transform.sink import Sink, empty_frame
from etl.transform.table import (
    FINDING_COLUMNS,
    QUARANTINE_COLUMNS,
    KeyLookup,
    TableState,
    finish_clean,
    transform_table,
)

log = logging.getLogger(__name__)

#: Tables the run derives (the calendar) are loaded but not scored: no check reads them.
_DERIVED = {t.name for t in DERIVED_TABLES}


def transform_sources(
    settings: Settings,
    run_id: str,
    sources: list[SourceFile],
    out: Path,
    lookup_keys: KeyLookup | None = None,
    stored_reference: Callable[[TableSpec], pd.DataFrame] | None = None,
    stored_totals: Callable[[list[str], list[str]], tuple[pd.DataFrame, pd.DataFrame]] | None = None,
) -> tuple[list[TableOutcome], QualityReport, dict]:
    """Transform every source into ``out``; returns per-table counts, the scores and schemas.

    ``stored_reference`` supplies reference data loaded by earlier runs (category
    translations, geolocation places): a daily run reads only new files, and its
    products and customers must still be enriched and checked against them.
    """
    out.mkdir(parents=True, exist_ok=True)
    lookups = lk.load_lookups(settings.lookup_dir)
    config = ck.RuleConfig.from_settings(settings, lookups)
    run = RunState(stored_reference=stored_reference, stored_totals=stored_totals)
    outcomes: list[TableOutcome] = []
    schemas: dict[str, dict] = {}
    for source in sources:
        outcome = _transform_one(settings, source, out, config, run, lookup_keys)
        outcomes.append(outcome)
        schemas[outcome.table] = {
            f.name: str(f.type) for f in pq.read_schema(out / f"{outcome.table}.parquet")
        }
        log.info(
            "%s: %d read, %d clean, %d quarantined",
            source.name,
            outcome.rows_read,
            outcome.rows_loaded,
            outcome.rows_quarantined,
        )
    for source, outcome in list(zip(sources, outcomes)):
        outcomes += ROLES[source.spec.role].complete(settings, out, run, outcome, source.spec, schemas)
    report = QualityReport.from_tallies(
        run_id, {o.table: o.tally for o in outcomes if o.table not in _DERIVED}, settings.quality_targets
    )
    return outcomes, report, schemas


def _transform_one(
    settings: Settings,
    source: SourceFile,
    out: Path,
    config: ck.RuleConfig,
    run: RunState,
    lookup_keys: KeyLookup | None,
) -> TableOutcome:
    spec = source.spec
    name = spec.name
    role = ROLES[spec.role]
    table = TableRun(settings, spec, out, run)
    outcome = TableOutcome(name, source.name)
    state = TableState()
    keys = KeySet()
    keep_whole = spec.aggregated or bool(spec.reference_columns)
    # An aggregated table's clean file is written once, from all its rows.
    clean_sink = None if spec.aggregated else Sink(out / f"{name}.parquet", settings.clean_csv)
    q_sink = Sink(out / f"{name}.quarantine.parquet")
    f_sink = Sink(out / f"{name}.findings.parquet")
    role.start(table)
    task = progress.current().task(f"transform {name}", source.path.stat().st_size, "bytes")
    for chunk in read_chunks(source.path, spec, settings.chunk_rows):
        result = transform_table(
            spec,
            chunk,
            settings.source_timezone,
            run.references,
            lookup_keys,
            config,
            state,
            finish=not spec.aggregated,
        )
        clean = result.clean
        outcome.rows_read += result.rows_read
        task.set(chunk.attrs.get("bytes_read", task.completed), rows=outcome.rows_read)
        outcome.rows_loaded += result.rows_clean
        outcome.rows_quarantined += len(result.quarantined)
        outcome.tally.add(result.tally)
        prepare_clean(spec, clean, settings.source_timezone)
        role.chunk(table, result)
        if name in REFERENCED:
            keys.add(parse_hex_ids(clean[REFERENCED[name]]).hashes)
        if keep_whole:
            table.kept.append(clean)
        if clean_sink is not None:
            clean_sink.write(clean)
        if len(result.quarantined):
            q_sink.write(result.quarantined)
        if len(result.findings):
            f_sink.write(result.findings)
    task.done()
    if name in REFERENCED:
        run.references[name] = keys
    role.end(table)
    if spec.aggregated:
        clean_sink = Sink(out / f"{name}.parquet", settings.clean_csv)
        clean_sink.write(finish_clean(spec, pd.concat(table.kept, ignore_index=True), run.references, config))
    clean_sink.close()
    q_sink.close(empty_frame(QUARANTINE_COLUMNS))
    f_sink.close(empty_frame(FINDING_COLUMNS))
    return outcome


def _stored_reference(conn, spec: TableSpec) -> pd.DataFrame:
    """A reference table as earlier runs loaded it (its ``reference_columns``; read-only,
    the transaction is ended)."""
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM {}").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in spec.reference_columns),
                sql.Identifier(spec.name),
            )
        )
        columns = [d[0] for d in cur.description]
        frame = pd.DataFrame(cur.fetchall(), columns=columns, dtype="string")
    conn.rollback()
    return frame


def _stored_totals(
    conn, item_orders: list[str], payment_orders: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Item and payment totals per order as loaded by earlier runs (same shape as shape.*_totals)."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT order_id, count(*), sum(price_cents), sum(freight_cents)
                         FROM fact_order_items WHERE order_id = ANY(%s) GROUP BY order_id""",
            (item_orders,),
        )
        items = pd.DataFrame(
            cur.fetchall(), columns=["order_id", "item_count", "items_gross_cents", "freight_total_cents"]
        )
        cur.execute(
            """SELECT order_id, sum(payment_value_cents) FROM fact_payments
                        WHERE order_id = ANY(%s) GROUP BY order_id""",
            (payment_orders,),
        )
        payments = pd.DataFrame(cur.fetchall(), columns=["order_id", "payment_total_cents"])
    conn.rollback()
    return (
        items.astype(
            {"item_count": "int64", "items_gross_cents": "int64", "freight_total_cents": "int64"}
        ).set_index("order_id"),
        payments.astype({"payment_total_cents": "int64"}).set_index("order_id"),
    )


def run_stage(
    settings: Settings,
    run_id: str,
    manifest: dict,
    sources: list[SourceFile],
    out: Path,
    conn,
    lookup_keys: KeyLookup | None,
) -> dict:
    """Transform, store the scores and findings, and describe the batch in _metadata.json."""
    out.mkdir(parents=True, exist_ok=True)
    outcomes, report, schemas = transform_sources(
        settings,
        run_id,
        sources,
        out,
        lookup_keys,
        stored_reference=lambda spec: _stored_reference(conn, spec),
        stored_totals=lambda item_ids, payment_ids: _stored_totals(conn, item_ids, payment_ids),
    )
    quality.store(conn, report, [(o.table, o.source, out / f"{o.table}.findings.parquet") for o in outcomes])
    lookup_files = sorted(Path(settings.lookup_dir).glob("*.json"))
    return {
        "run_id": run_id,
        "sources": manifest["sources"],
        "tables": [
            {
                "table": o.table,
                "source": o.source,
                "rows_read": o.rows_read,
                "rows_loaded": o.rows_loaded,
                "rows_quarantined": o.rows_quarantined,
            }
            for o in outcomes
        ],
        "schema": schemas,
        "score": report.to_dict(),
        "score_text": report.render(),
        "lookups": [{"path": str(p), "sha256": file_sha256(p)} for p in lookup_files],
        "rules": {
            "hard_overrides": sorted(settings.dq_hard_rules),
            "soft_overrides": sorted(settings.dq_soft_rules),
        },
        "formats": ["parquet"] + (["csv"] if settings.clean_csv else []),
    }
