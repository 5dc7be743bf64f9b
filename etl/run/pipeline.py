"""The run: ingest -> transform -> load, with the audit trail around it.

Each stage is a function of (settings, run_id) that reads what the previous
stage left in the staging area (``etl.staging``) and returns a small summary,
so the Airflow DAG can run them as separate tasks and the CLI can run them in
one go (``run_pipeline``). Nothing is written to the warehouse before every
input has been checked, and everything one run loads commits in one transaction.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psycopg2
from psycopg2 import sql

from etl import ingest, progress, staging
from etl.errors import ConfigError, DatabaseError, SourceError
from etl.load import audit
from etl.load import merge as load
from etl.olist import ALL_TABLES, ForeignKey, TableSpec
from etl.publish import aggregates, analytics
from etl.run import events
from etl.settings import Settings
from etl.warehouse import connection as db

log = logging.getLogger(__name__)

SPECS_BY_NAME = {spec.name: spec for spec in ALL_TABLES}


@dataclass
class TableSummary:
    table: str
    source: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    rows_written: int = 0  # inserted or changed in the warehouse by this run


@dataclass
class RunSummary:
    run_id: str
    data_dir: str
    database: str
    seconds: float
    tables: list[TableSummary] = field(default_factory=list)
    quality: str = ""  # the score grid (etl.quality.QualityReport.render)

    @property
    def rows_quarantined(self) -> int:
        return sum(t.rows_quarantined for t in self.tables)

    def to_dict(self) -> dict:
        return asdict(self)

    def render(self) -> str:
        width = max((len(t.table) for t in self.tables), default=10)
        lines = [
            f"run {self.run_id}: {self.data_dir} -> {self.database}",
            f"{'table':<{width}}  {'read':>9}  {'loaded':>9}  {'quarantined':>11}  {'written':>9}",
        ]
        for t in self.tables:
            lines.append(
                f"{t.table:<{width}}  {t.rows_read:>9,}  {t.rows_loaded:>9,}  "
                f"{t.rows_quarantined:>11,}  {t.rows_written:>9,}"
            )
        lines.append(f"{self.rows_quarantined:,} rows quarantined; {self.seconds:.1f} s")
        if not any(t.rows_read for t in self.tables):
            lines.append(
                "nothing new: every input was loaded by an earlier run (files are tracked "
                "by name and sha256; changed or new files are read)"
            )
        if self.quality:
            lines += ["", self.quality]
        return "\n".join(lines)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


# --- ingest ---------------------------------------------------------------------------


@events.recorded("ingest", events.ingested)
def ingest_stage(
    settings: Settings, run_id: str, data_dir: Path | None = None, specs: tuple[TableSpec, ...] = ALL_TABLES
) -> dict:
    """Find and check every input; record what was found for the next stages.

    Olist files not loaded before (by name and sha256) plus every enabled source
    of sources.yml, one file per table in ``sources`` (etl.ingest.prepare_run).
    """
    data_dir = Path(data_dir or settings.data_dir)
    return ingest.prepare_run(settings, run_id, data_dir, specs)  # header checks before any write


def _ingested_sources(settings: Settings, run_id: str) -> tuple[dict, list[ingest.SourceFile]]:
    path = staging.run_dir(settings, run_id) / "ingest.json"
    if not path.exists():
        raise SourceError(f"run {run_id} has no ingest manifest at {path}; run the ingest stage first")
    manifest = staging.read_json(path)
    return manifest, [
        ingest.SourceFile(SPECS_BY_NAME[s["table"]], Path(s["path"])) for s in manifest["sources"]
    ]


# --- transform ------------------------------------------------------------------------


def _warehouse_key_lookup(conn: psycopg2.extensions.connection):
    """Which of some foreign-key values already exist in the warehouse (earlier runs)."""

    def lookup(fk: ForeignKey, values: pd.Series) -> set[str]:
        if values.empty:
            return set()
        (ref_column,) = fk.ref_columns
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT DISTINCT {col} FROM {table} WHERE {col} = ANY(%s)").format(
                    col=sql.Identifier(ref_column), table=sql.Identifier(fk.table)
                ),
                (list(values.astype(str)),),
            )
            return {r[0] for r in cur.fetchall()}

    return lookup


@events.recorded("transform", events.transformed)
def transform_stage(settings: Settings, run_id: str) -> dict:
    """Clean every ingested table into Parquet files, rejected rows and findings beside them.

    Scores, metrics and findings go to quality_scores / quality_metrics /
    quality_issues right away (etl.transform.stage.run_stage), so the validate
    step can judge the run before anything is loaded.
    """
    from etl.transform.stage import run_stage

    manifest, sources = _ingested_sources(settings, run_id)
    out = staging.clean_dir(settings, run_id)
    db.init_schema(settings)
    conn = db.connect(settings.database_url, settings.connect_timeout)
    try:
        metadata = run_stage(settings, run_id, manifest, sources, out, conn, _warehouse_key_lookup(conn))
    finally:
        conn.close()
    staging.write_json(out / "_metadata.json", metadata)
    return metadata


# --- load -----------------------------------------------------------------------------


@events.recorded("load", events.loaded)
def load_stage(settings: Settings, run_id: str) -> list[TableSummary]:
    """Load the run's clean tables and quarantine in one transaction, audited."""
    out = staging.clean_dir(settings, run_id)
    meta_path = out / "_metadata.json"
    if not meta_path.exists():
        raise SourceError(f"run {run_id} has no clean data at {out}; run the transform stage first")
    metadata = staging.read_json(meta_path)
    db.init_schema(settings)
    conn = db.connect(settings.database_url, settings.connect_timeout)
    try:
        audit.open_run(conn, run_id, [audit.AuditEntry(t["table"], t["source"]) for t in metadata["tables"]])
        try:
            summaries = _load_tables(conn, run_id, out, metadata["tables"], settings)
        except (psycopg2.Error, DatabaseError) as exc:
            conn.rollback()
            audit.fail_run(conn, run_id, str(exc).strip())
            raise DatabaseError(
                f"load failed and was rolled back: {str(exc).strip().splitlines()[0]}"
            ) from exc
        except BaseException as exc:
            conn.rollback()
            audit.fail_run(conn, run_id, f"{type(exc).__name__}: {exc}")
            raise
        ingest.commit_state(conn, settings, run_id)  # watermarks move only after the data committed
        return summaries
    finally:
        conn.close()


