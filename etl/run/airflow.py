"""What the Airflow DAG needs from us, kept out of the DAG file so it stays thin.

* ``run_id_for`` / ``context_run``: each DAG run is keyed by its day, so the
  run id (in ``ingest_audit``, staging paths, ``quality_scores``) is the same
  whenever that day is run again — a rerun or backfill replaces, never adds.
* ``task_settings``: ``Settings`` inside a task. The warehouse is the Airflow
  Connection ``warehouse`` (from the metadata DB, a secrets backend or
  ``AIRFLOW_CONN_WAREHOUSE``); without it, ``DATABASE_URL`` as everywhere else.
  Quality targets (the gate's and validation's thresholds) and the notify
  list can be overridden by Airflow Variables ``etl_dq_target_*`` /
  ``etl_notify_emails``.
* ``failure_notifier``: email through the SMTP provider's ``SmtpNotifier`` on
  the ``smtp_default`` connection; ``deadline_alert``: ``etl.run.deadline``;
  ``chat_failure_alert`` posts the same facts to Slack / Teams webhooks (``etl.run.chat``).

Airflow is imported inside functions only: the ``etl`` package and its CLI
work without it, and parsing the DAG file does no database or network work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2.extensions

from etl import progress
from etl.errors import ConfigError
from etl.jobs import drop
from etl.run import chat, deadline
from etl.run.plan import Run
from etl.settings import DEFAULT_QUALITY_TARGETS, Settings, parse_bool, parse_list

log = logging.getLogger(__name__)

DAG_ID = "etl_pipeline"
WAREHOUSE_CONN_ID = "warehouse"
SMTP_CONN_ID = "smtp_default"
#: Airflow Connections holding the chat webhooks (extra ``webhook_url``, or the password / host).
CHAT_CONN_IDS = {"slack": "slack_alerts", "teams": "teams_alerts"}
DEADLINE = deadline.DEADLINE
#: libpq parameters that may ride in a connection's extra (others are Airflow's own).
LIBPQ_EXTRAS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "options",
    "target_session_attrs",
    "application_name",
    "keepalives",
    "keepalives_idle",
    "connect_timeout",
)


def existing_folder(raw: str) -> Path:
    """The ``etl_data_dir`` Variable's folder; a missing one is named before any stage runs.

    Checked here so the failure email names the Variable (the cause), not the
    CLI's ``--data-dir`` that the ingest's own message suggests.
    """
    path = Path(str(raw).strip())
    if not path.is_dir():
        raise ValueError(
            "no such folder; set it to the folder of the Olist CSV files, or delete the "
            "Variable to use ETL_DATA_DIR"
        )
    return path


#: Airflow Variable -> (Settings field, parser). Unset variables keep the Settings value.
VARIABLES = {
    "etl_validate_require_quality_scores": ("validate_require_quality_scores", parse_bool),
    "etl_notify_emails": ("notify_emails", parse_list),
    "etl_data_dir": ("data_dir", existing_folder),
}
#: Airflow Variable -> quality target (the gate's and validation's one set of thresholds).
TARGET_VARIABLES = {f"etl_dq_target_{name}": name for name in DEFAULT_QUALITY_TARGETS}


FAILURE_SUBJECT = (
    "[etl_pipeline] {{ ti.task_id }}{% if ti.map_index is not none and ti.map_index >= 0 %}"
    "[{{ ti.map_index }}]{% endif %} failed for "
    "{{ (dag_run.logical_date or dag_run.run_after).strftime('%Y-%m-%d') }} "
    "(try {{ ti.try_number }})"
)
FAILURE_BODY = """<p>Task <b>{{ ti.task_id }}</b> of run <b>{{ ti.run_id }}</b> failed on try
{{ ti.try_number }} of {{ ti.max_tries + 1 }}; no more retries.</p>
<p>Error:</p><pre>{{ exception | string | e }}</pre>
<p>Log: <a href="{{ ti.log_url }}">{{ ti.log_url }}</a></p>
<p>Rerunning the day is safe: it replaces that day's run, it never adds to it
(clear the task in the UI, or <code>airflow tasks clear etl_pipeline</code>).</p>"""
# --- run identity ---------------------------------------------------------------------


def run_id_for(day: date | datetime) -> str:
    """The run id of a day: the same for every rerun or backfill of that day."""
    if isinstance(day, datetime):
        day = (day.astimezone(UTC) if day.tzinfo else day).date()
    return f"daily-{day:%Y-%m-%d}"


def run_day(dag_run: Any) -> datetime:
    """The moment a DAG run stands for: its logical date, or (manual runs) when it was asked for."""
    moment = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
    if moment is None:
        raise ConfigError("the DAG run has neither a logical date nor run_after")
    return moment


def job_conf(context: Mapping[str, Any]) -> dict | None:
    """The uploaded job a DAG run was triggered for (``conf``: job_id, run_id, data_dir), if any."""
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    return conf if conf.get("job_id") and conf.get("run_id") and conf.get("data_dir") else None


def context_run(context: Mapping[str, Any]) -> tuple[str, tuple[str, str]]:
    """(run id, data interval as ISO strings) of the current task's DAG run.

    A run triggered for an uploaded job (etl.jobs.airflow_api) is that job's run.
    """
    moment = run_day(context["dag_run"])
    start = context.get("data_interval_start") or moment
    end = context.get("data_interval_end") or moment
    job = job_conf(context)
    return (job["run_id"] if job else run_id_for(moment)), (start.isoformat(), end.isoformat())


def job_settings(settings: Settings, job: dict) -> Settings:
    """A job's run reads its drop folder (checksums verified) and no sources.yml source."""
    folder = Path(job["data_dir"])
    drop.verify(folder.parent, job["job_id"])
    return drop.run_settings(settings, folder)


