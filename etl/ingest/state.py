"""Watermarks and loaded files, kept in the warehouse, moved only after a commit.

Ingest never writes state to the warehouse itself: it leaves the state it
*would* advance to in ``runs/{run_id}/state/{source}.json``. ``commit`` writes
those into ``ingest_watermarks`` / ``ingest_files`` once the load transaction
of the same run has committed (``etl.run.pipeline.load_stage`` calls it). A crash
before that leaves the old state, so the next run reads the batch again; the
load merges by natural key, so reading twice never doubles a row.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

import psycopg2.extensions
from psycopg2.extras import Json

from etl import staging
from etl.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Watermark:
    """Highest cursor value read, and the record ids sitting exactly at it."""

    entity: str
    cursor_value: str
    ids_at_cursor: list[str] = field(default_factory=list)

    def is_new(self, cursor_value: str, record_id: str) -> bool:
        """Was this record not covered by the watermark? (Inclusive reads re-see the boundary.)"""
        if cursor_value > self.cursor_value:
            return True
        return cursor_value == self.cursor_value and record_id not in self.ids_at_cursor


def advance(current: Watermark | None, entity: str, records: list[tuple[str, str]]) -> Watermark | None:
    """The watermark after also covering ``records`` [(cursor value, id)]. Cursor values
    must compare correctly as strings (ISO-8601 UTC, zero-padded numbers)."""
    mark = Watermark(entity, current.cursor_value, list(current.ids_at_cursor)) if current else None
    for cursor_value, record_id in records:
        if cursor_value in (None, ""):
            continue
        if mark is None or cursor_value > mark.cursor_value:
            mark = Watermark(entity, cursor_value, [record_id])
        elif cursor_value == mark.cursor_value and record_id not in mark.ids_at_cursor:
            mark.ids_at_cursor.append(record_id)
    return mark


def load_watermark(conn: psycopg2.extensions.connection, source: str, entity: str) -> Watermark | None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT cursor_value, ids_at_cursor FROM ingest_watermarks WHERE source = %s AND entity = %s",
            (source, entity),
        )
        row = cur.fetchone()
    conn.rollback()  # read-only; do not hold a transaction open while fetching
    return Watermark(entity, row[0], list(row[1])) if row else None


def known_files(
    conn: psycopg2.extensions.connection, source: str, run_id: str | None = None
) -> set[tuple[str, str]]:
    """(name, sha256) of the files loaded before by runs other than ``run_id``.

    A rerun of the same run id (an Airflow retry or a re-run date) reads its own
    files again, so it reproduces its load instead of finding nothing to do.
    """
    with conn.cursor() as cur:
        cur.execute(
            "SELECT file_name, sha256 FROM ingest_files WHERE source = %s AND run_id IS DISTINCT FROM %s",
            (source, run_id),
        )
        rows = {(name, sha.strip()) for name, sha in cur.fetchall()}
    conn.rollback()
    return rows


def _pending_path(settings: Settings, run_id: str, source: str):
    return staging.run_dir(settings, run_id) / "state" / f"{source}.json"


def write_pending(
    settings: Settings, run_id: str, source: str, watermarks: list[Watermark], files: list[dict]
) -> None:
    """Record what this run will advance to once its data is committed."""
    staging.write_json(
        _pending_path(settings, run_id, source),
        {"source": source, "watermarks": [asdict(w) for w in watermarks], "files": files},
    )


def discard_pending(settings: Settings, run_id: str, source: str) -> None:
    _pending_path(settings, run_id, source).unlink(missing_ok=True)


def commit(conn: psycopg2.extensions.connection, settings: Settings, run_id: str) -> dict:
    """Advance every source's state recorded for ``run_id``, in one transaction."""
    directory = staging.run_dir(settings, run_id) / "state"
    counts = {"watermarks": 0, "files": 0}
    if not directory.is_dir():
        return counts
    with conn, conn.cursor() as cur:
        for path in sorted(directory.glob("*.json")):
            pending = json.loads(path.read_text())
            source = pending["source"]
            for mark in pending["watermarks"]:
                # GREATEST-like guard: a replayed or older run never moves a watermark back.
                cur.execute(
                    """
                    INSERT INTO ingest_watermarks (source, entity, cursor_value, ids_at_cursor, run_id)
                    VALUES (%s, %s, %s, %s, %s)
                    ON CONFLICT (source, entity) DO UPDATE
                       SET cursor_value = EXCLUDED.cursor_value, ids_at_cursor = EXCLUDED.ids_at_cursor,
                           run_id = EXCLUDED.run_id, updated_at = now()
                     WHERE ingest_watermarks.cursor_value <= EXCLUDED.cursor_value""",
                    (source, mark["entity"], mark["cursor_value"], Json(mark["ids_at_cursor"]), run_id),
                )
                counts["watermarks"] += 1
            for entry in pending["files"]:
                cur.execute(
                    """
                    INSERT INTO ingest_files (source, file_name, sha256, bytes, run_id)
                    VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                    (source, entry["name"], entry["sha256"], entry["bytes"], run_id),
                )
                counts["files"] += 1
    log.info(
        "run %s: advanced %d watermark(s), recorded %d file(s)", run_id, counts["watermarks"], counts["files"]
    )
    return counts
