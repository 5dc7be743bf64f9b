"""Connections to the warehouse: the one owner of psycopg2 connect and its errors.

Everything here turns connection problems into one-line ``DatabaseError``
messages naming the server (never its password). The schema itself is
``etl.warehouse.schema``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from etl.errors import ConfigError, DatabaseError
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


def set_local_work_mem(cur: psycopg2.extensions.cursor, work_mem: str | None) -> None:
    """``work_mem`` for the current transaction only (None or '': leave the server's)."""
    if work_mem:
        cur.execute("SELECT set_config('work_mem', %s, true)", (work_mem,))
