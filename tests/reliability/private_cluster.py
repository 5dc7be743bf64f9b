"""A PostgreSQL 15 cluster a test owns: initdb'ed in a temporary folder, on its own port.

Fault tests stop and restart it in the middle of a run, which the machine's
shared server must never suffer. As root (CI), the server runs as the
``postgres`` user, since PostgreSQL refuses to run as root. TimescaleDB is
preloaded when the machine's server has it, like the warehouse's own server.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateCluster:
    def __init__(self) -> None:
        if not (BIN / "initdb").exists():
            raise RuntimeError(f"PostgreSQL 15 server binaries not found in {BIN}")
        self.root = Path(tempfile.mkdtemp(prefix="etl-private-pg-"))
        self.pgdata, self.log = self.root / "pgdata", self.root / "server.log"
        self.port = _free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/warehouse"
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.pgdata),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        sharedir = subprocess.run(
            [str(BIN / "pg_config"), "--sharedir"], capture_output=True, text=True
        ).stdout
        self.options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        if Path(sharedir.strip(), "extension", "timescaledb.control").exists():
            self.options += " -c shared_preload_libraries=timescaledb"

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / program), *args],
            user=self.user,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            self.options,
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-m", mode, "stop")

    def __enter__(self) -> PrivateCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)
