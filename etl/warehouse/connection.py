"""Connections to the warehouse and its set-up (``etl db init`` / ``etl db status``).

Everything here talks to PostgreSQL through psycopg2 and turns connection
problems into one-line ``DatabaseError`` messages naming the server.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from etl.errors import ConfigError, DatabaseError
from etl.settings import SQL_DIR, Settings
from etl.warehouse.redact import scrub

log = logging.getLogger(__name__)


def parse_url(url: str) -> dict[str, str]:
    """libpq parameters of a URL, or a ConfigError that says what is wrong."""
    try:
        return psycopg2.extensions.parse_dsn(url)
    except psycopg2.ProgrammingError as exc:
        raise ConfigError(
            f"DATABASE_URL is not a PostgreSQL URL like "
            f"postgresql://user@host:5432/warehouse ({scrub(' '.join(str(exc).split()), url)})"
        ) from None


def describe_url(url: str) -> str:
    """host:port/db of a URL, without its password, for messages."""
    try:
        params = psycopg2.extensions.parse_dsn(url)
    except psycopg2.ProgrammingError:
        return "<unparseable DATABASE_URL>"
    host = params.get("host", "localhost")
    port = params.get("port", "5432")
    return f"{host}:{port}/{params.get('dbname', '?')}"


def _reason(exc: Exception) -> str:
    """libpq's own words, without its repetition of host and port."""
    text = " ".join(str(exc).split())
    return text.split(" failed: ", 1)[-1] if " failed: " in text else (text or "no answer")


def connect(
    url: str, connect_timeout: int = 5, *, label: str | None = None, **kwargs
) -> psycopg2.extensions.connection:
    """Open a connection or raise a DatabaseError a person can act on.

    ``label`` names the database in the message when ``url`` is only a way to
    reach the server (e.g. the ``postgres`` database used to create ours).
    """
    try:
        return psycopg2.connect(url, connect_timeout=connect_timeout, application_name="etl", **kwargs)
    except psycopg2.ProgrammingError as exc:  # malformed DSN; libpq quotes it, password and all
        raise DatabaseError(
            f"DATABASE_URL is not a valid PostgreSQL URL: {scrub(' '.join(str(exc).split()), url)}"
        ) from None
    except psycopg2.OperationalError as exc:
        raise DatabaseError(
            f"cannot connect to PostgreSQL at {label or describe_url(url)}: {scrub(_reason(exc), url)} "
            "(check DATABASE_URL and that the server is running)"
        ) from None


@contextlib.contextmanager
def transaction(url: str, connect_timeout: int = 5) -> Iterator[psycopg2.extensions.connection]:
    """A connection whose work commits on success and rolls back on any error."""
    conn = connect(url, connect_timeout)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def server_url(url: str, dbname: str = "postgres") -> str:
    """The same server as ``url`` but another database (for CREATE/DROP DATABASE)."""
    params = parse_url(url)
    params["dbname"] = dbname
    return psycopg2.extensions.make_dsn(**params)


def database_name(url: str) -> str:
    return parse_url(url).get("dbname", "postgres")


def ensure_database(url: str, connect_timeout: int = 5) -> bool:
    """Create the URL's database if it does not exist. Returns True if created."""
    name = database_name(url)
    conn = connect(server_url(url), connect_timeout, label=describe_url(url))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone():
                return False
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            log.info("created database %s", name)
            return True
    finally:
        conn.close()


def drop_database(url: str, connect_timeout: int = 5) -> None:
    """Drop the URL's database (tests use this to clean up)."""
    conn = connect(server_url(url), connect_timeout)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database_name(url)))
            )
    finally:
        conn.close()


@dataclass(frozen=True)
class TimescaleMode:
    """Which TimescaleDB, if any, the warehouse has."""

    available: bool  # the extension can be created on this server
    installed: bool  # it is created in the warehouse database
    version: str | None
    license: str | None  # 'apache' (hypertables only) or 'timescale' (full)

    @property
    def name(self) -> str:
        if not self.installed:
            return "postgresql"
        return "timescaledb-full" if self.license == "timescale" else "timescaledb-apache"


def timescale_mode(conn: psycopg2.extensions.connection) -> TimescaleMode:
    with conn.cursor() as cur:
        cur.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'")
        available = cur.fetchone() is not None
        cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
        row = cur.fetchone()
        license_ = None
        if row:
            cur.execute("SELECT current_setting('timescaledb.license', true)")
            license_ = cur.fetchone()[0]
    return TimescaleMode(available, row is not None, row[0] if row else None, license_)


def _try_create_timescaledb(conn: psycopg2.extensions.connection) -> bool:
    """CREATE EXTENSION timescaledb if the server can load it; never fatal."""
    with conn.cursor() as cur:
        cur.execute("SAVEPOINT tsdb")
        try:
            cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        except psycopg2.Error as exc:
            # Typically: the library is not in shared_preload_libraries.
            cur.execute("ROLLBACK TO SAVEPOINT tsdb")
            log.warning(
                "TimescaleDB not enabled (%s); using plain PostgreSQL", str(exc).strip().splitlines()[0]
            )
            return False
        cur.execute("RELEASE SAVEPOINT tsdb")
    return True


