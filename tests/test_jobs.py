"""Jobs: upload through POST /api/jobs, a real `etl jobs worker` process loads it, results come back.

Real PostgreSQL (a throwaway warehouse with generated orders loaded first),
the Flask app with its upload part enabled and its own ``etl_uploader`` login,
and the worker as the subprocess the docs tell people to start.
"""

from __future__ import annotations

import gzip
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from werkzeug.serving import make_server

from dashboard.app import create_app
from dashboard.config import DashboardConfig
from etl.generate import generate
from etl.jobs import queue
from etl.run.stages import run_pipeline
from etl.warehouse import connection as db
from tests.conftest import _new_database_url, make_settings, member_login, query, scalar

TOKEN = "test-upload-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """A warehouse holding 300 generated orders (ids disjoint from the real subset's), and two logins.

    (admin settings, the dashboards' read login, the upload part's etl_uploader login URL)
    """
    url = _new_database_url()
    base = tmp_path_factory.mktemp("jobs")
    settings = make_settings(url, staging_dir=base / "staging", jobs_drop_dir=base / "drop")
    generated = base / "generated"
    generate(orders=300, dirty_rate=0.0, seed=11, out=generated)
    run_pipeline(settings, data_dir=generated, run_id="preload")
    try:
        with (
            member_login(settings, "dashboard_reader") as reader,
            member_login(settings, "etl_uploader") as up,
        ):
            yield settings, reader, up.database_url
    finally:
        db.drop_database(url)


def make_app(settings, reader, uploader_url: str, **changes):
    config = DashboardConfig(
        settings=reader.with_overrides(
            staging_dir=settings.staging_dir, jobs_drop_dir=settings.jobs_drop_dir, **changes
        ),
        cache_seconds=0,
        jobs_enabled=True,
        jobs_token=TOKEN,
        jobs_database_url=uploader_url,
    )
    return create_app(config)


@pytest.fixture(scope="module")
def client(warehouse):
    app = make_app(*warehouse)
    yield app.test_client()
    app.extensions["warehouse"].close()


def upload(client, name: str, data: bytes, headers=AUTH):
    return client.post(
        "/api/jobs",
        data={"file": (io.BytesIO(data), name)},
        headers=headers,
        content_type="multipart/form-data",
    )


def subset_zip(olist_dir: Path) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as archive:  # members are gzip already
        for path in sorted(olist_dir.glob("*.csv.gz")):
            archive.write(path, f"olist/{path.name}")
    return sink.getvalue()


def start_worker(settings) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "ETL_STAGING_DIR": str(settings.staging_dir),
        "ETL_JOBS_DROP_DIR": str(settings.jobs_drop_dir),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "etl.cli", "jobs", "worker", "--poll", "0.5"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(client, job_id: str, worker: subprocess.Popen, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}", headers=AUTH).get_json()["job"]
        if job["status"] in ("succeeded", "failed"):
            return job
        if worker.poll() is not None:
            pytest.fail(f"the worker exited ({worker.returncode}): {worker.stdout.read()[-3000:]}")
        time.sleep(1)
    pytest.fail(f"job {job_id} still {job['status']} after {timeout} s")


@pytest.mark.slow
def test_upload_the_real_subset_and_follow_it_to_the_dashboard(client, warehouse, olist_dir):
    settings, reader, uploader_url = warehouse
    before = client.get("/api/kpis").get_json()["data"]
    response = upload(client, "olist-subset.zip", subset_zip(olist_dir))
    assert response.status_code == 202, response.get_json()
    job = response.get_json()["job"]
    assert job["status"] == "queued" and len(job["tables"]) == 9
    worker = start_worker(settings)
    try:
        done = wait_for(client, job["job_id"], worker)
    finally:
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=30)[0]
    assert done["status"] == "succeeded", (done, output[-3000:])
    assert f"job {job['job_id']}: succeeded" in output
    run = done["run_id"]
    assert done["rows_loaded"] == scalar(
        settings, "SELECT sum(rows_loaded) FROM ingest_audit WHERE run_id = %s", (run,)
    )
    quarantined = scalar(settings, "SELECT count(*) FROM quarantine WHERE run_id = %s", (run,))
    assert done["rows_quarantined"] == quarantined
    assert done["quality_overall"] == float(
        scalar(
            settings,
            "SELECT score FROM quality_scores WHERE run_id = %s AND table_name = '_overall' "
            "AND dimension = 'overall'",
            (run,),
        )
    )

    # downloads: the quarantine and the clean rows, as CSV and Parquet
    q = client.get(f"/api/jobs/{job['job_id']}/download?what=quarantine&format=csv", headers=AUTH)
    assert q.status_code == 200 and len(pd.read_csv(io.BytesIO(q.data))) == quarantined
    clean = client.get(f"/api/jobs/{job['job_id']}/download?what=clean&format=parquet", headers=AUTH)
    assert clean.status_code == 200 and clean.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(clean.data)) as archive:
        orders = pd.read_parquet(io.BytesIO(archive.read("fact_orders.parquet")))
    loaded_orders = scalar(
        settings,
        "SELECT rows_loaded FROM ingest_audit WHERE run_id = %s AND table_name = 'fact_orders'",
        (run,),
    )
    assert len(orders) == loaded_orders == 21_458

    # the dashboard's figures changed by exactly the upload's sold orders and revenue
    after = client.get("/api/kpis").get_json()["data"]
    with gzip.open(olist_dir / "olist_orders_dataset.csv.gz", "rt") as fh:
        statuses = pd.read_csv(fh, usecols=["order_status"])["order_status"]
    sold = int((~statuses.isin(["canceled", "unavailable"])).sum())
    assert after["orders"] - before["orders"] == sold
    revenue = scalar(
        settings,
        "SELECT sum(i.price_cents) FROM fact_order_items i JOIN fact_orders o USING (order_id) "
        "WHERE o.order_status NOT IN ('canceled', 'unavailable') AND o.order_id = ANY(%s)",
        (list(orders["order_id"]),),
    )
    assert after["revenue_cents"] - before["revenue_cents"] == revenue

    # the job page: summary, quarantine, a link to the dashboard filtered to what it loaded
    page = client.get(f"/jobs/{job['job_id']}", headers=AUTH).get_data(as_text=True)
    assert 'id="job-status">succeeded<' in page
    link = client.get(f"/api/jobs/{job['job_id']}", headers=AUTH).get_json()["links"]["dashboard"]
    assert link == "/sales?start=2016-10-03&end=2018-08-29"  # the subset's purchase days (SOURCES.md)
    assert client.get(link).status_code == 200

    # jobs survive a restart of the dashboard (they live in the warehouse)
    again = make_app(settings, reader, uploader_url)
    listed = again.test_client().get("/api/jobs", headers=AUTH).get_json()["jobs"]
    assert job["job_id"] in [j["job_id"] for j in listed]
    again.extensions["warehouse"].close()


def test_one_csv_is_one_table_job_and_the_worker_loads_it(client, warehouse, tmp_path):
    settings = warehouse[0]
    generate(orders=40, dirty_rate=0.0, seed=99, out=tmp_path)
    customers = (tmp_path / "olist_customers_dataset.csv").read_bytes()
    response = upload(client, "my customers.csv", customers)
    assert response.status_code == 202, response.get_json()
    job = response.get_json()["job"]
    assert job["tables"] == ["dim_customers"]
    drop = settings.jobs_drop_dir / job["job_id"]
    manifest = json.loads((drop / "manifest.json").read_text())
    assert (
        manifest["files"][0]["name"] == "olist_customers_dataset.csv"
        and len(manifest["files"][0]["sha256"]) == 64
    )
    worker = start_worker(settings)
    try:
        done = wait_for(client, job["job_id"], worker)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)
    assert done["status"] == "succeeded" and done["rows_loaded"] == 40
    csv_rows = client.get(f"/api/jobs/{job['job_id']}/download?what=clean&format=csv", headers=AUTH)
    assert csv_rows.mimetype == "text/csv" and len(pd.read_csv(io.BytesIO(csv_rows.data))) == 40


def zip_of(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return sink.getvalue()


ORDERS_HEADER = (
    b"order_id,customer_id,order_status,order_purchase_timestamp,order_approved_at,"
    b"order_delivered_carrier_date,order_delivered_customer_date,order_estimated_delivery_date\n"
)
BAD_UPLOADS = {
    "empty": ("orders.csv", b"", 400, "is empty"),
    "wrong type": (
        "orders.csv",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200),
        415,
        "not a CSV text file",
    ),
    "wrong extension": ("orders.xlsx", ORDERS_HEADER, 415, "upload a .csv"),
    "over the limit": ("orders.csv", ORDERS_HEADER + b"x" * 1_100_000, 413, "above the limit"),
    "wrong header": ("orders.csv", b"id,name,price\n1,a,2\n", 422, "is not an Olist table's"),
    "zip bomb": (
        "olist.zip",
        lambda: zip_of({"olist_orders_dataset.csv": ORDERS_HEADER + bytes(50_000_000)}),
        413,
        "zip bomb",
    ),
    "path traversal": (
        "olist.zip",
        zip_of({"../../etc/olist_orders_dataset.csv": ORDERS_HEADER}),
        400,
        "unsafe path",
    ),
    "not a zip": ("olist.zip", b"PK\x03\x04 but not really a zip", 415, "not a readable zip"),
    "foreign member": ("olist.zip", zip_of({"notes.txt": b"hello"}), 400, "is not an Olist file"),
}


@pytest.fixture(scope="module")
def small(warehouse):
    """The app with a 1 MB upload limit."""
    app = make_app(*warehouse, jobs_max_bytes=1_000_000)
    yield app
    app.extensions["warehouse"].close()


def nothing_stored(settings) -> None:
    drop = settings.jobs_drop_dir
    entries = sorted(p.name for p in drop.iterdir()) if drop.exists() else []
    jobs = [r[0] for r in query(settings, "SELECT job_id FROM jobs")]
    assert set(entries) == set(jobs), (entries, jobs)  # no folder without its job, no .incoming-*


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_upload_gets_a_4xx_sentence_and_leaves_nothing(case, small, warehouse):
    settings = warehouse[0]
    jobs_before = scalar(settings, "SELECT count(*) FROM jobs")
    name, data, status, needle = BAD_UPLOADS[case]
    data = data() if callable(data) else data
    response = upload(small.test_client(), name, data)
    assert response.status_code == status, response.get_json()
    assert needle in response.get_json()["error"]
    assert scalar(settings, "SELECT count(*) FROM jobs") == jobs_before
    nothing_stored(settings)


def test_a_1_gb_upload_is_refused_before_it_is_read(small, warehouse):
    settings = warehouse[0]
    server = make_server("127.0.0.1", 0, small, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
        conn.putrequest("POST", "/api/jobs")
        conn.putheader("Authorization", f"Bearer {TOKEN}")
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.putheader("Content-Length", str(1 << 30))
        conn.endheaders()
        conn.send(b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n')
        response = conn.getresponse()  # answered without waiting for the gigabyte
        assert response.status == 413
        assert "larger than the limit" in json.loads(response.read())["error"]
    finally:
        server.shutdown()
    nothing_stored(settings)


def test_no_token_no_job(client, warehouse):
    settings = warehouse[0]
    response = upload(client, "orders.csv", ORDERS_HEADER, headers={})
    assert response.status_code == 401 and "Bearer" in response.get_json()["error"]
    assert client.get("/api/jobs").status_code == 401
    assert client.get("/jobs").status_code == 302  # pages ask for the token
    assert client.post("/jobs/login", data={"token": "wrong"}).status_code == 401
    nothing_stored(settings)


def test_upload_part_is_off_unless_enabled(warehouse):
    app = create_app(DashboardConfig(settings=warehouse[1], cache_seconds=0))
    assert app.test_client().post("/api/jobs").status_code in (404, 405)
    app.extensions["warehouse"].close()


def test_two_workers_never_take_the_same_job(warehouse):
    settings = warehouse[0]
    ids = [uuid.uuid4().hex[:16] for _ in range(2)]
    a = db.connect(settings.database_url)
    b = db.connect(settings.database_url)
    try:
        for job_id in ids:
            with a:
                queue.create(
                    a, queue.Job(job_id, "queued", "x.csv", 1, "0" * 64, ["fact_orders"], f"lock-{job_id}")
                )
        with a.cursor() as cur:  # worker A holds the oldest queued job's row, mid-claim
            cur.execute("SELECT job_id FROM jobs WHERE job_id = %s FOR UPDATE", (ids[0],))
            taken = queue.take(b, "worker-b")
            assert taken is not None and taken.job_id == ids[1]  # skipped the locked one, no wait
        a.rollback()
        assert queue.take(b, "worker-b").job_id == ids[0]
    finally:
        with a, a.cursor() as cur:
            cur.execute("DELETE FROM jobs WHERE job_id = ANY(%s)", (ids,))
        a.close()
        b.close()
