"""The ``jobs`` table: queue a job, take the oldest queued one, record how it ended.

Taking is one statement: ``UPDATE ... WHERE job_id = (SELECT ... FOR UPDATE
SKIP LOCKED LIMIT 1) RETURNING``, so any number of workers can poll the same
table and each job is taken by exactly one of them, without a scheduler of our
own. The table lives in the warehouse, so jobs and their outcomes survive
restarts of the dashboard and of the workers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg2.extensions

COLUMNS = (
    "job_id",
    "status",
    "upload_name",
    "bytes",
    "sha256",
    "tables",
    "run_id",
    "executor",
    "airflow_dag_run_id",
    "worker",
    "attempts",
    "rows_read",
    "rows_loaded",
    "rows_quarantined",
    "quality_overall",
    "error",
    "created_at",
    "started_at",
    "finished_at",
)
_SELECT = "SELECT " + ", ".join(COLUMNS) + " FROM jobs"


@dataclass
class Job:
    job_id: str
    status: str
    upload_name: str
    bytes: int
    sha256: str
    tables: list[str]
    run_id: str
    executor: str = "worker"
    airflow_dag_run_id: str | None = None
    worker: str | None = None
    attempts: int = 0
    rows_read: int | None = None
    rows_loaded: int | None = None
    rows_quarantined: int | None = None
    quality_overall: float | None = None
    error: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
            elif isinstance(value, Decimal):
                out[key] = float(value)
        return out


def _job(row: tuple) -> Job:
    return Job(*row)


def run_id_for(job_id: str) -> str:
    return f"job-{job_id}"


def create(conn: psycopg2.extensions.connection, job: Job) -> None:
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO jobs (job_id, status, upload_name, bytes, sha256, tables, run_id, executor)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
            (
                job.job_id,
                job.status,
                job.upload_name,
                job.bytes,
                job.sha256,
                job.tables,
                job.run_id,
                job.executor,
            ),
        )


def get(conn: psycopg2.extensions.connection, job_id: str) -> Job | None:
    with conn.cursor() as cur:
        cur.execute(_SELECT + " WHERE job_id = %s", (job_id,))
        row = cur.fetchone()
    return _job(row) if row else None


def recent(conn: psycopg2.extensions.connection, limit: int = 50) -> list[Job]:
    with conn.cursor() as cur:
        cur.execute(_SELECT + " ORDER BY created_at DESC, job_id LIMIT %s", (limit,))
        return [_job(r) for r in cur.fetchall()]


def take(conn: psycopg2.extensions.connection, worker: str) -> Job | None:
    """Mark the oldest queued worker job running for ``worker`` and return it (None: queue empty)."""
    with conn, conn.cursor() as cur:
        cur.execute(
            f"""UPDATE jobs SET status = 'running', started_at = now(), worker = %s, attempts = attempts + 1
                 WHERE job_id = (SELECT job_id FROM jobs WHERE status = 'queued' AND executor = 'worker'
                                  ORDER BY created_at, job_id FOR UPDATE SKIP LOCKED LIMIT 1)
             RETURNING {", ".join(COLUMNS)}""",
            (worker,),
        )
        row = cur.fetchone()
    return _job(row) if row else None


def finish(
    conn: psycopg2.extensions.connection,
    job_id: str,
    status: str,
    counts: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    counts = counts or {}
    with conn, conn.cursor() as cur:
        cur.execute(
            """UPDATE jobs SET status = %s, finished_at = now(), error = %s, rows_read = %s, rows_loaded = %s,
                      rows_quarantined = %s, quality_overall = %s
                WHERE job_id = %s""",
            (
                status,
                error,
                counts.get("rows_read"),
                counts.get("rows_loaded"),
                counts.get("rows_quarantined"),
                counts.get("quality_overall"),
                job_id,
            ),
        )


def run_counts(conn: psycopg2.extensions.connection, run_id: str) -> dict[str, Any]:
    """What the warehouse recorded for a job's run: rows (ingest_audit) and the overall score."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT sum(rows_read), sum(rows_loaded), sum(rows_quarantined) FROM ingest_audit WHERE run_id = %s",
            (run_id,),
        )
        read, loaded, quarantined = cur.fetchone()
        cur.execute(
            "SELECT score FROM quality_scores WHERE run_id = %s AND table_name = '_overall' AND dimension = 'overall'",
            (run_id,),
        )
        score = cur.fetchone()
    return {
        "rows_read": int(read or 0),
        "rows_loaded": int(loaded or 0),
        "rows_quarantined": int(quarantined or 0),
        "quality_overall": float(score[0]) if score else None,
    }


def set_dag_run(conn: psycopg2.extensions.connection, job_id: str, dag_run_id: str) -> None:
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE jobs SET airflow_dag_run_id = %s WHERE job_id = %s", (dag_run_id, job_id))


def mark_running(conn: psycopg2.extensions.connection, job_id: str, worker: str) -> None:
    with conn, conn.cursor() as cur:
        cur.execute(
            """UPDATE jobs SET status = 'running', started_at = coalesce(started_at, now()), worker = %s
                WHERE job_id = %s AND status = 'queued'""",
            (worker, job_id),
        )
