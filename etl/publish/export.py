"""``etl export``: the analytical views as CSV or Parquet files.

For people and tools without database access, and the dashboards' fallback.
One file per view, named after it (``monthly_sales_summary.csv`` …). Files are
written to a temporary name and renamed, so a reader never sees half a file.
Money stays in integer cents, timestamps in UTC (ISO 8601).

Last, ``export.json`` (the manifest) records when the export was taken, from
which database, and each file's rows and column types, so a reader (the
dashboard's fallback, ``dashboard/fallback.py``) can restore typed values from
CSV text (integers, dates, timestamps) and say how old the data is.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psycopg2.extensions
from psycopg2 import sql

from etl import spreadsheet
from etl.errors import ConfigError
from etl.publish import analytics
from etl.settings import Settings
from etl.warehouse import connection as db

FORMATS = ("csv", "parquet")
MANIFEST = "export.json"

#: PostgreSQL type OIDs -> the kind of value a reader restores (anything else is text).
_KINDS = {
    20: "int",
    21: "int",
    23: "int",
    1700: "decimal",
    700: "float",
    701: "float",
    1082: "date",
    1114: "timestamp",
    1184: "timestamp",
    16: "bool",
}


@dataclass(frozen=True)
class ExportedFile:
    view: str
    path: Path
    rows: int


def read_view(conn: psycopg2.extensions.connection, view: str) -> pd.DataFrame:
    """Every row of a view, with its column names, in a stable order.

    ``frame.attrs["kinds"]`` maps each column to int/decimal/float/date/timestamp/bool/text.
    """
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT * FROM {} ORDER BY 1").format(sql.Identifier(view)))
        columns = [d.name for d in cur.description]
        frame = pd.DataFrame(cur.fetchall(), columns=columns)
        frame.attrs["kinds"] = {d.name: _KINDS.get(d.type_code, "text") for d in cur.description}
        return frame


def _write_manifest(out_dir: Path, fmt: str, database: str, files: list[tuple[ExportedFile, dict]]) -> None:
    manifest = {
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "format": fmt,
        # CSV cells that start like a formula carry this prefix (etl/spreadsheet.py)
        "formula_prefix": spreadsheet.PREFIX if fmt == "csv" else None,
        "database": database,
        "views": {f.view: {"file": f.path.name, "rows": f.rows, "columns": kinds} for f, kinds in files},
    }
    tmp = out_dir / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    os.replace(tmp, out_dir / MANIFEST)


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "csv":
        spreadsheet.escape_frame(frame).to_csv(tmp, index=False)  # no cell runs as a formula
    else:
        # Decimals (numeric columns) go to Parquet as doubles: BI tools read those everywhere.
        converted = frame.apply(
            lambda col: (
                pd.to_numeric(col)
                if col.dtype == object and col.map(lambda v: v.__class__.__name__ == "Decimal").any()
                else col
            )
        )
        converted.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def export_views(settings: Settings, out_dir: Path, fmt: str = "csv") -> list[ExportedFile]:
    """Write every analytical view that exists to ``out_dir`` as ``fmt``."""
    if fmt not in FORMATS:
        raise ConfigError(f"export format {fmt!r} is not supported; use one of {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create export folder {out_dir}: {exc.strerror}") from exc
    conn = db.connect(settings.database_url, settings.connect_timeout)
    try:
        # One snapshot for all files (REPEATABLE READ), timestamps rendered in UTC.
        conn.set_session(readonly=True, isolation_level="REPEATABLE READ")
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
        views = analytics.existing_relations(conn, analytics.EXPORT_VIEWS + analytics.OPTIONAL_EXPORT_VIEWS)
        missing = [v for v in analytics.EXPORT_VIEWS if v not in views]
        if missing:
            raise ConfigError(f"the warehouse has no view {missing[0]}; run `etl db init` first")
        written: list[tuple[ExportedFile, dict]] = []
        for view in views:
            frame = read_view(conn, view)
            path = out_dir / f"{view}.{fmt}"
            _write(frame, path, fmt)
            written.append((ExportedFile(view, path, len(frame)), frame.attrs["kinds"]))
        _write_manifest(out_dir, fmt, db.describe_url(settings.database_url), written)
        return [f for f, _ in written]
    finally:
        conn.close()
