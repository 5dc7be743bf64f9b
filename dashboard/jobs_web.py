"""The upload part of the dashboard: POST a file, follow its job, download its results.

Registered only when ``DASHBOARD_JOBS=1`` (it writes; the rest of the dashboard
only reads) and a token is configured. It talks to the warehouse through its
own login (``DASHBOARD_JOBS_DATABASE_URL``, role ``etl_uploader``: the jobs
table, and the quarantine for a job's page), never the read-only pool.

* ``POST /api/jobs`` (multipart field ``file``; ``Authorization: Bearer <token>``):
  202 with the job, or 4xx with a sentence (etl.jobs.checks) and nothing stored.
* ``GET /api/jobs``, ``GET /api/jobs/<id>``: status and outcome.
* ``GET /api/jobs/<id>/download?what=clean|quarantine&format=csv|parquet``.
* ``/jobs`` (upload form and recent jobs), ``/jobs/<id>`` (summary, quarantine,
  links to the dashboard filtered to what it loaded). Pages ask for the token once
  (``/jobs/login``) and keep it in a signed session cookie.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import Iterator

import psycopg2
from flask import Blueprint, Response, abort, redirect, render_template, request, session, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from dashboard.config import DashboardConfig
from etl.errors import ConfigError
from etl.jobs import checks, queue, results
from etl.jobs.airflow_api import AirflowApi, AirflowApiError
from etl.jobs.submit import submit, sync
from etl.warehouse.connection import describe_url

NAV_ENTRY = ("jobs", "/jobs", "Jobs")
WHAT = ("clean", "quarantine")


def blueprint(config: DashboardConfig, pages: list[tuple[str, str, str]]) -> Blueprint:
    if not config.jobs_token:
        raise ConfigError("DASHBOARD_JOBS=1 needs DASHBOARD_JOBS_TOKEN (the secret uploaders present)")
    settings = config.settings
    url = config.jobs_database_url or settings.database_url
    token = config.jobs_token
    nav = [*pages, NAV_ENTRY]
    airflow = (
        AirflowApi(config.jobs_airflow_url, config.jobs_airflow_user, config.jobs_airflow_password)
        if config.jobs_airflow_url
        else None
    )
    bp = Blueprint("jobs", __name__)

    @bp.record_once
    def _setup(state) -> None:
        app = state.app
        # The session cookie only says "this browser gave the token"; sign it with a key derived from it.
        app.secret_key = app.secret_key or hashlib.sha256(b"etl-jobs-session:" + token.encode()).hexdigest()
        app.config["MAX_CONTENT_LENGTH"] = settings.jobs_max_bytes + 1_000_000  # + multipart framing

    @contextlib.contextmanager
    def connection() -> Iterator[psycopg2.extensions.connection]:
        try:
            conn = psycopg2.connect(
                url, connect_timeout=settings.connect_timeout, application_name="etl-jobs"
            )
        except psycopg2.OperationalError as exc:
            abort(
                503,
                f"the warehouse at {describe_url(url)} is unreachable: {' '.join(str(exc).split())[:200]}",
            )
        try:
            yield conn
        finally:
            conn.close()

    def authorised() -> bool:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if given and hmac.compare_digest(given.encode(), token.encode()):
            return True
        return session.get("jobs_token_hash") == hashlib.sha256(token.encode()).hexdigest()

    @bp.before_request
    def guard():
        if request.endpoint == "jobs.login" or authorised():
            return None
        if request.path.startswith("/api/"):
            return {"error": "send the upload token: Authorization: Bearer <DASHBOARD_JOBS_TOKEN>"}, 401
        return redirect(url_for("jobs.login", next=request.path))

    def job_or_404(conn, job_id: str) -> queue.Job:
        if not job_id.isalnum() or len(job_id) > 40:
            abort(404)
        job = queue.get(conn, job_id)
        if job is None:
            abort(404)
        return sync(conn, job, airflow) if airflow else job

    def accept() -> queue.Job:
        upload = request.files.get("file")
        if upload is None:
            raise checks.UploadRefused(400, "no file: send it as the multipart field 'file'")
        data = upload.read(settings.jobs_max_bytes + 1)
        with connection() as conn:
            return submit(settings, conn, upload.filename or "", data, airflow)

    def links(job: queue.Job) -> dict:
        out = {
            "self": f"/api/jobs/{job.job_id}",
            "page": f"/jobs/{job.job_id}",
            "exceptions": f"/controls/exceptions?run_id={job.run_id}",
            "audit": f"/controls/audit?run_id={job.run_id}",
        }
        if job.status == "succeeded":
            out["clean_csv"] = f"/api/jobs/{job.job_id}/download?what=clean&format=csv"
            out["quarantine_csv"] = f"/api/jobs/{job.job_id}/download?what=quarantine&format=csv"
            days = results.loaded_days(settings, job)
            if days:
                out["dashboard"] = f"/sales?start={days[0]}&end={days[1]}"
        return out

    # --- API ---------------------------------------------------------------------------
    @bp.post("/api/jobs")
    def create():
        job = accept()
        return {"job": job.to_dict(), "links": links(job)}, 202, {"Location": f"/api/jobs/{job.job_id}"}

    @bp.get("/api/jobs")
    def index():
        with connection() as conn:
            jobs = [sync(conn, j, airflow) if airflow else j for j in queue.recent(conn)]
            return {"jobs": [j.to_dict() for j in jobs]}

    @bp.get("/api/jobs/<job_id>")
    def show(job_id: str):
        with connection() as conn:
            job = job_or_404(conn, job_id)
        return {"job": job.to_dict(), "links": links(job)}

    @bp.get("/api/jobs/<job_id>/download")
    def download(job_id: str):
        what, fmt = request.args.get("what", "clean"), request.args.get("format", "csv")
        if what not in WHAT or fmt not in results.FORMATS:
            return {"error": "what must be clean or quarantine, format csv or parquet"}, 400
        with connection() as conn:
            job = job_or_404(conn, job_id)
            if job.status != "succeeded":
                return {"error": f"job {job_id} is {job.status}; results exist once it succeeded"}, 409
            name, mimetype, body = results.download(settings, conn, job, what, fmt)
        return Response(
            body, mimetype=mimetype, headers={"Content-Disposition": f"attachment; filename={name}"}
        )

    # --- pages -------------------------------------------------------------------------
    @bp.route("/jobs/login", methods=["GET", "POST"])
    def login():
        error = None
        if request.method == "POST":
            given = request.form.get("token", "")
            if hmac.compare_digest(given.encode(), token.encode()):
                session["jobs_token_hash"] = hashlib.sha256(token.encode()).hexdigest()
                target = request.args.get("next", "/jobs")
                return redirect(target if target.startswith("/jobs") else "/jobs")
            error = "that is not the upload token"
        return render_template("jobs_login.html", pages=nav, allowed=(), fallback=None, error=error), (
            401 if error else 200
        )

    @bp.route("/jobs", methods=["GET", "POST"])
    def jobs_page():
        if request.method == "POST":
            job = accept()
            return redirect(url_for("jobs.job_page", job_id=job.job_id))
        with connection() as conn:
            recent = queue.recent(conn)
        return render_template(
            "jobs.html", pages=nav, allowed=(), fallback=None, jobs=recent, max_bytes=settings.jobs_max_bytes
        )

    @bp.get("/jobs/<job_id>")
    def job_page(job_id: str):
        with connection() as conn:
            job = job_or_404(conn, job_id)
            quarantined = results.quarantine_frame(conn, job).head(100).to_dict("records")
        return render_template(
            "job.html",
            pages=nav,
            allowed=(),
            fallback=None,
            job=job,
            links=links(job),
            quarantined=quarantined,
        )

    @bp.errorhandler(checks.UploadRefused)
    def refused(exc: checks.UploadRefused):
        if request.path.startswith("/api/"):
            return {"error": str(exc)}, exc.status
        return render_template(
            "error.html", pages=nav, status=exc.status, title="Upload refused", message=str(exc)
        ), exc.status

    @bp.errorhandler(AirflowApiError)
    def airflow_down(exc: AirflowApiError):
        message = f"the upload was stored, but its job could not start: {exc}"
        if request.path.startswith("/api/"):
            return {"error": message}, 502
        return render_template(
            "error.html", pages=nav, status=502, title="Job not started", message=message
        ), 502

    @bp.errorhandler(RequestEntityTooLarge)
    def too_large(exc):
        message = (
            f"the upload is larger than the limit of {settings.jobs_max_bytes:,} bytes; nothing was stored"
        )
        if request.path.startswith("/api/"):
            return {"error": message}, 413
        return render_template(
            "error.html", pages=nav, status=413, title="Upload refused", message=message
        ), 413

    return bp
