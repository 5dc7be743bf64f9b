"""Read-only access to the warehouse for the dashboards.

Connections are opened read-only (``default_transaction_read_only``) with a
statement timeout, pooled per process, and thrown away after any connection
error, so a restarted server is picked up again without restarting the app.
A warehouse that cannot be reached, has no analytics views yet, or whose
``DATABASE_URL`` cannot be parsed becomes a ``WarehouseUnavailable`` the app
turns into a 503 page; its message never holds the URL's password.

Read-only sessions are a convenience, not a guard: any SQL can switch them off.
The guard is the role: the dashboards connect as the ``dashboard_reader`` login
(sql/roles.sql) and refuse a superuser (``SuperuserRefused``) unless
``allow_superuser`` (``DASHBOARD_ALLOW_SUPERUSER=1``) says otherwise.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from etl.warehouse.connection import describe_url
from etl.warehouse.redact import scrub


class WarehouseUnavailable(Exception):
    """The warehouse cannot answer; the message says why and what to do."""


class SuperuserRefused(WarehouseUnavailable):
    """The dashboard's login can do anything in the warehouse; it must not serve pages."""


class ReadOnlyWarehouse:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 4,
        connect_timeout: int = 5,
        statement_timeout_ms: int = 5000,
        allow_superuser: bool = False,
    ) -> None:
        self.url = url
        self.allow_superuser = allow_superuser
        self.where = describe_url(url)
        self._pool_size = pool_size
        self._kwargs = {
            "connect_timeout": connect_timeout,
            "application_name": "etl-dashboard",
            "options": f"-c default_transaction_read_only=on -c statement_timeout={int(statement_timeout_ms)}",
        }
        self._idle: list[psycopg2.extensions.connection] = []
        self._lock = threading.Lock()

    def _acquire(self) -> psycopg2.extensions.connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        try:
            conn = psycopg2.connect(self.url, **self._kwargs)
        except psycopg2.Error as exc:  # unreachable, refused, or a malformed DATABASE_URL
            reason = scrub(" ".join(str(exc).split()).split(" failed: ", 1)[-1], self.url)
            raise WarehouseUnavailable(f"the warehouse at {self.where} is unreachable: {reason}") from None
        conn.set_session(readonly=True, autocommit=True)
        if not self.allow_superuser:
            self._refuse_superuser(conn)
        return conn

    def _refuse_superuser(self, conn: psycopg2.extensions.connection) -> None:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
            user, superuser = cur.fetchone()
        if superuser:
            conn.close()
            raise SuperuserRefused(
                f"refusing to serve dashboards as {user}, a superuser of {self.where}: connect as the "
                f"dashboard login (ETL_DASHBOARD_USER, docs/dashboards.md) or set DASHBOARD_ALLOW_SUPERUSER=1"
            )

    def check_role(self) -> None:
        """Connect once: SuperuserRefused if the login is a superuser, WarehouseUnavailable if down."""
        with self.connection():
            pass

    def _release(self, conn: psycopg2.extensions.connection, broken: bool) -> None:
        """Keep up to pool_size idle connections (psycopg2's own pool closes all above minconn)."""
        if not broken and not conn.closed:
            with self._lock:
                if len(self._idle) < self._pool_size:
                    self._idle.append(conn)
                    return
        conn.close()

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg2.extensions.connection]:
        conn = self._acquire()
        broken = False
        try:
            yield conn
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            broken = True
            raise WarehouseUnavailable(
                f"the warehouse at {self.where} stopped answering: {scrub(' '.join(str(exc).split()), self.url)}"
            ) from None
        except psycopg2.errors.UndefinedTable as exc:
            raise WarehouseUnavailable(
                f"the warehouse at {self.where} has no analytics views yet "
                f"({str(exc).splitlines()[0]}); run `etl db init`"
            ) from exc
        finally:
            self._release(conn, broken)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
