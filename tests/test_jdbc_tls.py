"""TLS end to end, and a real JDBC client as the BI login.

The module makes its own PostgreSQL 15 cluster (initdb into a temp folder, its
own port) that accepts TLS connections only (``hostssl`` + ``hostnossl ...
reject``, SCRAM passwords), with a self-signed certificate made by ``openssl``.
Over it: ``etl db init`` as the administrator, the pipeline as its own login
(psycopg2, ``sslmode=require``), the dashboards' API as theirs, and
``tests/jdbc/BiProbe.java`` run with Debian's pgjdbc and the URL documented in
docs/jdbc_setup.md, listing the schema through ``DatabaseMetaData``, running the
documented queries (compared with the API to the cent) and being refused what
the BI login must not do.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest

from dashboard.app import create_app
from dashboard.config import DashboardConfig
from etl.run import setup
from etl.run.stages import run_pipeline
from etl.warehouse import access
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[1]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PGJDBC = Path("/usr/share/java/postgresql.jar")
DOC = ROOT / "docs" / "jdbc_setup.md"
TIMESCALEDB_CONTROL = Path("/usr/share/postgresql/15/extension/timescaledb.control")
ADMIN_PASSWORD = "test-admin-pw"
PASSWORDS = {"pipeline_password": "pipe-pw-1", "dashboard_password": "dash-pw-1", "bi_password": "bi-pw-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> str | None:
    """The server may not run as root: initdb refuses."""
    return "postgres" if os.geteuid() == 0 else None


def _chown(path: Path, user: str | None) -> None:
    if user:
        entry = pwd.getpwnam(user)
        for root, dirs, files in os.walk(path):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.chown(name, entry.pw_uid, entry.pw_gid)


@pytest.fixture(scope="module")
def tls_cluster():
    """(port, root certificate) of a private TLS-only cluster, stopped and removed afterwards."""
    if not (PG_BIN / "initdb").exists() or not shutil.which("openssl"):
        pytest.skip(f"needs PostgreSQL 15 binaries in {PG_BIN} and openssl")
    user = _run_as()
    base = Path(tempfile.mkdtemp(prefix="etl-tls-"))
    pgdata, certs = base / "pgdata", base / "certs"
    certs.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(certs / "server.key"), "-out", str(certs / "server.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    (certs / "server.key").chmod(0o600)
    (base / "pw").write_text(ADMIN_PASSWORD + "\n")
    os.chmod(base, 0o755)
    _chown(base, user)
    subprocess.run(
        [str(PG_BIN / "initdb"), "-D", str(pgdata), "-U", "postgres", "--pwfile", str(base / "pw"),
         "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"],
        check=True, capture_output=True, user=user,
    )  # fmt: skip
    (pgdata / "pg_hba.conf").write_text(
        "local all all trust\n"
        "hostssl all all 127.0.0.1/32 scram-sha-256\n"
        "hostnossl all all 0.0.0.0/0 reject\n"
    )
    port = _free_port()
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -k {base} -c ssl=on "
        f"-c ssl_cert_file={certs / 'server.crt'} -c ssl_key_file={certs / 'server.key'}"
    )
    # TimescaleDB when the machine's PostgreSQL 15 has it (its catalog must not reach BI either)
    if TIMESCALEDB_CONTROL.exists():
        options += " -c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off"
    _chown(base, user)
    log = base / "postgres.log"
    subprocess.run(
        [str(PG_BIN / "pg_ctl"), "-D", str(pgdata), "-l", str(log), "-w", "-t", "60", "-o", options, "start"],
        check=True, capture_output=True, user=user,
    )  # fmt: skip
    try:
        yield port, certs / "server.crt"
    finally:
        subprocess.run(
            [str(PG_BIN / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "-w", "stop"],
            capture_output=True, user=user,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


def _url(port: int, user: str, password: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"sslmode": "require", **params}.items())
    return f"postgresql://{user}:{password}@127.0.0.1:{port}/warehouse?{query}"


@pytest.fixture(scope="module")
def loaded(tls_cluster, sample_dir, tmp_path_factory):
    """The sample loaded over TLS: init as the administrator, the run as the pipeline's login."""
    port, _ = tls_cluster
    admin = make_settings(
        _url(port, "postgres", ADMIN_PASSWORD), staging_dir=tmp_path_factory.mktemp("staging"), **PASSWORDS
    )
    setup.init_schema(admin)
    pipeline = admin.with_overrides(
        database_url=_url(port, admin.pipeline_login, PASSWORDS["pipeline_password"])
    )
    run_pipeline(pipeline, data_dir=sample_dir, run_id="tls-1")
    return admin


def test_the_cluster_refuses_unencrypted_connections(tls_cluster, loaded):
    port, _ = tls_cluster
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        psycopg2.connect(
            _url(port, "etl_pipeline", PASSWORDS["pipeline_password"], sslmode="disable")
        ).close()


