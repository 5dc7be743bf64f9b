"""The warehouse migration: the only code that applies DDL (``etl db init``, the DAG's ``setup`` task).

It composes the schema's SQL files (``etl.warehouse.schema``), the
time-bucketed aggregates and the analytics views (``etl.publish``), the roles,
and finally records ``SCHEMA_VERSION``, all in one transaction under an
advisory lock. Stages never call it: they check the version and stop when the
warehouse is behind (``etl.warehouse.schema.require_current``).
"""

from __future__ import annotations

import psycopg2.extensions

from etl.publish import aggregates
from etl.settings import SQL_DIR, Settings
from etl.warehouse import access, connection, schema


def init_schema(settings: Settings, use_timescaledb: bool = True) -> schema.TimescaleMode:
    """Create the database if missing and bring its schema to this code's version (idempotent)."""
    connection.ensure_database(settings.database_url, settings.connect_timeout)
    with connection.transaction(settings.database_url, settings.connect_timeout) as conn:
        with conn.cursor() as cur:
            # Quiet the NOTICEs of IF NOT EXISTS on reruns; one migration at a time.
            cur.execute("SET LOCAL client_min_messages = warning")
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (schema.INIT_LOCK,))
            if use_timescaledb and settings.timescaledb and schema.timescale_mode(conn).available:
                schema.try_create_timescaledb(conn)
            mode = _apply(cur, conn, settings)
    return mode


def _apply(
    cur: psycopg2.extensions.cursor, conn: psycopg2.extensions.connection, settings: Settings
) -> schema.TimescaleMode:
    files = schema.schema_files(SQL_DIR, schema.timescale_mode(conn).installed)
    views = [p for p in files if p.parent.name == "views"]
    for path in files:
        if path not in views:
            cur.execute(path.read_text())
    mode = schema.timescale_mode(conn)
    # The aggregates come after the facts and before the views that read them.
    aggregates.ensure(cur, mode, settings.source_timezone)
    # A view rebuild computes every materialized view, as a refresh does.
    connection.set_local_work_mem(cur, settings.refresh_work_mem)
    schema.apply_views(cur, views)
    schema.record_version(cur)
    # Last, so that they cover every object above: the BI schema over the views,
    # then roles, grants and logins (sql/roles.sql, sql/grants.sql).
    access.apply(cur, settings)
    return mode


def ensure_current(settings: Settings) -> schema.TimescaleMode | None:
    """Migrate only when the warehouse is behind this code (the run's ``setup`` stage).

    Returns the mode when it migrated, None when the warehouse was already current,
    so a daily run costs one small query here, not a pass over every DDL file.
    """
    connection.ensure_database(settings.database_url, settings.connect_timeout)
    conn = connection.connect(settings.database_url, settings.connect_timeout)
    try:
        current = schema.stored_version(conn) == schema.SCHEMA_VERSION
    finally:
        conn.close()
    return None if current else init_schema(settings)
