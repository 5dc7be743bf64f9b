"""``etl export``: the analytical views as CSV or Parquet files.

For people and tools without database access, and the dashboards' fallback.
One file per view, named after it (``monthly_sales_summary.csv`` …). Files are
written to a temporary name and renamed, so a reader never sees half a file.
Money stays in integer cents, timestamps in UTC (ISO 8601).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psycopg2.extensions
from psycopg2 import sql

from etl import analytics, db
from etl.errors import ConfigError
from etl.settings import Settings

FORMATS = ("csv", "parquet")


@dataclass(frozen=True)
class ExportedFile:
    view: str
    path: Path
    rows: int


def read_view(conn: psycopg2.extensions.connection, view: str) -> pd.DataFrame:
    """Every row of a view, with its column names, in a stable order."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT * FROM {} ORDER BY 1").format(sql.Identifier(view)))
        columns = [d.name for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=columns)


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "csv":
        frame.to_csv(tmp, index=False)
    else:
        # Decimals (numeric columns) go to Parquet as doubles: BI tools read those everywhere.
        converted = frame.apply(lambda col: pd.to_numeric(col) if col.dtype == object and
                                col.map(lambda v: v.__class__.__name__ == "Decimal").any() else col)
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
        conn.set_session(readonly=True)
        views = analytics.existing_relations(conn, analytics.EXPORT_VIEWS + analytics.OPTIONAL_EXPORT_VIEWS)
        missing = [v for v in analytics.EXPORT_VIEWS if v not in views]
        if missing:
            raise ConfigError(f"the warehouse has no view {missing[0]}; run `etl db init` first")
        written = []
        for view in views:
            frame = read_view(conn, view)
            path = out_dir / f"{view}.{fmt}"
            _write(frame, path, fmt)
            written.append(ExportedFile(view, path, len(frame)))
        return written
    finally:
        conn.close()
