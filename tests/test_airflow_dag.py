"""The etl_pipeline DAG under real Airflow 3: parse, run with dag.test(), fail, email, rerun.

Airflow's metadata DB is SQLite in a temporary AIRFLOW_HOME, set before Airflow
is imported (Airflow reads its config once, at import). The warehouse is a
throwaway PostgreSQL database reached through the ``warehouse`` connection
(AIRFLOW_CONN_WAREHOUSE) while DATABASE_URL points nowhere, so these tests
also prove the connection is what the tasks use.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy

import pandas as pd
import pytest

from etl.settings import PROJECT_ROOT
from etl.warehouse import connection as db
from tests.conftest import AIRFLOW_TEST_HOME, query, scalar

DAGS = PROJECT_ROOT / "dags"
_HOME = AIRFLOW_TEST_HOME  # set by tests/conftest.py before anything imported Airflow
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"

NOWHERE = "postgresql://postgres@127.0.0.1:1/nowhere"
TASK_ORDER = [
    "setup",
    "list_sources",
    "ingest",
    "transform",
    "quality_gate",
    "load",
    "refresh_aggregates",
    "validate",
    "notify",
]
WAREHOUSE_TABLES = [
    "category_translation",
    "dim_geolocation",
    "dim_customers",
    "dim_products",
    "dim_sellers",
    "dim_dates",
    "fact_orders",
    "fact_order_items",
    "fact_payments",
    "fact_reviews",
]


@pytest.fixture(scope="module")
def airflow_db():
    """Airflow's own tables, in the temporary AIRFLOW_HOME's SQLite file (~5 s)."""
    from airflow.utils.db import resetdb

    resetdb(skip_init=False)
    yield _HOME


def warehouse_conn(settings) -> str:
    params = db.parse_url(settings.database_url)
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": params.get("host", "127.0.0.1"),
            "port": int(params.get("port", 5432)),
            "login": params.get("user", "postgres"),
            "schema": params["dbname"],
        }
    )


@pytest.fixture
def dag_env(monkeypatch, fresh_db, sample_dir, tmp_path):
    """Environment for a DAG run: the throwaway warehouse as connection, the sample as data."""
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse_conn(fresh_db))
    monkeypatch.setenv("DATABASE_URL", NOWHERE)
    monkeypatch.setenv("ETL_DATA_DIR", str(sample_dir))
    monkeypatch.setenv("ETL_STAGING_DIR", str(tmp_path / "staging"))
    # Quality scores come from the quality stage (another module); this gate is tested elsewhere.
    monkeypatch.setenv("AIRFLOW_VAR_ETL_VALIDATE_REQUIRE_QUALITY_SCORES", "false")
    monkeypatch.delenv("ETL_NOTIFY_EMAILS", raising=False)
    return fresh_db


def load_dag(retries: int | None = None):
    """The DAG as Airflow parses it now (so the environment set by a test applies)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "etl_pipeline.py"))
    assert bag.import_errors == {}
    dag = bag.dags["etl_pipeline"]
    dag.deadline = None  # dag.test() crashes on deadlines after the run (docs/airflow.md)
    if retries is not None:
        for task in dag.tasks:
            task.retries = retries
    return dag


def run_dag(dag, day: str):
    logical = datetime.fromisoformat(day).replace(hour=2, tzinfo=UTC)
    return dag.test(logical_date=logical)


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def counts(settings) -> dict[str, int]:
    return {t: scalar(settings, f"SELECT count(*) FROM {t}") for t in WAREHOUSE_TABLES}


# --- parsing --------------------------------------------------------------------------


