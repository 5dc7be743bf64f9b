"""Shared fixtures: real PostgreSQL, one throwaway database per need.

No test touches the user's ``warehouse`` database: every database created here
is named ``etl_test_<random>`` and dropped afterwards.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg2
import psycopg2.extensions
import psycopg2.sql
import pytest

from etl.run import setup
from etl.settings import PROJECT_ROOT, SAMPLE_DATA_DIR, Settings
from etl.warehouse import connection as db

#: Airflow reads its configuration once, at import: the whole session gets a throwaway
#: AIRFLOW_HOME (never the user's own), set here before any test module can import Airflow.
AIRFLOW_TEST_HOME = tempfile.mkdtemp(prefix="airflow-home-")
atexit.register(shutil.rmtree, AIRFLOW_TEST_HOME, True)
os.environ.update(
    {
        "AIRFLOW_HOME": AIRFLOW_TEST_HOME,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
    }
)

#: Where the team's full Olist subset lives (read-only); override with ETL_OLIST_DIR.
_OLIST_CANDIDATES = [
    os.environ.get("ETL_OLIST_DIR", ""),
    str(PROJECT_ROOT.parent / "shared" / "data" / "olist"),
    "/work/shared/data/olist",
]


def _server_url() -> str:
    """The test server: DATABASE_URL's server if set, else the local default."""
    return Settings.from_env().database_url


def _new_database_url(prefix: str = "etl_test") -> str:
    return db.server_url(_server_url(), f"{prefix}_{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="session")
def olist_dir() -> Path:
    for candidate in _OLIST_CANDIDATES:
        if candidate and (Path(candidate) / "olist_orders_dataset.csv.gz").exists():
            return Path(candidate)
    pytest.skip("the shared Olist subset was not found; set ETL_OLIST_DIR")


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE_DATA_DIR


def make_settings(url: str, **overrides) -> Settings:
    base = Settings.from_env()
    return base.with_overrides(database_url=url, database_url_explicit=True, **overrides)


def as_login(settings: Settings, login: str, password: str) -> Settings:
    """The same warehouse reached as another login (the roles of sql/roles.sql)."""
    params = db.parse_url(settings.database_url)
    params.update(user=login, password=password)
    return settings.with_overrides(database_url=psycopg2.extensions.make_dsn(**params))


@contextlib.contextmanager
def member_login(settings: Settings, *groups: str):
    """A throwaway login, member of ``groups`` (e.g. dashboard_reader, controls_reader), as settings."""
    login = f"etl_test_login_{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    admin = psycopg2.connect(db.server_url(settings.database_url))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(
                psycopg2.sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s IN ROLE {}").format(
                    psycopg2.sql.Identifier(login),
                    psycopg2.sql.SQL(", ").join(map(psycopg2.sql.Identifier, groups)),
                ),
                (password,),
            )
        yield as_login(settings, login, password)
    finally:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (login,))
            cur.execute(psycopg2.sql.SQL("DROP ROLE IF EXISTS {}").format(psycopg2.sql.Identifier(login)))
        admin.close()


@pytest.fixture
def fresh_db(tmp_path):
    """Settings for a new, empty (not even initialised) database, dropped afterwards."""
    url = _new_database_url()
    settings = make_settings(url, staging_dir=tmp_path / "staging")
    yield settings
    db.drop_database(url)


@pytest.fixture
def ready_db(fresh_db):
    """A new database migrated by `etl db init` (stages check the schema version, they never migrate)."""
    setup.init_schema(fresh_db)
    return fresh_db


@pytest.fixture(scope="module")
def module_db(tmp_path_factory):
    """One database shared by the tests of a module (e.g. after one full load)."""
    url = _new_database_url()
    settings = make_settings(url, staging_dir=tmp_path_factory.mktemp("staging"))
    yield settings
    db.drop_database(url)


def query(settings: Settings, statement: str, params=None) -> list[tuple]:
    conn = psycopg2.connect(settings.database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall()
    finally:
        conn.close()


def scalar(settings: Settings, statement: str, params=None):
    return query(settings, statement, params)[0][0]


@pytest.fixture
def copy_of_sample(tmp_path, sample_dir) -> Path:
    """A writable copy of the shipped sample, for tests that edit source files."""
    target = tmp_path / "olist"
    shutil.copytree(sample_dir, target)
    return target
