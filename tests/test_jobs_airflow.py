"""Jobs run by Airflow: the etl_pipeline DAG, triggered with a job in ``conf``, loads that job's files.

The DAG runs under real Airflow 3 (``dag.test(run_conf=...)``, as the other DAG
tests); the conf is exactly what ``etl.jobs.submit`` sends through the REST API.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from dashboard.app import create_app
from dashboard.config import DashboardConfig
from etl.generate import generate
from etl.jobs import drop, queue
from etl.jobs.airflow_api import AirflowApi
from etl.jobs.checks import check_upload
from etl.run.setup import init_schema
from etl.settings import PROJECT_ROOT
from tests.conftest import member_login, query, scalar
from tests.test_airflow_dag import airflow_db, load_dag, run_dag, task_states, warehouse_conn  # noqa: F401


def test_a_dag_run_with_a_job_in_conf_loads_that_job(airflow_db, fresh_db, tmp_path, monkeypatch):  # noqa: F811
    settings = fresh_db.with_overrides(jobs_drop_dir=tmp_path / "drop")
    init_schema(settings)
    generate(orders=60, dirty_rate=0.0, seed=5, out=tmp_path / "gen")
    data = (tmp_path / "gen" / "olist_customers_dataset.csv").read_bytes()
    files = check_upload("customers.csv", data, 10_000_000)
    drop.store(settings.jobs_drop_dir, "abc123", "customers.csv", files)
    folder = drop.complete(settings.jobs_drop_dir, "abc123")
    conf = {
        "job_id": "abc123",
        "run_id": queue.run_id_for("abc123"),
        "data_dir": str(folder),
        "files": drop.verify(settings.jobs_drop_dir, "abc123")["files"],
    }
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse_conn(settings))
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    monkeypatch.setenv("ETL_STAGING_DIR", str(tmp_path / "staging"))
    monkeypatch.setenv("ETL_DATA_DIR", str(tmp_path / "not-the-job"))  # the conf's folder wins
    monkeypatch.delenv("ETL_NOTIFY_EMAILS", raising=False)
    dag = load_dag(retries=0)
    dag_run = dag.test(run_conf=json.loads(json.dumps(conf)))
    assert dag_run.state == "success", task_states(dag_run)
    audit = dict(
        query(settings, "SELECT table_name, rows_loaded FROM ingest_audit WHERE run_id = 'job-abc123'")
    )
    assert audit["dim_customers"] == 60 and audit["fact_orders"] == 0
    assert scalar(settings, "SELECT count(*) FROM dim_customers") == 60
    stages = [
        r[0]
        for r in query(settings, "SELECT stage FROM run_events WHERE run_id = 'job-abc123' ORDER BY event_id")
    ]
    assert stages[0] == "ingest" and "load" in stages and stages[-1] == "notify"


def test_a_changed_file_stops_the_dag_run(airflow_db, fresh_db, tmp_path, monkeypatch):  # noqa: F811
    settings = fresh_db.with_overrides(jobs_drop_dir=tmp_path / "drop")
    init_schema(settings)
    generate(orders=20, dirty_rate=0.0, seed=6, out=tmp_path / "gen")
    files = check_upload("c.csv", (tmp_path / "gen" / "olist_customers_dataset.csv").read_bytes(), 10_000_000)
    drop.store(settings.jobs_drop_dir, "tampered1", "c.csv", files)
    folder = drop.complete(settings.jobs_drop_dir, "tampered1")
    (folder / "olist_customers_dataset.csv").write_text("changed after upload\n")
    conf = {"job_id": "tampered1", "run_id": "job-tampered1", "data_dir": str(folder)}
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse_conn(settings))
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    monkeypatch.setenv("ETL_STAGING_DIR", str(tmp_path / "staging"))
    dag_run = load_dag(retries=0).test(run_conf=conf)
    assert dag_run.state == "failed"
    assert scalar(settings, "SELECT count(*) FROM dim_customers") == 0


# --- through the real REST API ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def airflow_api(tmp_path_factory):
    """A real `airflow api-server` on 127.0.0.1 (own AIRFLOW_HOME, SQLite, the DAG serialized)."""
    home = tmp_path_factory.mktemp("airflow-api-home")
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "uploader:admin",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    for args in (["db", "migrate"], ["dags", "reserialize"]):
        done = subprocess.run([airflow, *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    log = open(home / "api-server.log", "wb")
    proc = subprocess.Popen(
        [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its workers share the group: stopped together below
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if requests.get(base + "/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, (home / "api-server.log").read_text()[-3000:]
            time.sleep(1)
        else:
            pytest.fail("airflow api-server did not answer in 180 s")
        password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["uploader"]
        yield base, password
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()


@pytest.mark.slow
def test_upload_triggers_a_dag_run_through_the_rest_api(airflow_api, fresh_db, tmp_path):
    with contextlib.ExitStack() as stack:
        _upload_through_rest(stack, airflow_api, fresh_db, tmp_path)


def _upload_through_rest(stack, airflow_api, fresh_db, tmp_path):
    def stack_login(settings, group):
        return stack.enter_context(member_login(settings, group))

    base, password = airflow_api
    settings = fresh_db.with_overrides(jobs_drop_dir=tmp_path / "drop", staging_dir=tmp_path / "staging")
    init_schema(settings)
    generate(orders=30, dirty_rate=0.0, seed=8, out=tmp_path / "gen")
    reader = stack_login(settings, "dashboard_reader")
    uploader = stack_login(settings, "etl_uploader")
    config = DashboardConfig(
        settings=reader.with_overrides(
            staging_dir=settings.staging_dir, jobs_drop_dir=settings.jobs_drop_dir
        ),
        cache_seconds=0,
        jobs_enabled=True,
        jobs_token="t",
        jobs_database_url=uploader.database_url,
        jobs_airflow_url=base,
        jobs_airflow_user="uploader",
        jobs_airflow_password=password,
    )
    app = create_app(config)
    client = app.test_client()
    data = (tmp_path / "gen" / "olist_orders_dataset.csv").read_bytes()
    response = client.post(
        "/api/jobs",
        data={"file": (io.BytesIO(data), "orders.csv")},
        headers={"Authorization": "Bearer t"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    job = response.get_json()["job"]
    assert job["executor"] == "airflow" and job["airflow_dag_run_id"] == f"job__{job['job_id']}"
    # Airflow holds the DAG run with the job in its conf: the folder and every file's checksum
    api = AirflowApi(base, "uploader", password)
    run = api._call("GET", f"/api/v2/dags/etl_pipeline/dagRuns/{job['airflow_dag_run_id']}")
    assert run["conf"]["job_id"] == job["job_id"] and run["conf"]["run_id"] == job["run_id"]
    assert Path(run["conf"]["data_dir"]) == settings.jobs_drop_dir / job["job_id"]
    assert run["conf"]["files"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    # its status is read back from Airflow (no scheduler runs here, so it stays queued)
    shown = client.get(f"/api/jobs/{job['job_id']}", headers={"Authorization": "Bearer t"}).get_json()["job"]
    assert shown["status"] == "queued"
    assert api.state(job["airflow_dag_run_id"]) == "queued"
    app.extensions["warehouse"].close()

    # a refused sign-in: 502 with the sentence, the job recorded as failed with it
    wrong = create_app(DashboardConfig(**{**config.__dict__, "jobs_airflow_password": "wrong"}))
    response = wrong.test_client().post(
        "/api/jobs",
        data={"file": (io.BytesIO(data), "orders.csv")},
        headers={"Authorization": "Bearer t"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 502 and "refused user uploader" in response.get_json()["error"]
    failed = query(
        settings, "SELECT status, error FROM jobs WHERE executor = 'airflow' AND status = 'failed'"
    )
    assert len(failed) == 1 and "refused user uploader" in failed[0][1]
    wrong.extensions["warehouse"].close()
