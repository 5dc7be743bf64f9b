"""``etl jobs worker``: take queued jobs from the warehouse and run each through the pipeline.

One process, one job at a time; start as many as the machine allows (each
takes a different job: ``queue.take`` skips locked rows). A job's files are
verified against their checksums, then loaded by ``run_pipeline`` (every
stage, the quality gate and validation included) under the run id ``job-<id>``
with no configured sources. Tables the upload does not hold get a header-only
file, so they read nothing and the upload's rows resolve their references
against the warehouse. The job row gets
the run's counts and overall quality score, or the error line.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

from etl.errors import EtlError
from etl.jobs import drop, queue
from etl.run.stages import run_pipeline
from etl.settings import Settings
from etl.warehouse import connection as db
from etl.warehouse import schema

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(settings: Settings, job: queue.Job) -> tuple[str, dict, str | None]:
    """Load one job's files; (status, counts, error line). Never raises for the job's own failure."""
    folder = drop.job_dir(settings.jobs_drop_dir, job.job_id)
    try:
        drop.complete(settings.jobs_drop_dir, job.job_id)  # verifies the checksums first
        run_pipeline(drop.run_settings(settings, folder), data_dir=folder, run_id=job.run_id)
    except EtlError as exc:
        status, error = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - the worker survives a bug in one job, and says so
        log.exception("job %s failed unexpectedly", job.job_id)
        status, error = "failed", f"internal error ({type(exc).__name__}: {exc}); see the worker's log"
    else:
        status, error = "succeeded", None
    conn = db.connect(settings.database_url, settings.connect_timeout)
    try:
        counts = queue.run_counts(conn, job.run_id)
        queue.finish(conn, job.job_id, status, counts, error)
    finally:
        conn.close()
    return status, counts, error


def work(
    settings: Settings,
    *,
    once: bool = False,
    poll_seconds: float = 2.0,
    stop: Callable[[], bool] = lambda: False,
    announce: Callable[[str], None] = print,
) -> int:
    """Take and run jobs until ``stop()`` (or, with ``once``, until the queue is empty); jobs run."""
    name = worker_name()
    done = 0
    conn = db.connect(settings.database_url, settings.connect_timeout)
    try:  # the jobs table comes with the schema: `etl db init` migrates, a worker never does
        schema.require_current(conn)
    finally:
        conn.close()
    announce(f"worker {name}: taking jobs from {db.describe_url(settings.database_url)}")
    while not stop():
        conn = db.connect(settings.database_url, settings.connect_timeout)
        try:
            job = queue.take(conn, name)
        finally:
            conn.close()
        if job is None:
            if once:
                break
            time.sleep(poll_seconds)
            continue
        announce(f"job {job.job_id}: {job.upload_name} ({', '.join(job.tables)}) as run {job.run_id}")
        status, counts, error = run_job(settings, job)
        done += 1
        announce(
            f"job {job.job_id}: {status}; {counts['rows_read']:,} read, {counts['rows_loaded']:,} loaded, "
            f"{counts['rows_quarantined']:,} quarantined" + (f"; {error}" if error else "")
        )
    return done
