"""The stage functions of a run: ingest -> transform -> quality gate -> load -> publish.

Each is a function of (settings, run_id) that reads what the previous stage
left in the staging area (``etl.staging``) and returns a small summary, so the
Airflow DAG runs them as separate tasks and the CLI in one process — both in
the order ``etl.run.stages.STAGES`` declares. Nothing is written to the
warehouse before every input has been checked, and everything one run loads
commits in one transaction. No stage migrates the schema: each checks its
version (``etl.warehouse.schema.require_current``) and stops when it is behind.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg2

from etl import progress, quality, staging
from etl.errors import DatabaseError, SourceError
from etl.ingest import manifest as ingest_manifest
from etl.ingest import runner as ingest
from etl.load import audit, merge
from etl.olist import ALL_TABLES, SourceFile
from etl.publish import aggregates
from etl.run import events
from etl.settings import Settings
from etl.transform.stage import run_stage
from etl.warehouse import connection as db
from etl.warehouse import keys, schema

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

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StageTiming:
    """One stage of ``etl run``: wall seconds, the run's source rows per second of it, peak RSS."""

    stage: str
    seconds: float
    peak_rss_mb: float  # the process's peak so far (it never goes down)
    rows_per_second: float = 0.0

    def rate_text(self) -> str:
        """Rows/s, or '-' for a stage too short for a rate to mean anything."""
        return f"{self.rows_per_second:,.0f}" if self.seconds >= 0.1 else "-"

    def with_rows(self, rows_read: int) -> StageTiming:
        rate = rows_read / self.seconds if self.seconds > 0 else 0.0
        return StageTiming(self.stage, self.seconds, self.peak_rss_mb, rate)


@dataclass
class RunSummary:
    run_id: str
    data_dir: str
    database: str
    seconds: float
    tables: list[TableSummary] = field(default_factory=list)
    quality: str = ""  # the score grid (etl.quality.QualityReport.render)
    stages: list[StageTiming] = field(default_factory=list)  # etl run's stages, in order

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
        if self.stages:
            lines += ["", f"{'stage':<18}  {'seconds':>8}  {'source rows/s':>13}  {'peak RSS':>9}"]
            lines += [
                f"{t.stage:<18}  {t.seconds:>8.1f}  {t.rate_text():>13}  {t.peak_rss_mb:>6,.0f} MB"
                for t in self.stages
            ]
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


def _connect(settings: Settings) -> psycopg2.extensions.connection:
    """The warehouse, checked to be at this code's schema version."""
    conn = db.connect(settings.database_url, settings.connect_timeout)
    try:
        schema.require_current(conn)
    except BaseException:
        conn.close()
        raise
    return conn


# --- ingest ---------------------------------------------------------------------------


def ingest_stage(
    settings: Settings, run_id: str, data_dir: Path | None = None, resources: ingest.Resources | None = None
) -> dict:
    """Every source of the run, one after another (the DAG maps one task per source), then the manifest.

    ``data_dir`` overrides ``settings.data_dir`` for the Olist folder.
    """
    if data_dir is not None:
        settings = settings.with_overrides(data_dir=Path(data_dir))
    sources = ingest.sources_for_run(settings)
    for source in sources:
        ingest.ingest_one(settings, run_id, source, resources)
    return ingest_manifest.assemble(settings, run_id, sources)


def read_manifest(settings: Settings, run_id: str) -> dict:
    """The run's ``ingest.json`` (``etl.ingest.manifest``), or a one-line error."""
    path = staging.run_dir(settings, run_id) / "ingest.json"
    if not path.exists():
        raise SourceError(f"run {run_id} has no ingest manifest at {path}; run the ingest stage first")
    return staging.read_json(path)


def _ingested_sources(settings: Settings, run_id: str) -> tuple[dict, list[SourceFile]]:
    manifest = read_manifest(settings, run_id)
    return manifest, [SourceFile(SPECS_BY_NAME[s["table"]], Path(s["path"])) for s in manifest["sources"]]


# --- transform ------------------------------------------------------------------------