def test_dag_parses_with_schedule_retries_timeouts_and_order():
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier
    from airflow.timetables.trigger import CronTriggerTimetable

    dag = load_dag()
    assert isinstance(dag.timetable, CronTriggerTimetable)
    assert dag.timetable._expression == "0 2 * * *"
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.default_args["retries"] == 2
    assert dag.default_args["retry_delay"] == timedelta(minutes=5)
    assert dag.default_args["retry_exponential_backoff"] is False
    for task in dag.tasks:
        assert task.retries == 2, task.task_id
        assert task.execution_timeout is not None, task.task_id
        callbacks = task.on_failure_callback
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        assert any(isinstance(c, SmtpNotifier) for c in callbacks), task.task_id
    chain = [dag.get_task("setup")]
    while chain[-1].downstream_list:
        (nxt,) = chain[-1].downstream_list
        chain.append(nxt)
    assert [t.task_id for t in chain] == TASK_ORDER
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    assert isinstance(dag.get_task("ingest"), MappedOperator)  # fans out per source

    from airflow.dag_processing.dagbag import DagBag

    (alert,) = DagBag(dag_folder=str(DAGS / "etl_pipeline.py")).dags["etl_pipeline"].deadline
    # Seconds, not a timedelta: Airflow 3.3.2 cannot recalculate a stored timedelta (etl/run/deadline.py).
    assert alert.interval == timedelta(hours=2).total_seconds()
    assert alert.callback.path == "etl.run.deadline.deadline_missed"
    assert "DAGRUN_QUEUED_AT" in repr(alert.reference) or "QueuedAt" in type(alert.reference).__name__
    # The load's outlets: one Asset per warehouse table, named after it (etl/run/lineage.py).
    outlets = {a.name: a for a in dag.get_task("load").outlets}
    assert {"fact_orders", "fact_order_items", "dim_customers", "dim_dates"} <= set(outlets)
    assert outlets["fact_orders"].group == "warehouse"
    assert all(not dag.get_task(t).outlets for t in ("transform", "validate", "notify"))


def test_a_missing_data_dir_variable_is_named_in_one_line(sample_dir):
    from etl.errors import ConfigError
    from etl.run.airflow import apply_variables
    from etl.settings import Settings

    settings = Settings.from_env()
    assert apply_variables(settings, {"etl_data_dir": str(sample_dir)}).data_dir == sample_dir
    with pytest.raises(ConfigError) as err:
        apply_variables(settings, {"etl_data_dir": "/nonexistent/olist"})
    assert str(err.value) == (
        "Airflow Variable etl_data_dir='/nonexistent/olist' is not valid: no such folder; set it to "
        "the folder of the Olist CSV files, or delete the Variable to use ETL_DATA_DIR"
    )


def test_dag_file_does_no_database_or_network_work_at_import():
    """Import the DAG file with sockets and database drivers booby-trapped."""
    probe = f"""
import socket, sys, time, runpy
def refuse(*a, **k):
    raise AssertionError("network or database access while importing the DAG file")
socket.socket.connect = refuse
socket.create_connection = refuse
import psycopg2, psycopg
psycopg2.connect = refuse
psycopg.connect = refuse
started = time.perf_counter()
runpy.run_path({str(DAGS / "etl_pipeline.py")!r})
print(f"imported in {{time.perf_counter() - started:.2f}} s")
assert "pandas" not in sys.modules, "the DAG file must not import pandas at parse time"
"""
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env={**os.environ}
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "imported in" in proc.stdout


# --- runs -----------------------------------------------------------------------------


@pytest.mark.slow
def test_dag_run_loads_the_full_olist_subset(airflow_db, dag_env, olist_dir, monkeypatch):
    monkeypatch.setenv("ETL_DATA_DIR", str(olist_dir))
    dag_run = run_dag(load_dag(retries=0), "2018-08-01")
    assert dag_run.state == "success", task_states(dag_run)
    assert set(task_states(dag_run).values()) == {"success"}
    assert scalar(dag_env, "SELECT count(*) FROM fact_orders") == 21_458
    assert scalar(dag_env, "SELECT count(*) FROM fact_order_items") == 24_494
    assert query(dag_env, "SELECT DISTINCT run_id, status FROM ingest_audit") == [
        ("daily-2018-08-01", "succeeded")
    ]