def init_schema(settings: Settings, use_timescaledb: bool = True) -> TimescaleMode:
    """Create the database if missing, apply sql/schema.sql, add hypertables when possible."""
    from etl.publish import aggregates, analytics

    ensure_database(settings.database_url, settings.connect_timeout)
    with transaction(settings.database_url, settings.connect_timeout) as conn:
        with conn.cursor() as cur:
            # Quiet the NOTICEs of IF NOT EXISTS on reruns; one init at a time (the
            # DAG's mapped tasks may start together on a new warehouse).
            cur.execute("SET LOCAL client_min_messages = warning")
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_INIT_LOCK,))
            if use_timescaledb and settings.timescaledb and timescale_mode(conn).available:
                _try_create_timescaledb(conn)
            files = schema_files(SQL_DIR, timescale_mode(conn).installed)
            views = [p for p in files if p.parent.name == "views"]
            for path in files:
                if path not in views:
                    cur.execute(path.read_text())
            mode = timescale_mode(conn)
            # The aggregates come after the facts and before the views that read them.
            aggregates.ensure(cur, mode, settings.source_timezone)
            # A view rebuild computes every materialized view, as a refresh does.
            analytics.set_local_work_mem(cur, settings.refresh_work_mem)
            _apply_views(cur, views)
            _apply_roles(cur)
    return mode


_INIT_LOCK = 0x65746C31  # 'etl1': pg_advisory_xact_lock key of `etl db init`
_VIEW_DEFINITION = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:MATERIALIZED\s+)?VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*)",
    re.IGNORECASE,
)


def _apply_views(cur: psycopg2.extensions.cursor, views: list[Path]) -> None:
    """Apply sql/views/*.sql, rebuilding every view when any file changed since the last init.

    ``CREATE MATERIALIZED VIEW IF NOT EXISTS`` never changes an existing view and
    ``CREATE OR REPLACE VIEW`` cannot change its columns, so an upgraded
    definition would silently not reach an existing warehouse. The files'
    checksums are kept in ``etl_view_versions``; when they differ, the views the
    files declare are dropped (with what depends on them) and created afresh.
    """
    cur.execute("""CREATE TABLE IF NOT EXISTS etl_view_versions (
                       file_name TEXT PRIMARY KEY, sha256 TEXT NOT NULL,
                       applied_at TIMESTAMPTZ NOT NULL DEFAULT now())""")
    current = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in views}
    cur.execute("SELECT file_name, sha256 FROM etl_view_versions")
    if dict(cur.fetchall()) != current:
        names = [m.group(1) for p in views for m in _VIEW_DEFINITION.finditer(p.read_text())]
        for name in reversed(names):
            cur.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (name,))
            row = cur.fetchone()
            if row and row[0] in ("v", "m"):
                kind = sql.SQL("MATERIALIZED VIEW" if row[0] == "m" else "VIEW")
                cur.execute(sql.SQL("DROP {} IF EXISTS {} CASCADE").format(kind, sql.Identifier(name)))
        cur.execute("DELETE FROM etl_view_versions")
        cur.executemany(
            "INSERT INTO etl_view_versions (file_name, sha256) VALUES (%s, %s)", sorted(current.items())
        )
    for path in views:
        cur.execute(path.read_text())


def _apply_roles(cur: psycopg2.extensions.cursor) -> None:
    """sql/roles.sql (etl_writer, bi_reader); skipped with a warning without CREATEROLE."""
    cur.execute("SAVEPOINT roles")
    try:
        cur.execute((SQL_DIR / "roles.sql").read_text())
    except psycopg2.Error as exc:
        cur.execute("ROLLBACK TO SAVEPOINT roles")
        log.warning(
            "roles etl_writer/bi_reader not set up (%s); ask an administrator to run sql/roles.sql",
            str(exc).strip().splitlines()[0],
        )
        return
    cur.execute("RELEASE SAVEPOINT roles")


def schema_files(sql_dir: Path, timescaledb: bool) -> list[Path]:
    """The SQL files ``etl db init`` applies, in order.

    ``schema.sql`` holds the star schema; each capability adds its own tables in
    ``schema.d/NN_name.sql`` (applied in name order), then hypertables when
    TimescaleDB is there, then the views in ``views/*.sql`` that read them all.
    Every file must be idempotent.
    """
    files = [sql_dir / "schema.sql", *sorted((sql_dir / "schema.d").glob("*.sql"))]
    if timescaledb:
        files.append(sql_dir / "timescaledb_setup.sql")
    files.extend(sorted((sql_dir / "views").glob("*.sql")))
    return files


def hypertables(conn: psycopg2.extensions.connection) -> list[str]:
    """Names of the warehouse's hypertables (empty without TimescaleDB)."""
    if not timescale_mode(conn).installed:
        return []
    with conn.cursor() as cur:
        cur.execute("SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY 1")
        return [r[0] for r in cur.fetchall()]


def table_counts(conn: psycopg2.extensions.connection, tables: list[str]) -> dict[str, int]:
    counts = {}
    with conn.cursor() as cur:
        for table in tables:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
            counts[table] = cur.fetchone()[0]
    return counts
