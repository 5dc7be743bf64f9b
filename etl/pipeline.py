"""The run: ingest -> transform -> load, with the audit trail around it.

``run_pipeline`` is what ``etl run`` and the Airflow DAG call. It checks all
inputs before writing anything, loads every table in one transaction, and
returns a ``RunSummary`` that the CLI prints and the DAG passes on as XCom.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import psycopg2
from psycopg2 import sql

from etl import audit, db, ingest, load, transform
from etl.errors import DatabaseError
from etl.olist import ALL_TABLES, ForeignKey, TableSpec
from etl.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class TableSummary:
    table: str
    source: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    rows_written: int       # inserted or changed in the warehouse by this run


@dataclass
class RunSummary:
    run_id: str
    data_dir: str
    database: str
    seconds: float
    tables: list[TableSummary] = field(default_factory=list)

    @property
    def rows_quarantined(self) -> int:
        return sum(t.rows_quarantined for t in self.tables)

    def to_dict(self) -> dict:
        return asdict(self)

    def render(self) -> str:
        width = max(len(t.table) for t in self.tables) if self.tables else 10
        lines = [f"run {self.run_id}: {self.data_dir} -> {self.database}",
                 f"{'table':<{width}}  {'read':>9}  {'loaded':>9}  {'quarantined':>11}  {'written':>9}"]
        for t in self.tables:
            lines.append(f"{t.table:<{width}}  {t.rows_read:>9,}  {t.rows_loaded:>9,}  "
                         f"{t.rows_quarantined:>11,}  {t.rows_written:>9,}")
        lines.append(f"{self.rows_quarantined:,} rows quarantined; {self.seconds:.1f} s")
        return "\n".join(lines)


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def _warehouse_key_lookup(conn: psycopg2.extensions.connection):
    """Which of some foreign-key values already exist in the warehouse (earlier runs)."""
    def lookup(fk: ForeignKey, values: pd.Series) -> set[str]:
        if values.empty:
            return set()
        (ref_column,) = fk.ref_columns
        with conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT DISTINCT {col} FROM {table} WHERE {col} = ANY(%s)").format(
                col=sql.Identifier(ref_column), table=sql.Identifier(fk.table)),
                (list(values.astype(str)),))
            return {r[0] for r in cur.fetchall()}
    return lookup


def transform_all(sources: list[ingest.SourceFile], settings: Settings,
                  conn: psycopg2.extensions.connection) -> dict[str, transform.TableResult]:
    results: dict[str, transform.TableResult] = {}
    clean_by_table: dict[str, pd.DataFrame] = {}
    lookup = _warehouse_key_lookup(conn)
    for source in sources:
        raw = ingest.read(source)
        result = transform.transform_table(source.spec, raw, settings.source_timezone,
                                           reference_keys=clean_by_table, lookup_keys=lookup)
        results[source.spec.name] = result
        clean_by_table[source.spec.name] = result.clean
        log.info("%s: %d read, %d clean, %d quarantined", source.name, result.rows_read,
                 result.rows_clean, len(result.quarantined))
    orders = results["fact_orders"].clean
    transform.add_purchase_date_key(orders, settings.source_timezone)
    return results


def run_pipeline(settings: Settings, data_dir: Path | None = None, run_id: str | None = None,
                 specs: tuple[TableSpec, ...] = ALL_TABLES) -> RunSummary:
    started = time.monotonic()
    run_id = run_id or new_run_id()
    data_dir = Path(data_dir or settings.data_dir)
    sources = ingest.locate_all(data_dir, specs)      # fails before any write

    db.init_schema(settings)
    conn = db.connect(settings.database_url, settings.connect_timeout)
    try:
        results = transform_all(sources, settings, conn)
        conn.rollback()  # end the read-only transaction of the key lookups
        entries = [audit.AuditEntry(s.spec.name, str(s.path)) for s in sources]
        entries.append(audit.AuditEntry("dim_dates", "derived:fact_orders"))
        audit.open_run(conn, run_id, entries)
        try:
            tables = _load_all(conn, run_id, sources, results, settings)
        except (psycopg2.Error, DatabaseError) as exc:
            conn.rollback()
            audit.fail_run(conn, run_id, str(exc).strip())
            raise DatabaseError(f"load failed and was rolled back: {str(exc).strip().splitlines()[0]}") from exc
        except BaseException as exc:
            conn.rollback()
            audit.fail_run(conn, run_id, f"{type(exc).__name__}: {exc}")
            raise
    finally:
        conn.close()
    return RunSummary(run_id, str(data_dir), db.describe_url(settings.database_url),
                      time.monotonic() - started, tables)


def _load_all(conn, run_id: str, sources: list[ingest.SourceFile],
              results: dict[str, transform.TableResult], settings: Settings) -> list[TableSummary]:
    tables: list[TableSummary] = []
    with conn, conn.cursor() as cur:
        for source in sources:
            result = results[source.spec.name]
            merged = load.merge(cur, source.spec.name, result.clean)
            load.insert_quarantine(cur, run_id, source.name, source.spec.name, result.quarantined)
            audit.close_table(cur, run_id, source.spec.name, rows_read=result.rows_read,
                              rows_loaded=result.rows_clean,
                              rows_quarantined=len(result.quarantined))
            tables.append(TableSummary(source.spec.name, source.name, result.rows_read,
                                       result.rows_clean, len(result.quarantined), merged.rows_written))
        dates = transform.build_dim_dates(results["fact_orders"].clean, settings.source_timezone)
        merged = load.merge(cur, "dim_dates", dates)
        audit.close_table(cur, run_id, "dim_dates", rows_read=len(dates), rows_loaded=len(dates),
                          rows_quarantined=0)
        tables.append(TableSummary("dim_dates", "derived:fact_orders", len(dates), len(dates), 0,
                                   merged.rows_written))
    return tables