#: Quarantined rows sent per COPY: they carry their raw records as JSON, and whole
#: tables of them held as CSV text cost ~230 MB in a run with 458k rejected rows.
QUARANTINE_PIECE_ROWS = 50_000


def _load_tables(
    conn, run_id: str, out: Path, tables: list[dict], settings: Settings | None = None
) -> list[TableSummary]:
    """Binary COPY + merge of every table (etl.load.merge), audit and aggregate queue, one transaction."""
    timezone = settings.source_timezone if settings else "UTC"
    method = settings.load_method if settings else "auto"
    summaries = []
    touched: set = set()
    task = progress.current().task("load tables", len(tables), "tables")
    with conn, conn.cursor() as cur:
        for entry in tables:
            table = entry["table"]
            task.description = f"load {table}"
            clean = load.Pieces.parquet(out / f"{table}.parquet")  # read piece by piece: flat memory
            merged = load.load_table(cur, table, clean, timezone=timezone, method=method)
            touched.update(merged.touched_days)
            quarantine_path = out / f"{table}.quarantine.parquet"
            load.clear_quarantine(cur, run_id, table)  # a rerun of this run id replaces, not adds
            if quarantine_path.exists():
                for rejected in load.Pieces.parquet(quarantine_path, QUARANTINE_PIECE_ROWS).read():
                    load.insert_quarantine(
                        cur, run_id, Path(entry["source"]).name, table, rejected.to_pandas()
                    )
            audit.close_table(
                cur,
                run_id,
                table,
                rows_read=entry["rows_read"],
                rows_loaded=entry["rows_loaded"],
                rows_quarantined=entry["rows_quarantined"],
                rows_inserted=merged.rows_inserted,
                rows_updated=merged.rows_updated,
                rows_unchanged=merged.rows_unchanged,
                bytes_sent=merged.bytes,
                seconds=merged.seconds,
                method=merged.method,
            )
            summaries.append(
                TableSummary(
                    table,
                    entry["source"],
                    entry["rows_read"],
                    entry["rows_loaded"],
                    entry["rows_quarantined"],
                    merged.rows_written,
                )
            )
            task.advance(1, rows=entry["rows_loaded"])
        task.description = "load tables"
        aggregates.queue_days(cur, run_id, touched, timezone)
    task.done()
    return summaries


# --- aggregates -----------------------------------------------------------------------


