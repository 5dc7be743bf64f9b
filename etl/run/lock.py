"""One run at a time per warehouse: a PostgreSQL advisory lock held for the whole run.

Two runs at once would both read and transform everything, the second would
then wait silently on a table lock, and the history would show two loads of
the same rows. So a run first takes a session-level advisory lock in the
warehouse database (advisory locks are per database: two warehouses on one
server do not block each other). The lock lives on a connection of its own,
named after the run (``application_name``), so

* a second run can say whose run it waits for (``pg_locks`` joined to
  ``pg_stat_activity``), then wait (``--wait``, the default) or stop at once
  with a one-line error (``--no-wait``, exit 4);
* a run that dies -- even by SIGKILL -- releases it: the server ends the
  session when the connection drops.

``etl run`` (and so the Render cron), every Airflow task but the per-source
ingest ones (``run_task``), and the transform and load of ``etl ingest`` and
``etl replay`` take it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator

import psycopg2

from etl.errors import DatabaseError, EtlError
from etl.settings import Settings
from etl.warehouse import connection as db

log = logging.getLogger(__name__)

#: The lock's key: (class, object) in pg_locks; "ETL" and 1 (the run lock).
LOCK_CLASS, LOCK_OBJECT = 0x45544C, 1


class RunLocked(EtlError):
    """Another run holds the warehouse's run lock and this one was told not to wait."""

    exit_code = 4


def holder(conn) -> str | None:
    """Who holds the run lock: the holding session's name, pid, host and start, or None."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT a.application_name, a.pid, coalesce(host(a.client_addr), 'local'),
                      to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s
                  AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database
                                                        WHERE datname = current_database())""",
            (LOCK_CLASS, LOCK_OBJECT),
        )
        row = cur.fetchone()
    if row is None:
        return None
    name, pid, host, started = row
    return f"{name or 'an unnamed session'} (server pid {pid}, from {host}, connected {started} UTC)"


def _name(run_id: str) -> str:
    return f"etl run {run_id} pid {os.getpid()}@{socket.gethostname()}"[:63]


@contextlib.contextmanager
def run_lock(settings: Settings, run_id: str, *, wait: bool = True) -> Iterator[None]:
    """Hold the warehouse's run lock for the block (waiting for it, or RunLocked)."""
    try:
        conn = db.connect(settings.database_url, settings.connect_timeout)
    except DatabaseError as exc:
        if "does not exist" not in str(exc):
            raise
        db.ensure_database(settings.database_url, settings.connect_timeout)  # a first run: setup follows
        conn = db.connect(settings.database_url, settings.connect_timeout)
    try:
        _take(conn, settings, run_id, wait)
        yield
    finally:
        conn.close()  # ends the session, and with it the lock


def _take(conn, settings: Settings, run_id: str, wait: bool) -> None:
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SET application_name = %s", (_name(run_id),))
            cur.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, LOCK_OBJECT))
            if cur.fetchone()[0]:
                return
            other = holder(conn) or "another run (it is finishing)"
            where = db.describe_url(settings.database_url)
            if not wait:
                raise RunLocked(
                    f"run {run_id} not started: {other} is running on the warehouse {where}; "
                    "one run at a time -- wait for it, or rerun with --wait"
                )
            log.warning("run %s waits for %s to finish on the warehouse %s", run_id, other, where)
            cur.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, LOCK_OBJECT))
            log.warning("run %s has the warehouse to itself now; starting", run_id)
    except psycopg2.Error as exc:
        raise DatabaseError(f"cannot take the warehouse's run lock: {' '.join(str(exc).split())}") from None
