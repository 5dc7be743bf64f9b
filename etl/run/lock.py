"""One writer at a time in the warehouse: a PostgreSQL advisory lock with a name on it.

Runs merge into the same tables, queue the same aggregate days and read the
same "files loaded before" state, so two of them writing at once can quarantine
each other's rows as orphans or interleave their merges. Airflow's
``max_active_runs=1`` does not cover everything that writes: a backfill has its
own ``max_active_runs`` (default 10), a manual ``etl run`` knows nothing of Airflow.
So the pipeline takes this lock itself:

* ``etl run`` (the CLI) holds it for the whole run;
* each DAG task that writes the warehouse (transform, load, refresh_aggregates)
  holds it for its duration, so two DAG runs never write at the same time.

API::

    with warehouse_lock(settings, "daily-2018-08-01 load", wait=600):
        ...  # nobody else holds it here

``wait`` is how long to wait for another holder (None: as long as it takes,
0: not at all); when it runs out, ``WarehouseBusy`` says who holds the lock
(its label, PostgreSQL pid and since when), e.g.
``the warehouse is busy: run daily-2018-08-01 load (pid 4242, since 08:31:02 UTC) holds the
etl run lock; wait for it to finish, or stop it``.

It is a *session* lock on its own connection: it is released when the block
ends, and also by PostgreSQL when the holder's process dies, so a killed task
never leaves the warehouse locked. The holder's label rides in the lock
connection's ``application_name`` (``etl lock: <label>``), visible in
``pg_stat_activity`` to anyone asking who holds it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import psycopg2.extensions

from etl.errors import EtlError
from etl.settings import Settings
from etl.warehouse import connection as db

log = logging.getLogger(__name__)

#: The advisory lock's key: "etl-run\0" as a big-endian bigint (any fixed number would do).
LOCK_KEY = int.from_bytes(b"etl-run\0", "big")
APPLICATION_PREFIX = "etl lock: "


class WarehouseBusy(EtlError):
    """Another run holds the warehouse lock and ``wait`` ran out."""

    exit_code = 4


@dataclass(frozen=True)
class Holder:
    label: str
    pid: int
    since: datetime | None

    def describe(self) -> str:
        since = f", since {self.since:%Y-%m-%d %H:%M:%S %Z}" if self.since else ""
        return f"{self.label} (pid {self.pid}{since})"


def holder(conn: psycopg2.extensions.connection) -> Holder | None:
    """Who holds the lock now, or None (as seen from ``conn``'s database)."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT a.pid, a.application_name, a.backend_start
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'advisory' AND l.granted
                  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND l.classid = %s AND l.objid = %s AND l.objsubid = 1""",
            (LOCK_KEY >> 32, LOCK_KEY & 0xFFFFFFFF),
        )
        row = cur.fetchone()
    if row is None:
        return None
    pid, application, since = row
    label = (
        application[len(APPLICATION_PREFIX) :] if application.startswith(APPLICATION_PREFIX) else application
    )
    return Holder(label or "an unnamed session", pid, since)


@contextlib.contextmanager
def warehouse_lock(
    settings: Settings, label: str, wait: float | None = None, poll: float = 1.0
) -> Iterator[None]:
    """Hold the warehouse lock while the block runs (see the module doc)."""
    conn = db.connect(settings.database_url, settings.connect_timeout)
    conn.autocommit = True  # no transaction stays open while the lock is held
    try:
        with conn.cursor() as cur:
            cur.execute("SET application_name = %s", (f"{APPLICATION_PREFIX}{label}"[:63],))
        _acquire(conn, label, wait, poll)
        try:
            yield
        finally:
            with contextlib.suppress(psycopg2.Error), conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    finally:
        conn.close()


def _acquire(conn: psycopg2.extensions.connection, label: str, wait: float | None, poll: float) -> None:
    started = time.monotonic()
    announced = None
    while True:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
            if cur.fetchone()[0]:
                if announced:
                    log.info("%s: got the warehouse lock after %.0f s", label, time.monotonic() - started)
                return
        other = holder(conn)
        waited = time.monotonic() - started
        if wait is not None and waited >= wait:
            who = other.describe() if other else "another session"
            raise WarehouseBusy(
                f"the warehouse is busy: {who} holds the etl run lock"
                + (f" (waited {waited:.0f} s)" if wait else "")
                + "; wait for it to finish, or stop it"
            )
        if other and other != announced:  # a warning: `etl run` shows it by default
            log.warning("%s: waiting for the warehouse lock held by %s", label, other.describe())
            announced = other
        time.sleep(poll)
