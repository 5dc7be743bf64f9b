"""Read-only access to the warehouse for the dashboards.

Connections are opened read-only (``default_transaction_read_only``) with a
statement timeout, pooled per process, and thrown away after any connection
error, so a restarted server is picked up again without restarting the app.
A warehouse that cannot be reached, or has no analytics views yet, becomes a
``WarehouseUnavailable`` the app turns into a 503 page.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import psycopg2
import psycopg2.errors
import psycopg2.pool

from etl.db import describe_url


class WarehouseUnavailable(Exception):
    """The warehouse cannot answer; the message says why and what to do."""


class ReadOnlyWarehouse:
    def __init__(self, url: str, *, pool_size: int = 4, connect_timeout: int = 5,
                 statement_timeout_ms: int = 5000) -> None:
        self.url = url
        self.where = describe_url(url)
        self._pool_size = pool_size
        self._kwargs = {
            "connect_timeout": connect_timeout, "application_name": "etl-dashboard",
            "options": f"-c default_transaction_read_only=on -c statement_timeout={int(statement_timeout_ms)}",
        }
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._lock = threading.Lock()

    def _get_pool(self) -> psycopg2.pool.ThreadedConnectionPool:
        with self._lock:
            if self._pool is None:
                self._pool = psycopg2.pool.ThreadedConnectionPool(0, self._pool_size, self.url, **self._kwargs)
            return self._pool

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg2.extensions.connection]:
        pool = self._get_pool()
        try:
            conn = pool.getconn()
        except psycopg2.pool.PoolError as exc:
            raise WarehouseUnavailable(f"the warehouse at {self.where} is busy ({exc})") from exc
        except psycopg2.OperationalError as exc:
            reason = " ".join(str(exc).split()).split(" failed: ", 1)[-1]
            raise WarehouseUnavailable(f"the warehouse at {self.where} is unreachable: {reason}") from exc
        broken = False
        try:
            if not conn.autocommit:
                conn.set_session(readonly=True, autocommit=True)
            yield conn
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            broken = True
            raise WarehouseUnavailable(f"the warehouse at {self.where} stopped answering: "
                                       f"{' '.join(str(exc).split())}") from exc
        except psycopg2.errors.UndefinedTable as exc:
            raise WarehouseUnavailable(f"the warehouse at {self.where} has no analytics views yet "
                                       f"({str(exc).splitlines()[0]}); run `etl db init`") from exc
        finally:
            pool.putconn(conn, close=broken or conn.closed != 0)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.closeall()
                self._pool = None
