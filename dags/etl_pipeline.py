"""etl_pipeline: the warehouse ETL, daily at 02:00 UTC.

    setup -> list_sources -> ingest[per source] -> transform -> quality_gate -> load
          -> refresh_aggregates -> validate -> notify

One task per stage of ``etl.run.plan.PLAN`` — the same stages, in the same
order, that ``etl run`` runs in one process — with the ingest stage fanned out
into one mapped task per source. Each task hands on only small XComs (counts,
names); the data itself moves as files under the staging directory. A run is
keyed by its day (run id ``daily-YYYY-MM-DD``), so a rerun or a backfill of a
day replaces that day's run and never doubles anything.

A task failing after its last try emails the alert list (``ETL_ALERT_EMAILS``)
through the ``smtp_default`` connection and posts to the Slack / Teams webhooks
(connections ``slack_alerts`` / ``teams_alerts`` or ``ETL_SLACK_WEBHOOK_URL`` /
``ETL_TEAMS_WEBHOOK_URL``) when configured. A run still unfinished 2 h after it
was queued is emailed too. See docs/airflow.md.

Parsing this file does no database or network work and imports no pandas: the
stages' modules are imported inside the tasks.
"""

from __future__ import annotations

import sys
from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task
from airflow.timetables.trigger import CronTriggerTimetable

from etl.run import airflow as orch
from etl.run import lineage
from etl.run.plan import PLAN
from etl.settings import Settings

PARSE_SETTINGS = Settings.from_env()  # environment only: no DB/network at parse time
ALERTS = PARSE_SETTINGS.alert_emails

default_args = {
    "owner": "data-engineering",
    "retries": PARSE_SETTINGS.airflow_retries,  # 2 unless ETL_AIRFLOW_RETRIES says otherwise
    "retry_delay": timedelta(seconds=PARSE_SETTINGS.airflow_retry_delay_seconds),  # 5 min
    "retry_exponential_backoff": False,
    "execution_timeout": timedelta(minutes=30),
    "on_failure_callback": [orch.failure_notifier(ALERTS), orch.chat_failure_alert],
}


def run_stage(name: str, item: dict | None = None):
    """Run one planned stage for the current DAG run (``etl.run.stages.run_task``)."""
    from etl.run import stages  # the stages' heavy modules load when a task runs, not at parse time

    run = orch.current_run()
    result = stages.run_task(name, run, item)
    lineage.report(name, run.settings, run.run_id)  # OpenLineage inputs/outputs; a no-op without it
    return result


def list_items(name: str) -> list[dict]:
    """The items a fan-out stage runs over (the sources of this run)."""
    from etl.run import stages  # as above: not at parse time

    return stages.STAGES_BY_NAME[name].items(orch.current_run().settings)


@dag(
    dag_id=orch.DAG_ID,
    schedule=CronTriggerTimetable("0 2 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2016, 9, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # runs merge into the same tables: one at a time
    default_args=default_args,
    # Left out only under `airflow dags test`, which crashes on deadlines (docs/airflow.md).
    deadline=None
    if orch.under_dags_test(sys.argv)
    else orch.deadline_alert(ALERTS, timedelta(seconds=PARSE_SETTINGS.airflow_deadline_seconds)),
    tags=["etl", "warehouse"],
    doc_md=__doc__,
)
def etl_pipeline():
    upstream = None
    for plan in PLAN:
        if plan.fans_out:

            @task(task_id="list_sources", execution_timeout=timedelta(minutes=2))
            def list_sources(_previous=None, name: str = plan.name) -> list[dict]:
                return list_items(name)

            @task(task_id=plan.name, execution_timeout=plan.timeout, map_index_template="{{ source_name }}")
            def fan_out(source: dict, name: str = plan.name) -> dict:
                get_current_context()["source_name"] = source["name"]  # names the mapped task in the UI
                return run_stage(name, source)

            upstream = fan_out.expand(source=list_sources(upstream))
        else:
            # load's outlets: one Asset per warehouse table (etl.run.lineage), for other DAGs to schedule on.
            @task(task_id=plan.name, execution_timeout=plan.timeout, outlets=lineage.outlets(plan.name))
            def stage(_previous=None, name: str = plan.name) -> dict:
                return run_stage(name)

            upstream = stage(upstream)


etl_pipeline()