def test_the_pipeline_login_connects_over_tls_and_verifies_the_server(tls_cluster, loaded):
    port, root_cert = tls_cluster
    for params in ({}, {"sslmode": "verify-full", "sslrootcert": str(root_cert)}):
        conn = psycopg2.connect(_url(port, "etl_pipeline", PASSWORDS["pipeline_password"], **params))
        try:
            with conn.cursor() as cur:
                # its sessions act as the owning group (ALTER ROLE ... SET role)
                cur.execute("SELECT session_user, current_user, (SELECT count(*) FROM fact_orders)")
                assert cur.fetchone() == ("etl_pipeline", "etl_writer", 2000)
                cur.execute("SET ROLE NONE")  # pg_stat_ssl shows a session to its own user
                cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                assert cur.fetchone() == (True,)
                cur.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
                assert cur.fetchone()[0] == int(TIMESCALEDB_CONTROL.exists())
        finally:
            conn.close()
    # a certificate that is not the server's CA is rejected by verify-full
    other = Path(tempfile.mkdtemp(prefix="etl-othercert-"))
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other",
             "-keyout", str(other / "k"), "-out", str(other / "c")],
            check=True, capture_output=True,
        )  # fmt: skip
        with pytest.raises(psycopg2.OperationalError, match="certificate verify failed"):
            psycopg2.connect(
                _url(port, "etl_pipeline", PASSWORDS["pipeline_password"], sslmode="verify-full",
                     sslrootcert=str(other / "c"))
            ).close()  # fmt: skip
    finally:
        shutil.rmtree(other)


def _documented_url() -> str:
    urls = re.findall(r"^jdbc:postgresql://HOST:5432/warehouse\?\S+$", DOC.read_text(), re.M)
    assert len(urls) == 1, "docs/jdbc_setup.md names one JDBC URL on a line of its own"
    return urls[0]


def _documented_queries() -> dict[str, str]:
    blocks = re.findall(r"```sql\n-- query: ([^(\n]+?) \(= [^)]*\)\n(.*?)```", DOC.read_text(), re.S)
    return {name: text.strip() for name, text in blocks}


REFUSALS = {
    # view DML: refused by the rewriter (55000, not updatable) or by privileges (42501)
    "insert into a view": "INSERT INTO bi.top_products SELECT * FROM bi.top_products LIMIT 0",
    "update a view": "UPDATE bi.top_products SET units = 0",
    "delete from a view": "DELETE FROM bi.top_products",
    "insert": "INSERT INTO public.fact_orders SELECT * FROM public.fact_orders LIMIT 0",
    "update": "UPDATE public.fact_orders SET order_status = order_status",
    "delete": "DELETE FROM public.fact_orders",
    "truncate": "TRUNCATE public.fact_orders",
    "create in bi": "CREATE TABLE bi.scratch (x int)",
    "create in public": "CREATE TABLE public.scratch (x int)",
    "create temp": "CREATE TEMP TABLE scratch (x int)",
    "create schema": "CREATE SCHEMA scratch",
    "large object": "SELECT lo_from_bytea(0, 'x')",
    "read quarantine": "SELECT raw_record FROM public.quarantine",
    "read audit": "SELECT * FROM public.ingest_audit",
}


