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
from etl.jobs.airflow_api import AirflowApi, AirflowApiError
from etl.settings import Settings


def submit(
    settings: Settings,
    conn: psycopg2.extensions.connection,
    upload_name: str,
    data: bytes,
    airflow: AirflowApi | None = None,
) -> queue.Job:
    """A new queued job for ``data`` (raises checks.UploadRefused with a status and a sentence).

    With ``airflow`` the job is triggered as a DAG run of etl_pipeline at once;
    if Airflow refuses, the job is recorded as failed with that sentence and
    AirflowApiError is raised (the upload itself was fine and stays in the drop).
    """
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
        executor="airflow" if airflow else "worker",
    )
    drop.store(settings.jobs_drop_dir, job_id, upload_name, files)
    try:
        with conn:
            queue.create(conn, job)
    except BaseException:
        drop.remove(settings.jobs_drop_dir, job_id)
        raise
    if airflow is not None:
        folder = drop.complete(settings.jobs_drop_dir, job_id)
        conf = {
            "job_id": job_id,
            "run_id": job.run_id,
            "data_dir": str(folder),
            "files": drop.verify(settings.jobs_drop_dir, job_id)["files"],
        }
        try:
            job.airflow_dag_run_id = airflow.trigger(f"job__{job_id}", conf)
        except AirflowApiError as exc:
            queue.finish(conn, job_id, "failed", None, str(exc))
            raise
        queue.set_dag_run(conn, job_id, job.airflow_dag_run_id)
    return job


def sync(conn: psycopg2.extensions.connection, job: queue.Job, airflow: AirflowApi) -> queue.Job:
    """An Airflow job's status read back from its DAG run (final: counts from the warehouse)."""
    if job.executor != "airflow" or job.status not in ("queued", "running") or not job.airflow_dag_run_id:
        return job
    status = airflow.state(job.airflow_dag_run_id)
    if status == "running":
        queue.mark_running(conn, job.job_id, f"airflow:{job.airflow_dag_run_id}")
    elif status in ("succeeded", "failed"):
        error = (
            None
            if status == "succeeded"
            else f"Airflow DAG run {job.airflow_dag_run_id} failed; see its task logs"
        )
        queue.finish(conn, job.job_id, status, queue.run_counts(conn, job.run_id), error)
    return queue.get(conn, job.job_id) or job
