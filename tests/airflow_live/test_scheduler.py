"""etl_pipeline under a real Airflow 3 deployment: the morning after a failure, and a backfill.

No ``dags test`` shortcut: scheduler, dag-processor, API server and triggerer run
as separate processes (tests/airflow_live/harness.py) on a PostgreSQL metadata
database of their own, with the LocalExecutor. Everything is driven the way an
operator drives it: the REST API the UI uses, with a token from /auth/token.

1. a run triggered through the REST API (and the scheduled run unpausing
   creates for that morning, over the same folder) succeed, and the OpenLineage
   provider posts run events naming the input files and the warehouse tables
   to a local HTTP server;
2. a bad ``etl_data_dir`` Variable fails the first task: after its two tries
   exactly one email reaches the local SMTP server, naming the Variable;
3. the Variable fixed, the failed task is cleared through
   ``POST /api/v2/dags/etl_pipeline/clearTaskInstances`` (200, with the run's
   deadline still pending) and the run succeeds;
4. a run kept waiting for the warehouse lock (held by the test) misses its
   deadline (90 s here): one alert naming the run; then it succeeds;
5. a two-day backfill reruns both days one after another; both succeed and the
   warehouse counts do not change; every audit row is a succeeded one.

Retries are 1 with a 2 s delay (ETL_AIRFLOW_RETRIES / ETL_AIRFLOW_RETRY_DELAY_SECONDS):
retries really wait. Takes ~5-7 minutes on two busy cores.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
import uuid
from datetime import datetime
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from etl.run.lock import warehouse_lock
from etl.warehouse import connection as db
from tests.airflow_live.harness import AirflowCluster, free_port
from tests.conftest import make_settings, query, scalar

pytestmark = pytest.mark.slow

DAG_ID = "etl_pipeline"
WAREHOUSE_TABLES = [
    "dim_customers",
    "dim_products",
    "dim_sellers",
    "fact_orders",
    "fact_order_items",
    "fact_payments",
    "fact_reviews",
]
DEADLINE_SECONDS = 90  # instead of 2 h, so a run kept waiting misses it within the test
RUN_TIMEOUT = 300  # one run of the sample, with a cold start of the task processes, loaded machine


class Inbox:
    """aiosmtpd handler keeping every message it is handed."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"