# --- settings inside a task -----------------------------------------------------------


def connection_url(conn: Any) -> str:
    """A libpq URL from an Airflow Connection (host, port, login, password, schema = database)."""
    params = {
        "host": conn.host or "127.0.0.1",
        "port": str(conn.port or 5432),
        "user": conn.login or None,
        "password": conn.password or None,
        "dbname": conn.schema or "warehouse",
    }
    extra = conn.extra_dejson if getattr(conn, "extra", None) else {}
    params.update({k: str(v) for k, v in extra.items() if k in LIBPQ_EXTRAS})
    return psycopg2.extensions.make_dsn(**{k: v for k, v in params.items() if v is not None})


def warehouse_url_from_airflow(conn_id: str = WAREHOUSE_CONN_ID) -> str | None:
    """The ``warehouse`` connection's URL, or None when Airflow has no such connection."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        return None
    return connection_url(conn)


def apply_variables(settings: Settings, variables: Mapping[str, str | None]) -> Settings:
    """Settings with every set Airflow Variable applied (unset ones keep the env/default value)."""
    changes: dict[str, Any] = {}
    for name, (field_name, parse) in VARIABLES.items():
        raw = variables.get(name)
        if raw is None or str(raw).strip() == "":
            continue
        try:
            changes[field_name] = parse(raw) if parse else type(getattr(settings, field_name))(raw)
        except (ValueError, ConfigError) as exc:
            raise ConfigError(f"Airflow Variable {name}={raw!r} is not valid: {exc}") from exc
    targets = dict(settings.quality_targets)
    for name, target in TARGET_VARIABLES.items():
        raw = variables.get(name)
        if raw is None or str(raw).strip() == "":
            continue
        try:
            targets[target] = float(raw)
        except ValueError as exc:
            raise ConfigError(f"Airflow Variable {name}={raw!r} is not a number") from exc
    if targets != dict(settings.quality_targets):
        changes["quality_targets"] = targets
    return settings.with_overrides(**changes) if changes else settings


def task_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings for a task: env, then the ``warehouse`` connection, then Airflow Variables."""
    from airflow.sdk import Variable

    settings = Settings.from_env(env)
    url = warehouse_url_from_airflow()
    if url:
        settings = settings.with_overrides(database_url=url, database_url_explicit=True)
    else:
        log.info("no Airflow connection %r; using DATABASE_URL", WAREHOUSE_CONN_ID)
    names = [*VARIABLES, *TARGET_VARIABLES]
    return apply_variables(settings, {name: Variable.get(name, default=None) for name in names})


def current() -> tuple[Settings, str, tuple[str, str]]:
    """(settings, run id, data interval) for the task that is running now."""
    from airflow.sdk import get_current_context

    run_id, interval = context_run(get_current_context())
    progress.install(progress.for_log(logging.getLogger("etl.progress")))  # plain lines in the task log
    return task_settings(), run_id, interval


def elapsed_since_start(dag_run: Any) -> Callable[[], float | None]:
    """Seconds since the DAG run started (None under ``dags test``, which dates it at the logical date)."""

    def elapsed() -> float | None:
        started, asked = getattr(dag_run, "start_date", None), getattr(dag_run, "run_after", None)
        if not started or not asked or started < asked:
            return None
        return (datetime.now(UTC) - started).total_seconds()

    return elapsed