@pytest.fixture(scope="module")
def probe(tls_cluster, loaded, tmp_path_factory):
    """BiProbe's output over the documented URL, as records."""
    if not (PGJDBC.exists() and shutil.which("javac") and shutil.which("java")):
        pytest.skip(
            f"needs java, javac and Debian's pgjdbc ({PGJDBC}: apt-get install libpostgresql-jdbc-java)"
        )
    port, _ = tls_cluster
    classes = tmp_path_factory.mktemp("jdbc")
    subprocess.run(
        ["javac", "-cp", str(PGJDBC), "-d", str(classes), str(ROOT / "tests" / "jdbc" / "BiProbe.java")],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    url = _documented_url().replace("HOST:5432", f"127.0.0.1:{port}")
    script = "".join(f"-- query: {n}\n{q}\n" for n, q in _documented_queries().items())
    script += "".join(f"-- refuse: {n}\n{q};\n" for n, q in REFUSALS.items())
    done = subprocess.run(
        ["java", "-cp", f"{PGJDBC}:{classes}", "BiProbe", url, loaded.bi_login, PASSWORDS["bi_password"]],
        input=script, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    records: dict[str, list[list[str]]] = {}
    for line in done.stdout.splitlines():
        kind, *fields = line.split("\t")
        records.setdefault(kind, []).append(fields)
    return records


def test_jdbc_connects_over_tls_as_the_bi_login(probe):
    assert probe["SSL"] == [["true"]]


def test_jdbc_metadata_lists_exactly_the_documented_views_with_descriptions(probe, loaded):
    listed = {(schema, name, kind) for schema, name, kind, _ in probe["TABLE"]}
    assert listed == {("bi", name, "VIEW") for name in access.bi_views()}
    assert all(remarks != "\\N" for schema, _, _, remarks in probe["TABLE"] if schema == "bi")
    columns = [c for c in probe["COLUMN"] if c[0] == "bi"]
    assert columns and all(remarks != "\\N" for *_, remarks in columns)
    money = {(t, c): type_ for _, t, c, type_, _ in columns if c.endswith("_cents")}
    assert money[("sales_daily_state", "revenue_cents")] == "int8"
    assert money[("monthly_sales_summary", "avg_order_value_cents")] == "numeric"


def test_jdbc_refuses_writes_ddl_large_objects_and_internals(probe):
    refused = {name: state for name, state in probe.get("REFUSED", [])}
    assert probe.get("ALLOWED", []) == []
    for name in REFUSALS:
        allowed = {"42501", "55000"} if name.endswith("a view") else {"42501"}
        assert refused[name] in allowed, (name, refused[name])
    assert probe["LO"] == [["42501"]]  # LargeObjectManager.createLO: permission denied for lo_creat


def _rows(probe, name: str) -> list[list[str]]:
    return [fields[1:] for fields in probe.get("ROW", []) if fields[0] == name]


def test_the_documented_queries_equal_the_dashboards_api_to_the_cent(probe, loaded, tls_cluster):
    port, _ = tls_cluster
    dashboard = loaded.with_overrides(
        database_url=_url(port, loaded.dashboard_login, PASSWORDS["dashboard_password"])
    )
    app = create_app(DashboardConfig(settings=dashboard, cache_seconds=0))
    client = app.test_client()

    def api(path: str):
        response = client.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["data"]

    try:
        assert set(_documented_queries()) == {
            "totals", "revenue per state", "top ten products", "monthly revenue", "categories",
        }  # fmt: skip
        kpis = api("/api/kpis")
        assert _rows(probe, "totals") == [[str(kpis["orders"]), str(kpis["revenue_cents"])]]
        regions = sorted(api("/api/regions"), key=lambda r: r["customer_state"])
        assert _rows(probe, "revenue per state") == [
            [r["customer_state"], str(r["orders"]), str(r["revenue_cents"])] for r in regions
        ]
        top = api("/api/top-products")
        assert _rows(probe, "top ten products") == [
            [r["product_id"], str(r["revenue_cents"]), str(r["units"])] for r in top
        ]
        monthly = api("/api/monthly-sales")
        got = _rows(probe, "monthly revenue")
        assert [(m, int(o), int(c)) for m, o, c, _ in got] == [
            (r["month"][:10], r["orders"], r["revenue_cents"]) for r in monthly
        ]
        assert [Decimal(a) for *_, a in got] == [
            Decimal(str(r["avg_order_value_cents"])).quantize(Decimal("0.01")) for r in monthly
        ]
        categories = api("/api/categories")
        assert [(c, int(r), Decimal(p)) for c, r, p in _rows(probe, "categories")] == [
            (r["category"], r["revenue_cents"], Decimal(str(r["avg_price_cents"])).quantize(Decimal("0.01")))
            for r in categories
        ]
        assert kpis["revenue_cents"] > 0 and len(top) == 10
    finally:
        app.extensions["warehouse"].close()


def test_rotating_a_password_is_rerunning_init(tls_cluster, loaded):
    """A new ETL_BI_PASSWORD: the next `etl db init` sets it; the old one stops working."""
    port, _ = tls_cluster
    setup.init_schema(loaded.with_overrides(bi_password="bi-pw-2"))
    try:
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(_url(port, "etl_bi", PASSWORDS["bi_password"])).close()
        psycopg2.connect(_url(port, "etl_bi", "bi-pw-2")).close()
        # stored as a SCRAM verifier, and a login without a password set is left alone
        admin = psycopg2.connect(loaded.database_url)
        try:
            with admin.cursor() as cur:
                cur.execute(
                    "SELECT rolname, left(rolpassword, 14) FROM pg_authid WHERE rolcanlogin AND rolname LIKE 'etl\\_%' ORDER BY 1"
                )
                assert cur.fetchall() == [
                    ("etl_bi", "SCRAM-SHA-256$"), ("etl_dashboard", "SCRAM-SHA-256$"), ("etl_pipeline", "SCRAM-SHA-256$"),
                ]  # fmt: skip
        finally:
            admin.close()
        setup.init_schema(
            loaded.with_overrides(pipeline_password=None, dashboard_password=None, bi_password=None)
        )
        psycopg2.connect(_url(port, "etl_bi", "bi-pw-2")).close()
    finally:
        setup.init_schema(loaded)