@events.recorded("refresh_aggregates", events.refreshed)
def refresh_aggregates_stage(settings: Settings, run_id: str | None = None) -> dict:
    """Recompute hourly_sales / daily_customer_metrics for the days loads changed.

    The load stage queues the local days it changed (in its own transaction);
    this consumes the whole queue, so a refresh that failed earlier is caught up
    by the next one. The dashboards' materialized views (``etl.publish.analytics``) are
    refreshed after them. The Airflow DAG's ``refresh_aggregates`` task calls this.
    """
    conn = db.connect(settings.database_url, settings.connect_timeout)
    try:
        result = aggregates.refresh_pending(conn, settings.source_timezone)
    except psycopg2.Error as exc:
        raise DatabaseError(
            f"run {run_id} loaded, but refreshing hourly_sales/daily_customer_metrics "
            f"failed: {' '.join(str(exc).split())[:300]}; the touched days stay queued "
            "and the next run catches up"
        ) from exc
    finally:
        conn.close()
    try:
        views = analytics.refresh(settings)
    except psycopg2.Error as exc:
        # The load has committed; say so, so nobody reloads to fix a view.
        raise DatabaseError(
            f"run {run_id} loaded, but refreshing the analytics views failed: "
            f"{' '.join(str(exc).split())[:300]} (rerun `etl db refresh`)"
        ) from exc
    log.info(
        "run %s: aggregates refreshed over %d range(s), %d views", run_id, len(result.ranges), len(views)
    )
    return {
        "run_id": run_id,
        "mode": result.mode,
        "ranges": len(result.ranges),
        "buckets": result.buckets,
        "views_refreshed": len(views),
    }


# --- all stages -----------------------------------------------------------------------


def run_pipeline(
    settings: Settings,
    data_dir: Path | None = None,
    run_id: str | None = None,
    specs: tuple[TableSpec, ...] = ALL_TABLES,
) -> RunSummary:
    started = time.monotonic()
    run_id = run_id or new_run_id()
    manifest = ingest_stage(settings, run_id, data_dir, specs)
    metadata = transform_stage(settings, run_id)
    if settings.dq_enforce:
        from etl import quality

        quality.gate(quality.QualityReport.from_dict(metadata["score"]), settings.quality_targets)
    tables = load_stage(settings, run_id)
    refresh_aggregates_stage(settings, run_id)
    return RunSummary(
        run_id,
        manifest["data_dir"],
        db.describe_url(settings.database_url),
        time.monotonic() - started,
        tables,
        quality=metadata.get("score_text", ""),
    )


# --- orchestration helpers (the Airflow DAG fans out over sources, then refreshes) ---------


def list_sources(settings: Settings) -> list[dict]:
    """The sources a run reads, one small JSON-able dict each (the DAG maps ingest over them).

    The Olist files folder, then every enabled source of the sources file
    (``etl.ingest.list_sources``). ``ingest_source`` dispatches on ``kind``.
    """
    return [{"name": "olist", "kind": "olist_files", "data_dir": str(settings.data_dir)}] + [
        {"name": name, "kind": "configured"} for name in ingest.list_sources(settings)
    ]


def ingest_source(
    settings: Settings, run_id: str, source: dict, interval: tuple[str, str] | None = None
) -> dict:
    """Ingest one source for a run; returns a small summary (an XCom).

    A configured API/database/file source is read, archived and staged now
    (a failure fails this source's task only). The Olist folder is only checked
    here (every file present, every header complete); its new files are picked
    up, archived and combined with the staged sources by ``ingest_stage``, which
    the DAG runs at the start of its transform task. ``interval`` is the run's
    data interval: incremental sources read from their watermark, which the
    load moves only after it commits, so a rerun of a day re-reads rather than skips.
    """
    if source.get("kind") == "olist_files":
        located = ingest.locate_all(Path(source["data_dir"]))
        return {"source": source["name"], "run_id": run_id, "files": len(located)}
    if source.get("kind") != "configured":
        raise ConfigError(
            f"source {source.get('name')!r}: unknown kind {source.get('kind')!r} "
            "(known: olist_files, configured)"
        )
    summary = ingest.ingest_source(settings, run_id, source["name"], raise_on_failure=True)
    return {
        "source": source["name"],
        "run_id": run_id,
        "status": summary.get("status"),
        "records_new": summary.get("records_new", 0),
    }
