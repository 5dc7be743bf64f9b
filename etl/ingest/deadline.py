"""A total deadline for one HTTP request, enforced on its socket.

``requests``' read timeout bounds only the gap between two reads: a server
that drips one byte every two seconds (in its headers or its body) keeps a
request alive for ever. Here a watchdog timer shuts the request's socket down
when the deadline passes, so the blocked read returns at once and the request
fails, whatever phase it is in (connect, headers, body).

The watchdog finds the socket through urllib3: a ``requests`` adapter whose
connection pools register, per thread, each connection a request uses (a new
one or one reused from the pool) with the thread's current ``Deadline``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()

#: While the connection has no socket yet (still connecting), look again this often.
_POLL_SECONDS = 0.05


class Deadline:
    """Fires once ``seconds`` have passed: every registered connection's socket is shut down."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires_at = time.monotonic() + seconds
        self.expired = False
        self._connections: list = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._arm(seconds)

    def _arm(self, delay: float) -> None:
        timer = threading.Timer(max(0.0, delay), self._fire)
        timer.daemon = True
        self._timer = timer
        timer.start()

    def register(self, conn) -> None:
        with self._lock:
            self._connections.append(conn)
            expired = self.expired
        if expired:
            _shutdown(conn)

    def _fire(self) -> None:
        with self._lock:
            if self._timer is None:  # cancelled: the request finished
                return
            self.expired = True
            connections = list(self._connections)
        waiting = False
        for conn in connections:
            if not _shutdown(conn):
                waiting = True  # connecting: its socket appears soon
        if waiting or not connections:
            with self._lock:
                if self._timer is not None:
                    self._arm(_POLL_SECONDS)

    def cancel(self) -> None:
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()


def _shutdown(conn) -> bool:
    """Shut the connection's socket down; False when it has none yet."""
    sock = getattr(conn, "sock", None)
    if sock is None:
        return False
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    return True


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Requests sent by this thread inside the block are cut off after ``seconds``."""
    watchdog = Deadline(seconds)
    previous = getattr(_current, "deadline", None)
    _current.deadline = watchdog
    try:
        yield watchdog
    finally:
        _current.deadline = previous
        watchdog.cancel()


def _register(conn) -> None:
    watchdog = getattr(_current, "deadline", None)
    if watchdog is not None:
        watchdog.register(conn)


class _Pool(HTTPConnectionPool):
    def _make_request(self, conn, *args, **kwargs):
        _register(conn)
        return super()._make_request(conn, *args, **kwargs)


class _HTTPSPool(HTTPSConnectionPool):
    def _make_request(self, conn, *args, **kwargs):
        _register(conn)
        return super()._make_request(conn, *args, **kwargs)


class DeadlineAdapter(HTTPAdapter):
    """A ``requests`` adapter whose connections obey the thread's ``deadline()``."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _HTTPSPool}