@events.recorded("transform", events.transformed)
def transform_stage(settings: Settings, run_id: str) -> dict:
    """Clean every ingested table into Parquet files, rejected rows and findings beside them.

    Scores, metrics and findings go to quality_scores / quality_metrics /
    quality_issues right away (etl.transform.stage.run_stage), so the validate
    step can judge the run before anything is loaded.
    """
    manifest, sources = _ingested_sources(settings, run_id)
    out = staging.clean_dir(settings, run_id)
    conn = _connect(settings)
    try:
        metadata = run_stage(settings, run_id, manifest, sources, out, conn, keys.foreign_key_lookup(conn))
    finally:
        conn.close()
    staging.write_json(out / "_metadata.json", metadata)
    return metadata


def _metadata(settings: Settings, run_id: str) -> dict:
    out = staging.clean_dir(settings, run_id)
    meta_path = out / "_metadata.json"
    if not meta_path.exists():
        raise SourceError(f"run {run_id} has no clean data at {out}; run the transform stage first")
    return staging.read_json(meta_path)


def score_text(settings: Settings, run_id: str) -> str:
    """The run's score grid as the transform rendered it (for the run summary)."""
    return _metadata(settings, run_id).get("score_text", "")


def gate_targets(settings: Settings) -> dict[str, float]:
    """The targets that stop a run: ``settings.dq_gate`` of ``settings.quality_targets``."""
    return {k: v for k, v in settings.quality_targets.items() if k in settings.dq_gate}


@events.recorded("quality_gate", events.gated)
def quality_gate_stage(settings: Settings, run_id: str) -> dict:
    """Stop the run before loading when the run's quality misses a gate target.

    The gate follows seed 001 by default: the run as a whole must score overall
    >= 80 with at most 20 % nulls and 5 % duplicates (``ETL_DQ_GATE`` adds
    per-dimension targets, or per table with ``all``). Below that the run goes
    on: good rows load, bad ones are quarantined. When the gate does stop a run,
    its scores (written by the transform), its rejected rows and its audit rows
    are still stored -- the run marked failed with the gate's reason -- so the
    quality page, the quarantine and the run history show why.
    ``dq_enforce`` off (``etl run --no-quality-gate``) reports and passes.
    """
    report = quality.QualityReport.from_dict(_metadata(settings, run_id)["score"])
    targets = gate_targets(settings)
    every_table = settings.dq_gate >= set(settings.quality_targets)
    judged = quality.QualityReport(
        report.run_id,
        [s for s in report.scores if every_table or s.table == quality.OVERALL_TABLE],
        [m for m in report.metrics if every_table or m.table == quality.OVERALL_TABLE],
    )
    violations = quality.threshold_violations(judged, targets)
    if violations and settings.dq_enforce:
        error = f"run {run_id} failed its data quality targets: " + "; ".join(violations)
        store_rejected(settings, run_id, error)
        raise quality.QualityGateError(error)
    if violations:
        log.warning("run %s misses quality targets, loading anyway: %s", run_id, "; ".join(violations))
    return {"run_id": run_id, "enforced": settings.dq_enforce, "violations": violations}


def store_rejected(settings: Settings, run_id: str, error: str) -> None:
    """A run the gate stopped: its quarantined rows and its audit rows (failed), no data."""
    out = staging.clean_dir(settings, run_id)
    tables = _metadata(settings, run_id)["tables"]
    conn = _connect(settings)
    try:
        audit.open_run(conn, run_id, [audit.AuditEntry(t["table"], t["source"]) for t in tables])
        with conn, conn.cursor() as cur:
            for entry in tables:
                table = entry["table"]
                merge.clear_quarantine(cur, run_id, table)
                path = out / f"{table}.quarantine.parquet"
                if path.exists():
                    for rejected in merge.Pieces.parquet(path, QUARANTINE_PIECE_ROWS).read():
                        merge.insert_quarantine(cur, run_id, Path(entry["source"]).name, table, rejected)
                audit.fail_table(
                    cur,
                    run_id,
                    table,
                    rows_read=entry["rows_read"],
                    rows_quarantined=entry["rows_quarantined"],
                    error=error,
                )
    finally:
        conn.close()


