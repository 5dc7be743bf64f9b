"""Hostile HTTP servers on 127.0.0.1, each a real listening socket in a thread.

``DripServer`` answers one byte every ``interval`` seconds (from the status
line, or after complete headers with ``headers_first``), so every single read
returns well within any read timeout while the answer never completes in
time. ``SilentServer`` accepts connections and never sends a byte. Both count
the connections they accepted, and stop (closing every socket) on exit.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class _Server:
    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self.bytes_sent = 0
        self._stop = threading.Event()
        self._clients: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def __enter__(self):
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for client in self._clients:
            with contextlib.suppress(OSError):
                client.close()
        self.listener.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._clients.append(client)
            thread = threading.Thread(target=self.handle, args=(client,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _read_request(self, client: socket.socket) -> None:
        client.settimeout(0.2)
        data = b""
        while b"\r\n\r\n" not in data and not self._stop.is_set():
            try:
                chunk = client.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            data += chunk

    def handle(self, client: socket.socket) -> None:
        raise NotImplementedError


class DripServer(_Server):
    """An answer of ``body`` sent one byte every ``interval`` seconds."""

    def __init__(self, interval: float = 2.0, headers_first: bool = False, body: bytes = b'{"orders": []}'):
        super().__init__()
        self.interval, self.headers_first, self.body = interval, headers_first, body

    def handle(self, client: socket.socket) -> None:
        self._read_request(client)
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(self.body)}\r\n\r\n"
        ).encode()
        payload = head + self.body
        if self.headers_first:
            with contextlib.suppress(OSError):
                client.sendall(head)
            payload = self.body
        for byte in payload:
            if self._stop.wait(self.interval):
                return
            try:
                client.sendall(bytes([byte]))
            except OSError:  # the client gave up and shut its socket: what we test for
                return
            self.bytes_sent += 1


class SilentServer(_Server):
    """Accepts, reads the request and never answers."""

    def handle(self, client: socket.socket) -> None:
        self._read_request(client)
        while not self._stop.wait(0.2):
            pass


def elapsed(fn, *args, **kwargs):
    """(result or exception, seconds) of one call."""
    started = time.monotonic()
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # the caller asserts on it
        result = exc
    return result, time.monotonic() - started
