"""The warehouse schema: which SQL files make it, TimescaleDB's mode, and the schema version.

Migrations run in one place (``etl db init`` and the DAG's ``setup`` task,
both through ``etl.run.setup``); every other stage only checks
``require_current`` and stops with a one-line message when the warehouse is
behind this code. Bump ``SCHEMA_VERSION`` whenever a file under ``sql/``
changes what a stage relies on.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from etl.errors import DatabaseError

log = logging.getLogger(__name__)

#: The schema this code needs. Stored in ``etl_schema_version`` by ``etl db init``.
SCHEMA_VERSION = 11  # 10: bucket aggregates and analytics tables (issue 17); 11: run_events, jobs,
#: sales_by_source (+ bi), controls_reader, etl_uploader (issue 15)


class SchemaOutdated(DatabaseError):
    """The warehouse was set up by older code (or not at all): run ``etl db init``."""


def stored_version(conn: psycopg2.extensions.connection) -> int:
    """The version ``etl db init`` last recorded (0: never initialised)."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('etl_schema_version') IS NOT NULL")
        if not cur.fetchone()[0]:
            return 0
        cur.execute("SELECT max(version) FROM etl_schema_version")
        return cur.fetchone()[0] or 0


def record_version(cur: psycopg2.extensions.cursor) -> None:
    """Mark the warehouse as migrated to ``SCHEMA_VERSION`` (inside the migration's transaction)."""
    cur.execute(
        "CREATE TABLE IF NOT EXISTS etl_schema_version ("
        " version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    cur.execute(
        "INSERT INTO etl_schema_version (version) VALUES (%s) ON CONFLICT (version) DO NOTHING",
        (SCHEMA_VERSION,),
    )


def require_current(conn: psycopg2.extensions.connection) -> None:
    """Stop a stage whose warehouse is not at this code's schema version."""
    version = stored_version(conn)
    if version == SCHEMA_VERSION:
        return
    if version == 0:
        raise SchemaOutdated("the warehouse has no schema yet: run `etl db init` (or the DAG's setup task)")
    if version < SCHEMA_VERSION:
        raise SchemaOutdated(
            f"warehouse schema is version {version}, this code needs {SCHEMA_VERSION}: run `etl db init`"
        )
    raise SchemaOutdated(
        f"warehouse schema is version {version}, newer than this code's {SCHEMA_VERSION}: "
        "deploy the code that migrated it"
    )


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


def try_create_timescaledb(conn: psycopg2.extensions.connection) -> bool:
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


INIT_LOCK = 0x65746C31  # 'etl1': pg_advisory_xact_lock key of `etl db init`
_VIEW_DEFINITION = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:MATERIALIZED\s+)?VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*)",
    re.IGNORECASE,
)


def apply_views(cur: psycopg2.extensions.cursor, views: list[Path]) -> None:
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