# --- load -----------------------------------------------------------------------------


@events.recorded("load", events.loaded)
def load_stage(settings: Settings, run_id: str) -> list[TableSummary]:
    """Load the run's clean tables and quarantine in one transaction, audited."""
    out = staging.clean_dir(settings, run_id)
    metadata = _metadata(settings, run_id)
    conn = _connect(settings)
    try:
        audit.fail_abandoned(conn, run_id)  # under the run lock: any other open run is a dead one
        audit.open_run(conn, run_id, [audit.AuditEntry(t["table"], t["source"]) for t in metadata["tables"]])
        try:
            summaries = _load_tables(conn, run_id, out, metadata["tables"], settings)
        except (psycopg2.Error, DatabaseError) as exc:
            reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError) or conn.closed:
                reason = f"the connection to the warehouse was lost ({reason}); rerun once the server answers"
            _record_failure(conn, settings, run_id, reason)
            raise DatabaseError(f"load failed and was rolled back: {reason}") from exc
        except BaseException as exc:
            _record_failure(conn, settings, run_id, f"{type(exc).__name__}: {exc}")
            raise
        ingest.commit_state(conn, settings, run_id)  # watermarks move only after the data committed
        return summaries
    finally:
        conn.close()


def _record_failure(conn, settings: Settings, run_id: str, error: str) -> None:
    """Roll back and mark the run's audit rows failed -- on a new connection if the old one died.

    The server may be gone altogether (restarting): then the rows stay
    'running' and the next load, holding the run lock, marks them unfinished.
    """
    try:
        conn.rollback()
        audit.fail_run(conn, run_id, error)
        return
    except psycopg2.Error:
        pass
    try:
        audit.fail_run(db.connect(settings.database_url, settings.connect_timeout), run_id, error)
    except (psycopg2.Error, DatabaseError) as exc:
        # One line per failure: the error says what happened; this is for -v (the next load tidies up).
        log.info(
            "run %s: could not record its failure in ingest_audit (%s)", run_id, " ".join(str(exc).split())
        )


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
            clean = merge.Pieces.parquet(out / f"{table}.parquet")  # read piece by piece: flat memory
            merged = merge.load_table(cur, table, clean, timezone=timezone, method=method)
            touched.update(merged.touched_days)
            quarantine_path = out / f"{table}.quarantine.parquet"
            merge.clear_quarantine(cur, run_id, table)  # a rerun of this run id replaces, not adds
            if quarantine_path.exists():
                for rejected in merge.Pieces.parquet(quarantine_path, QUARANTINE_PIECE_ROWS).read():
                    merge.insert_quarantine(cur, run_id, Path(entry["source"]).name, table, rejected)
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
    """Recompute the aggregates and the analytics tables for the days loads changed.

    The load stage queues the local days it changed (in its own transaction);
    this consumes the whole queue (etl.publish.aggregates.refresh_pending), so a
    refresh that failed earlier is caught up by the next one. The Airflow DAG's
    ``refresh_aggregates`` task calls this.
    """
    conn = _connect(settings)
    try:
        result = aggregates.refresh_pending(conn, settings.source_timezone, settings.refresh_work_mem)
    except psycopg2.Error as exc:
        # The load has committed; say so, so nobody reloads to fix an aggregate.
        raise DatabaseError(
            f"run {run_id} loaded, but refreshing the aggregates and analytics tables "
            f"failed: {' '.join(str(exc).split())[:300]}; the touched days stay queued "
            "and the next run (or `etl db refresh`) catches up"
        ) from exc
    finally:
        conn.close()
    log.info(
        "run %s: aggregates refreshed over %d range(s), %d analytics tables",
        run_id,
        len(result.ranges),
        len(result.derived),
    )
    return {
        "run_id": run_id,
        "mode": result.mode,
        "ranges": len(result.ranges),
        "buckets": result.buckets,
        "views_refreshed": len(result.derived),
        "seconds": {name: round(seconds, 3) for name, seconds in result.seconds.items()},
    }