class LineageSink(ThreadingHTTPServer):
    """A local OpenLineage HTTP endpoint: keeps every JSON event POSTed to it."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    sink.events.append(json.loads(body))
                except ValueError:
                    pass
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):  # quiet
                pass

        super().__init__(("127.0.0.1", free_port()), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def smtp():
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture(scope="module")
def lineage():
    sink = LineageSink()
    thread = threading.Thread(target=sink.serve_forever, daemon=True)
    thread.start()
    yield sink
    sink.shutdown()
    sink.server_close()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    url = db.server_url(_server(), f"etl_test_{uuid.uuid4().hex[:10]}")
    settings = make_settings(url, staging_dir=tmp_path_factory.mktemp("staging"))
    db.ensure_database(url)
    yield settings
    db.drop_database(url)


def _server() -> str:
    from etl.settings import Settings

    return Settings.from_env().database_url


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, smtp, lineage, warehouse, sample_dir):
    controller, _ = smtp
    params = db.parse_url(warehouse.database_url)
    home = tmp_path_factory.mktemp("airflow-live")
    env = {
        "AIRFLOW_CONN_WAREHOUSE": json.dumps(
            {
                "conn_type": "postgres",
                "host": params.get("host", "127.0.0.1"),
                "port": int(params.get("port", 5432)),
                "login": params.get("user", "postgres"),
                "schema": params["dbname"],
            }
        ),
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": controller.port,
                "extra": {"disable_tls": True, "disable_ssl": True},
            }
        ),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "http", "url": lineage.url}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "etl-test",
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere",  # tasks must use the connection
        "ETL_DATA_DIR": str(sample_dir),
        "ETL_STAGING_DIR": str(warehouse.staging_dir),
        "ETL_ALERT_EMAILS": "oncall@example.org",
        "ETL_AIRFLOW_RETRIES": "1",
        "ETL_AIRFLOW_RETRY_DELAY_SECONDS": "2",
        "ETL_AIRFLOW_DEADLINE_SECONDS": str(DEADLINE_SECONDS),
    }
    deployment = AirflowCluster(
        home=home,
        venv_bin=Path(sys.executable).parent,
        metadata_url=db.server_url(_server(), f"airflow_test_{uuid.uuid4().hex[:10]}"),
        extra_env=env,
        parallelism=2,
    )
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()
        deployment.drop()
        shutil.rmtree(home, ignore_errors=True)


def counts(settings) -> dict[str, int]:
    return {t: scalar(settings, f"SELECT count(*) FROM {t}") for t in WAREHOUSE_TABLES}


def trigger(cluster: AirflowCluster, day: str) -> str:
    run_id = f"manual__{day}"
    cluster.api(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={"dag_run_id": run_id, "logical_date": f"{day}T02:00:00Z"},
    )
    return run_id


def all_runs(cluster: AirflowCluster) -> list[dict]:
    return cluster.api("GET", f"/dags/{DAG_ID}/dagRuns", params={"limit": 100})["dag_runs"]


def test_trigger_fail_email_clear_and_backfill(cluster, smtp, lineage, warehouse):
    _, inbox = smtp
    # The DAG file is parsed by the dag-processor, not by us.
    cluster.wait_for(
        lambda: cluster.api("GET", "/dags", params={"dag_id_pattern": DAG_ID})["total_entries"] == 1,
        120,
        "the dag-processor to register etl_pipeline",
    )

    # 1. trigger through the REST API; unpausing also creates that morning's scheduled run.
    first = trigger(cluster, "2018-08-01")
    cluster.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    cluster.wait_for_run(DAG_ID, first, ("success",), RUN_TIMEOUT)
    cluster.wait_for(
        lambda: all(r["state"] == "success" for r in all_runs(cluster)) and all_runs(cluster),
        RUN_TIMEOUT,
        "every run (the triggered one and the scheduled one) to succeed",
    )
    before = counts(warehouse)
    assert before["fact_orders"] > 0
    assert inbox.messages == []  # no failure, no alert

    # Lineage: a COMPLETE event of the load task with the warehouse tables as outputs.
    completes = [
        e
        for e in lineage.events
        if e.get("eventType") == "COMPLETE" and e.get("job", {}).get("name", "").endswith(".load")
    ]
    assert completes, f"no COMPLETE lineage event of the load task among {len(lineage.events)} events"
    outputs = {(o["namespace"], o["name"]) for o in completes[-1]["outputs"]}
    database = db.database_name(warehouse.database_url)
    server = "postgres://{host}:{port}".format(**db.parse_url(warehouse.database_url))
    for table in ("fact_orders", "dim_customers", "dim_dates"):
        assert (server, f"{database}.public.{table}") in outputs, outputs
    inputs = {i["name"] for e in lineage.events for i in e.get("inputs", [])}
    assert any(name.endswith("/olist_orders_dataset.csv") for name in inputs), inputs

    # 2. a bad Variable fails the ingest; one email after its final (second) try.
    cluster.api(
        "POST", "/variables", expect=(200, 201), json={"key": "etl_data_dir", "value": "/nonexistent/olist"}
    )
    second = trigger(cluster, "2018-08-02")
    failed = cluster.wait_for_run(DAG_ID, second, ("failed",), RUN_TIMEOUT)
    assert failed["state"] == "failed"
    cluster.wait_for(lambda: inbox.messages, 60, "the failure email")
    tis = {t["task_id"]: t for t in cluster.task_instances(DAG_ID, second)}
    # The first task reading the settings fails, on both of its tries.
    assert tis["setup"]["state"] == "failed" and tis["setup"]["try_number"] == 2
    time.sleep(5)  # a second email (one per try) would have arrived by now
    assert len(inbox.messages) == 1, [m["Subject"] for m in inbox.messages]
    mail = inbox.messages[0]
    assert mail["Subject"] == "[etl_pipeline] setup failed for 2018-08-02 (try 2)", mail["Subject"]
    body = mail.get_body(("html", "plain")).get_content()
    assert "Airflow Variable etl_data_dir=" in body and "/nonexistent/olist" in body, body
    assert "is not valid: no such folder" in body, body

    # 3. fix the cause, clear the failed task the way the UI's Clear button does.
    cluster.api("DELETE", "/variables/etl_data_dir", expect=(200, 204))
    cleared = cluster.api(
        "POST",
        f"/dags/{DAG_ID}/clearTaskInstances",
        json={"dry_run": False, "dag_run_id": second, "only_failed": True},
    )
    assert {t["task_id"] for t in cleared["task_instances"]} >= {"setup", "list_sources", "notify"}
    # Airflow moved the run's pending deadline to the new queueing time (it used to crash here).
    requeued = _ts(cluster.dag_run(DAG_ID, second)["queued_at"])
    rows = cluster.metadata(
        "SELECT d.deadline_time FROM deadline d JOIN dag_run r ON r.id = d.dagrun_id WHERE r.run_id = %s",
        (second,),
    )
    deadline_time = rows[0][0] if rows else None
    if deadline_time is not None:  # None: the run succeeded already and Airflow removed it
        assert abs((deadline_time - requeued).total_seconds() - DEADLINE_SECONDS) < 1, (
            deadline_time,
            requeued,
        )
    cluster.wait_for_run(DAG_ID, second, ("success",), RUN_TIMEOUT)
    assert counts(warehouse) == before
    assert len(inbox.messages) == 1

    # 4. a run kept waiting (the test holds the warehouse lock, as another writer would):
    #    its deadline passes and one alert names it; once the lock is free it succeeds.
    with warehouse_lock(warehouse, "the test, posing as another run"):
        third = trigger(cluster, "2018-08-03")
        alerts = cluster.wait_for(
            lambda: [m for m in inbox.messages if "still unfinished" in m["Subject"]],
            DEADLINE_SECONDS + 150,
            "the deadline alert of the run waiting for the warehouse lock",
        )
        waiting = {t["task_id"]: t["state"] for t in cluster.task_instances(DAG_ID, third)}
        assert waiting["transform"] == "running", waiting  # waiting for the lock, not failed
    cluster.wait_for_run(DAG_ID, third, ("success",), RUN_TIMEOUT)
    (alert,) = alerts
    assert alert["Subject"] == (
        f"[etl_pipeline] run {third} (2018-08-03) still unfinished 1.5 min after queueing"
    ), alert["Subject"]
    assert len(inbox.messages) == 2  # the failure and this alert; none for the run that had failed
    assert counts(warehouse) == before

    # 5. a two-day backfill over the days already run: one after another, both succeed.
    backfill = cluster.api(
        "POST",
        "/backfills",
        expect=(200, 201),
        json={
            "dag_id": DAG_ID,
            "from_date": "2018-08-01T00:00:00Z",
            "to_date": "2018-08-02T23:59:59Z",
            "max_active_runs": 1,
            "reprocess_behavior": "completed",
        },
    )

    def backfill_runs() -> list[dict]:
        runs = [
            r
            for r in all_runs(cluster)
            if r["logical_date"] and r["logical_date"][:10] in ("2018-08-01", "2018-08-02")
        ]
        return runs if len(runs) == 2 and all(r["run_type"] == "backfill" for r in runs) else []

    def backfill_done():
        info = cluster.api("GET", f"/backfills/{backfill['id']}")
        runs = backfill_runs()
        if runs and any(r["state"] == "failed" for r in runs):
            raise AssertionError(f"a backfill run failed: {runs}\n{cluster.log_tail()}")
        return runs if info["completed_at"] and all(r["state"] == "success" for r in runs) else None

    runs = cluster.wait_for(backfill_done, 2 * RUN_TIMEOUT, "the two-day backfill to complete")
    spans = sorted((_ts(r["start_date"]), _ts(r["end_date"])) for r in runs)
    assert spans[0][1] <= spans[1][0], f"the backfill's runs overlapped: {spans}"
    assert counts(warehouse) == before
    assert len(inbox.messages) == 2
    # Every day's audit rows are its own, once each, and succeeded; no rows of failed tries.
    audit = query(
        warehouse, "SELECT run_id, count(*), bool_and(status = 'succeeded') FROM ingest_audit GROUP BY 1"
    )
    assert audit and all(ok for _, _, ok in audit), audit
    assert len({n for _, n, _ in audit}) == 1, audit  # the same tables for every run id
    assert {r for (r,) in query(warehouse, "SELECT DISTINCT run_id FROM quality_scores")} <= {
        r for r, _, _ in audit
    }


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
