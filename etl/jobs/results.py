"""What a job produced, as files a person downloads: its clean rows and its quarantine, CSV or Parquet.

Clean rows are the run's clean batches (``staging/clean/<run>/<table>.parquet``,
kept after the load); the quarantine comes from the warehouse (``quarantine``
rows of the job's run, with the sentence and the raw record as JSON). One
table is one file; several are a zip of one file per table.
"""

from __future__ import annotations

import io
import json
import zipfile

import pandas as pd
import psycopg2.extensions
import pyarrow as pa
import pyarrow.parquet as pq

from etl import staging
from etl.errors import SourceError
from etl.jobs.queue import Job
from etl.olist import ALL_TABLES
from etl.settings import Settings

FORMATS = ("csv", "parquet")


def _encode(frame: pd.DataFrame, fmt: str) -> bytes:
    if fmt == "csv":
        return frame.to_csv(index=False).encode("utf-8")
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return sink.getvalue()


def clean_frames(settings: Settings, job: Job) -> dict[str, pd.DataFrame]:
    out = staging.clean_dir(settings, job.run_id)
    frames = {}
    for table in job.tables:
        path = out / f"{table}.parquet"
        if not path.exists():
            raise SourceError(f"job {job.job_id}: its clean rows of {table} are gone from {out}")
        frames[table] = pq.read_table(path).to_pandas()
    return frames


def quarantine_frame(conn: psycopg2.extensions.connection, job: Job) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(
            """SELECT table_name, source_file, row_number, category, rule, detail, raw_record::text
                 FROM quarantine WHERE run_id = %s ORDER BY table_name, row_number, quarantine_id""",
            (job.run_id,),
        )
        rows = cur.fetchall()
    columns = ["table_name", "source_file", "row_number", "category", "rule", "detail", "raw_record"]
    return pd.DataFrame(rows, columns=columns)


def download(
    settings: Settings, conn: psycopg2.extensions.connection, job: Job, what: str, fmt: str
) -> tuple[str, str, bytes]:
    """(file name, mimetype, bytes) of the job's clean rows or quarantine."""
    if what == "quarantine":
        frame = quarantine_frame(conn, job)
        return f"{job.job_id}-quarantine.{fmt}", _mimetype(fmt), _encode(frame, fmt)
    frames = clean_frames(settings, job)
    if len(frames) == 1:
        ((table, frame),) = frames.items()
        return f"{job.job_id}-{table}.{fmt}", _mimetype(fmt), _encode(frame, fmt)
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as archive:
        for table, frame in frames.items():
            archive.writestr(f"{table}.{fmt}", _encode(frame, fmt))
        archive.writestr("job.json", json.dumps(job.to_dict(), indent=2))
    return f"{job.job_id}-clean-{fmt}.zip", "application/zip", sink.getvalue()


def _mimetype(fmt: str) -> str:
    return "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"


def loaded_days(settings: Settings, job: Job) -> tuple[str, str] | None:
    """The first and last São Paulo purchase day of the orders the job loaded (the dashboard link)."""
    orders = next(s for s in ALL_TABLES if s.role == "orders")  # the dated table the dashboards filter by
    path = staging.clean_dir(settings, job.run_id) / f"{orders.name}.parquet"
    if orders.name not in job.tables or not path.exists() or orders.event_time is None:
        return None
    column = pq.read_table(path, columns=[orders.event_time.column]).column(0).to_pandas()
    if column.empty:
        return None
    local = column.dt.tz_convert(settings.source_timezone)
    return local.min().strftime("%Y-%m-%d"), local.max().strftime("%Y-%m-%d")
