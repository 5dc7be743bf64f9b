"""Accept an upload as a job: check it, store it in the drop, queue it -- all or nothing.

The order matters for "nothing half-stored": the checks run on the bytes in
memory; the files are written to the drop under a temporary name and renamed;
the job row is inserted last, and if that fails the folder is removed again.
A worker (or Airflow) only ever sees complete folders with a committed row.
"""

from __future__ import annotations

import hashlib
import uuid

import psycopg2.extensions

from etl.jobs import checks, drop, queue
from etl.settings import Settings


def submit(
    settings: Settings, conn: psycopg2.extensions.connection, upload_name: str, data: bytes
) -> queue.Job:
    """A new queued job for ``data`` (raises checks.UploadRefused with a status and a sentence)."""
    files = checks.check_upload(upload_name, data, settings.jobs_max_bytes)
    job_id = uuid.uuid4().hex[:16]
    job = queue.Job(
        job_id=job_id,
        status="queued",
        upload_name=upload_name,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        tables=[f.spec.name for f in files],
        run_id=queue.run_id_for(job_id),
    )
    drop.store(settings.jobs_drop_dir, job_id, upload_name, files)
    try:
        with conn:
            queue.create(conn, job)
    except BaseException:
        drop.remove(settings.jobs_drop_dir, job_id)
        raise
    return job