def current_run() -> Run:
    """The ``Run`` a stage is handed inside the task that is running now."""
    from airflow.sdk import get_current_context

    context = get_current_context()
    run_id, _ = context_run(context)
    progress.install(progress.for_log(logging.getLogger("etl.progress")))  # plain lines in the task log
    settings = task_settings()
    job = job_conf(context)
    if job:
        settings = job_settings(settings, job)
    return Run(settings, run_id, send=smtp_sender(), elapsed=elapsed_since_start(context["dag_run"]))


# --- mail -----------------------------------------------------------------------------


def smtp_sender(conn_id: str = SMTP_CONN_ID):
    """A ``notify.Sender`` that mails through an Airflow SMTP connection."""

    def send(recipients: Sequence[str], subject: str, html_body: str) -> None:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        with SmtpHook(smtp_conn_id=conn_id) as hook:
            hook.send_email_smtp(
                to=list(recipients),
                subject=subject,
                html_content=html_body,
                from_email=hook.from_email or "etl_pipeline@localhost",
            )

    return send


def failure_notifier(recipients: Sequence[str]):
    """One email per failed task, after its final try (Airflow calls it only then)."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    return SmtpNotifier(
        to=list(recipients),
        from_email="etl_pipeline@localhost",
        subject=FAILURE_SUBJECT,
        html_content=FAILURE_BODY,
        smtp_conn_id=SMTP_CONN_ID,
    )


def webhook_from_connection(conn: Any) -> str:
    """A webhook URL kept in a Connection: extra ``webhook_url``, else a URL-shaped password or host."""
    extra = conn.extra_dejson if getattr(conn, "extra", None) else {}
    for candidate in (extra.get("webhook_url"), conn.password, conn.host):
        if candidate and str(candidate).startswith(("https://", "http://")):
            return str(candidate)
    return ""


def chat_webhooks(settings: Settings) -> dict[str, str]:
    """{"slack": url, "teams": url}: the Airflow Connection if there is one, else the environment."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    urls = {"slack": settings.slack_webhook_url, "teams": settings.teams_webhook_url}
    for service, conn_id in CHAT_CONN_IDS.items():
        try:
            url = webhook_from_connection(Connection.get(conn_id))
        except AirflowNotFoundException:
            continue
        if url:
            urls[service] = url
        else:
            log.warning("Airflow connection %s holds no webhook URL (extra webhook_url)", conn_id)
    return {service: url for service, url in urls.items() if url}


def failure_facts(context: Mapping[str, Any]) -> chat.FailureFacts:
    """The failure email's facts, from a task's callback context."""
    ti = context["ti"]
    dag_run = context.get("dag_run")
    day = run_day(dag_run).strftime("%Y-%m-%d") if dag_run is not None else "?"
    map_index = getattr(ti, "map_index", None)
    return chat.FailureFacts(
        dag_id=getattr(ti, "dag_id", DAG_ID),
        task_id=ti.task_id,
        run_id=ti.run_id,
        day=day,
        try_number=int(ti.try_number),
        max_tries=int(getattr(ti, "max_tries", 0)) + 1,
        error_line=chat.error_line(context.get("exception")),
        log_url=getattr(ti, "log_url", None),
        map_index=map_index if isinstance(map_index, int) else None,
    )


def chat_failure_alert(context: Mapping[str, Any]) -> None:
    """``on_failure_callback``: the failure alert to Slack and Teams (webhooks read at failure time)."""
    try:
        facts = failure_facts(context)
        chat.send_failure(facts, chat_webhooks(Settings.from_env()))
    except Exception:  # an alert must never mask the failure it reports
        log.exception("could not send the chat failure alert")


def under_dags_test(argv: Sequence[str]) -> bool:
    """True when the DAG file is being parsed by ``airflow dags test``.

    Airflow 3.3.2's ``dags test`` crashes *after* a successful run of a DAG that has
    a deadline (``DagRun.update_state`` looks the alerts up by id but gets the
    un-serialized objects: ``'dict' object has no attribute 'hex'``). A one-off test
    run has no triggerer to fire a deadline anyway, so the DAG leaves it out there.
    """
    args = [a for a in argv[1:] if not a.startswith("-")]
    if not argv:
        return False
    program = Path(argv[0])
    is_airflow = program.name.startswith("airflow") or program.parent.name == "airflow"
    return is_airflow and args[:2] == ["dags", "test"]


def deadline_alert(recipients: Sequence[str], after: timedelta = DEADLINE):
    """Airflow 3's replacement for SLAs: email when a run is unfinished ``after`` queueing (2 h).

    Declared in ``etl.run.deadline`` (why the interval is seconds and the callback ours).
    """
    return deadline.deadline_alert(recipients, SMTP_CONN_ID, after)
