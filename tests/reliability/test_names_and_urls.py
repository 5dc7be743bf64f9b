"""Run ids that would climb out of the staging folder, and DATABASE_URLs that would print their password."""

from __future__ import annotations

import pytest

from etl import staging
from etl.errors import ConfigError
from etl.settings import Settings
from etl.warehouse import connection as db
from etl.warehouse.redact import scrub
from tests.test_cli import assert_one_line_error, etl

BAD_RUN_IDS = ["../../x", "..", "a/b", "/etc", "a\x00b", "", "-rf", "x" * 129, "run id", "é"]


@pytest.mark.parametrize("run_id", BAD_RUN_IDS)
def test_a_run_id_that_is_not_a_plain_name_is_refused(run_id, tmp_path):
    settings = Settings.from_env().with_overrides(staging_dir=tmp_path / "staging")
    with pytest.raises(ConfigError, match="is not allowed"):
        staging.run_dir(settings, run_id)
    with pytest.raises(ConfigError, match="is not allowed"):
        staging.clean_dir(settings, run_id)


@pytest.mark.parametrize(
    "run_id", ["daily-2018-08-01", "20261201T082618Z-1a2b3c4d", "manual__2024-01-01T00:00:00+00:00"]
)
def test_ordinary_run_ids_pass(run_id):
    assert staging.check_run_id(run_id) == run_id


@pytest.mark.parametrize("command", ["run", "ingest"])
def test_etl_refuses_a_traversing_run_id_before_writing_anything(command, fresh_db, tmp_path):
    outside = tmp_path / "x"
    staging_dir = tmp_path / "a" / "b" / "staging"
    proc = etl(
        command,
        "--run-id",
        "../../x",
        env={"DATABASE_URL": fresh_db.database_url, "ETL_STAGING_DIR": str(staging_dir)},
    )
    assert_one_line_error(proc, "run id '../../x' is not allowed")
    assert not outside.exists()
    assert not staging_dir.exists() or not any(p.is_file() for p in staging_dir.rglob("*"))


MALFORMED = [
    "postgresql://etl:CanaryPw-7d1f@[127.0.0.1/warehouse",
    "postgresql://etl:CanaryPw-7d1f@127.0.0.1:5432/warehouse?sslmode",
    "postgresql://etl:CanaryPw-7d1f@127.0.0.1:5432/warehouse?x=%zz",
    "etl:CanaryPw-7d1f@127.0.0.1/warehouse",
    "postgresql://etl:CanaryPw-7d1f@127.0.0.1:notaport/warehouse",
    "host=127.0.0.1 password='CanaryPw-7d1f' port=x",
    "postgresql://etl:Canary%50w-7d1f@[::1/warehouse",  # percent-encoded in the URL
]


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_database_url_is_one_line_without_its_password(url):
    proc = etl("db", "status", env={"DATABASE_URL": url}, timeout=60)
    assert_one_line_error(proc, "DATABASE_URL")
    assert "Canary" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("url", MALFORMED)
def test_connect_and_parse_url_never_carry_the_password(url):
    for call in (lambda: db.parse_url(url), lambda: db.connect(url, 2)):
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - any error, its text and its chain
            texts = [
                str(exc),
                repr(exc.__cause__),
                repr(exc.__context__ if not exc.__suppress_context__ else None),
            ]
            assert not any("Canary" in t for t in texts), texts


def test_scrub_removes_the_url_and_each_form_of_its_password():
    url = "postgresql://u:p%40ss-word@h/db"
    assert scrub(f"bad {url} here p@ss-word and p%40ss-word", url) == "bad <DATABASE_URL> here *** and ***"
