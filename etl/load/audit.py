"""The ``ingest_audit`` trail: one row per run x table.

Rows are opened as ``running`` and committed *before* the load transaction, so a
crash mid-load leaves evidence; they are closed as ``succeeded`` inside the load
transaction (so the audit and the data commit together), or as ``failed`` with
the error in a transaction of their own. Rerunning a run id (an Airflow retry,
a rerun after a kill) reopens its rows and counts the attempt.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2.extensions


@dataclass(frozen=True)
class AuditEntry:
    table: str
    source: str


def open_run(conn: psycopg2.extensions.connection, run_id: str, entries: list[AuditEntry]) -> None:
    with conn, conn.cursor() as cur:
        cur.executemany(
            # A rerun of the same run id (an Airflow retry, a re-run date, a run
            # resumed after a crash) starts its rows afresh and counts the attempt,
            # instead of failing on UNIQUE (run_id, table_name).
            """INSERT INTO ingest_audit (run_id, source, table_name) VALUES (%s, %s, %s)
               ON CONFLICT (run_id, table_name) DO UPDATE
                  SET source = EXCLUDED.source, rows_read = 0, rows_loaded = 0, rows_quarantined = 0,
                      started_at = now(), finished_at = NULL, status = 'running', error = NULL,
                      attempts = ingest_audit.attempts + 1""",
            [(run_id, e.source, e.table) for e in entries],
        )


def close_table(
    cur: psycopg2.extensions.cursor,
    run_id: str,
    table: str,
    *,
    rows_read: int,
    rows_loaded: int,
    rows_quarantined: int,
    rows_inserted: int = 0,
    rows_updated: int = 0,
    rows_unchanged: int = 0,
    bytes_sent: int = 0,
    seconds: float | None = None,
    method: str | None = None,
) -> None:
    cur.execute(
        """UPDATE ingest_audit
              SET rows_read = %s, rows_loaded = %s, rows_quarantined = %s,
                  rows_inserted = %s, rows_updated = %s, rows_unchanged = %s,
                  bytes = %s, seconds = %s, method = %s,
                  finished_at = clock_timestamp(), status = 'succeeded'
            WHERE run_id = %s AND table_name = %s""",
        (
            rows_read,
            rows_loaded,
            rows_quarantined,
            rows_inserted,
            rows_updated,
            rows_unchanged,
            bytes_sent,
            seconds,
            method,
            run_id,
            table,
        ),
    )


def fail_table(
    cur: psycopg2.extensions.cursor,
    run_id: str,
    table: str,
    *,
    rows_read: int,
    rows_quarantined: int,
    error: str,
) -> None:
    """A table of a run that loaded nothing (the quality gate stopped it): what was read and rejected."""
    cur.execute(
        """UPDATE ingest_audit
              SET rows_read = %s, rows_loaded = 0, rows_quarantined = %s, status = 'failed', error = %s,
                  finished_at = clock_timestamp()
            WHERE run_id = %s AND table_name = %s""",
        (rows_read, rows_quarantined, error[:2000], run_id, table),
    )


def fail_run(conn: psycopg2.extensions.connection, run_id: str, error: str) -> None:
    with conn, conn.cursor() as cur:
        cur.execute(
            """UPDATE ingest_audit SET status = 'failed', error = %s, finished_at = clock_timestamp()
                WHERE run_id = %s AND status = 'running'""",
            (error[:2000], run_id),
        )


def fail_abandoned(conn: psycopg2.extensions.connection, run_id: str) -> int:
    """Mark other runs' rows still ``running`` as failed: their process died mid-load.

    Called by a load that holds the warehouse's run lock (etl.run.lock), so no
    other load can be running: a row still open belongs to a run that was
    killed or crashed, and the history should say so instead of "running" for ever.
    """
    with conn, conn.cursor() as cur:
        cur.execute(
            """UPDATE ingest_audit
                  SET status = 'failed', finished_at = clock_timestamp(),
                      error = 'unfinished: the run stopped before its load committed (killed or crashed); '
                              'nothing of it was loaded'
                WHERE status = 'running' AND run_id <> %s""",
            (run_id,),
        )
        return cur.rowcount