def test_two_days_then_one_again_doubles_nothing(
    airflow_db, dag_env, smtp_inbox, monkeypatch, sample_dir, tmp_path
):
    monkeypatch.setenv("ETL_NOTIFY_EMAILS", "team@example.org")
    dag = load_dag(retries=0)
    first = run_dag(dag, "2018-08-01")
    assert first.state == "success", task_states(first)
    after_one = counts(dag_env)
    assert after_one["fact_orders"] == 2_000

    # The next day brings one changed file: ten orders changed status.
    day_two = tmp_path / "day-two"
    shutil.copytree(sample_dir, day_two)
    orders_csv = day_two / "olist_orders_dataset.csv"
    orders = pd.read_csv(orders_csv, dtype=str, keep_default_na=False)
    orders.loc[orders.index[:10], "order_status"] = "canceled"
    orders.to_csv(orders_csv, index=False)
    monkeypatch.setenv("ETL_DATA_DIR", str(day_two))
    second = run_dag(dag, "2018-08-02")
    assert second.state == "success", task_states(second)
    assert counts(dag_env) == after_one  # same keys: merged, not added
    assert scalar(dag_env, "SELECT count(*) FROM fact_orders WHERE order_status = 'canceled'") >= 10
    audit = "SELECT run_id, count(*), sum(rows_read), sum(rows_quarantined) FROM ingest_audit GROUP BY 1 ORDER BY 1"
    audit_after_two = query(dag_env, audit)
    assert [r[0] for r in audit_after_two] == ["daily-2018-08-01", "daily-2018-08-02"]

    monkeypatch.setenv("ETL_DATA_DIR", str(sample_dir))
    again = run_dag(dag, "2018-08-01")  # re-reads its own files
    assert again.state == "success", task_states(again)
    assert counts(dag_env) == after_one
    assert query(dag_env, audit) == audit_after_two  # the rerun replaced its own audit rows
    assert scalar(dag_env, "SELECT count(*) FROM quarantine") == scalar(
        dag_env, "SELECT sum(rows_quarantined) FROM ingest_audit"
    )  # replaced, not added
    # notify mailed one success summary per run through smtp_default, and nothing failed
    assert [(to, m["Subject"].split(":")[0]) for to, m in smtp_inbox.messages] == [
        (["team@example.org"], f"[etl_pipeline] run daily-2018-08-0{d} succeeded") for d in (1, 2, 1)
    ]
    assert "fact_orders" in smtp_inbox.messages[0][1].get_body().get_content()


class _Inbox:
    """A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=default_policy)))
        return "250 OK"


@pytest.fixture
def smtp_inbox(monkeypatch):
    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {"disable_tls": True, "disable_ssl": True},
            }
        ),
    )
    monkeypatch.setenv("ETL_ALERT_EMAILS", "oncall@example.org")
    yield inbox
    controller.stop()


def test_failed_quality_gate_fails_the_run_and_sends_one_email(airflow_db, dag_env, smtp_inbox, monkeypatch):
    # A target no data can reach: scores are at most 100. The gate and validation
    # share one set of thresholds, so the run stops at the gate, before loading.
    monkeypatch.setenv("AIRFLOW_VAR_ETL_DQ_TARGET_OVERALL", "100.01")
    monkeypatch.setenv("AIRFLOW_VAR_ETL_VALIDATE_REQUIRE_QUALITY_SCORES", "true")
    monkeypatch.setenv("ETL_NOTIFY_EMAILS", "team@example.org")  # notify must not mail: it never runs
    dag_run = run_dag(load_dag(retries=0), "2018-08-02")

    assert dag_run.state == "failed"
    states = task_states(dag_run)
    assert states["transform"] == "success" and states["quality_gate"] == "failed", states
    assert states["load"] == "upstream_failed" and states["notify"] == "upstream_failed", states
    assert len(smtp_inbox.messages) == 1, [m["Subject"] for _, m in smtp_inbox.messages]
    recipients, message = smtp_inbox.messages[0]
    assert recipients == ["oncall@example.org"]
    assert message["Subject"] == "[etl_pipeline] quality_gate failed for 2018-08-02 (try 1)"
    body = message.get_body(preferencelist=("html", "plain")).get_content()
    assert "run daily-2018-08-02 failed its data quality targets" in body
    assert "overall" in body and "100.01" in body
    assert "/dags/etl_pipeline/runs/" in body and "/tasks/quality_gate" in body  # the log URL
