"""etl_pipeline: the warehouse ETL, daily at 02:00 UTC.

    list_sources -> ingest[per source] -> transform -> load -> refresh_aggregates -> validate -> notify

Each task calls one ``etl`` function and hands on only small XComs (counts,
names, paths); the data itself moves as files under the staging directory.
A run is keyed by its day (run id ``daily-YYYY-MM-DD``), so a rerun or a
backfill of a day replaces that day's run and never doubles anything.

A task failing after its last try emails the alert list (``ETL_ALERT_EMAILS``)
through the ``smtp_default`` connection and posts to the Slack / Teams webhooks
(connections ``slack_alerts`` / ``teams_alerts`` or ``ETL_SLACK_WEBHOOK_URL`` /
``ETL_TEAMS_WEBHOOK_URL``) when configured. A run still unfinished 2 h after it
was queued is emailed too. See docs/airflow.md.

Parsing this file does no database or network work: the heavy ``etl`` modules
are imported inside the tasks.
"""

from __future__ import annotations

import sys
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from etl.run import airflow as orch
from etl.settings import Settings

ALERTS = Settings.from_env().alert_emails  # environment only: no DB/network at parse time

default_args = {
    "owner": "data-engineering",
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": False,
    "execution_timeout": timedelta(minutes=30),
    "on_failure_callback": [orch.failure_notifier(ALERTS), orch.chat_failure_alert],
}


@dag(
    dag_id=orch.DAG_ID,
    schedule=CronTriggerTimetable("0 2 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2016, 9, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # runs merge into the same tables: one at a time
    default_args=default_args,
    # Left out only under `airflow dags test`, which crashes on deadlines (docs/airflow.md).
    deadline=None if orch.under_dags_test(sys.argv) else orch.deadline_alert(ALERTS),
    tags=["etl", "warehouse"],
    doc_md=__doc__,
)
def etl_pipeline():
    @task(execution_timeout=timedelta(minutes=2))
    def list_sources() -> list[dict]:
        from etl.run.pipeline import list_sources as configured_sources

        settings, _, _ = orch.current()
        return configured_sources(settings)

    @task(execution_timeout=timedelta(minutes=30), map_index_template="{{ source_name }}")
    def ingest(source: dict) -> dict:
        from airflow.sdk import get_current_context

        from etl.run.pipeline import ingest_source

        get_current_context()["source_name"] = source["name"]  # names the mapped task in the UI
        settings, run_id, interval = orch.current()
        return ingest_source(settings, run_id, source, interval)

    @task(execution_timeout=timedelta(minutes=45))
    def transform(ingested: list[dict]) -> dict:
        from etl.run.pipeline import ingest_stage, transform_stage

        settings, run_id, _ = orch.current()
        # Combine what the mapped ingest tasks staged with the Olist files not
        # loaded before (archived now), then clean it all.
        ingest_stage(settings, run_id)
        meta = transform_stage(settings, run_id)
        return {
            "run_id": run_id,
            "sources": [i["source"] for i in ingested],
            "tables": len(meta["tables"]),
            "rows_clean": sum(t["rows_loaded"] for t in meta["tables"]),
            "rows_quarantined": sum(t["rows_quarantined"] for t in meta["tables"]),
        }

    @task(execution_timeout=timedelta(minutes=45))
    def load(transformed: dict) -> dict:
        from etl.run.pipeline import load_stage

        settings, run_id, _ = orch.current()
        tables = load_stage(settings, run_id)
        return {
            "run_id": run_id,
            "tables": len(tables),
            "rows_loaded": sum(t.rows_loaded for t in tables),
            "rows_written": sum(t.rows_written for t in tables),
        }

    @task(execution_timeout=timedelta(minutes=30))
    def refresh_aggregates(loaded: dict) -> dict:
        from etl.run.pipeline import refresh_aggregates_stage

        settings, run_id, _ = orch.current()
        return refresh_aggregates_stage(settings, run_id)

    @task(execution_timeout=timedelta(minutes=15))
    def validate(refreshed: dict) -> dict:
        from etl.run.validate import validate_stage

        settings, run_id, _ = orch.current()
        return validate_stage(settings, run_id)

    @task(execution_timeout=timedelta(minutes=5))
    def notify(validated: dict) -> dict:
        from airflow.sdk import get_current_context

        from etl.run.notify import notify_stage

        settings, run_id, _ = orch.current()
        dag_run = get_current_context()["dag_run"]
        # `dags test` dates start_date at the logical date; then the audit's span is used.
        real = dag_run.start_date and dag_run.run_after and dag_run.start_date >= dag_run.run_after
        seconds = (pendulum.now("UTC") - dag_run.start_date).total_seconds() if real else None
        return notify_stage(settings, run_id, orch.smtp_sender(), seconds)

    notify(validate(refresh_aggregates(load(transform(ingest.expand(source=list_sources()))))))


etl_pipeline()
