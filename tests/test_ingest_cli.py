"""`etl ingest` and `etl replay` as a person runs them."""

import yaml

from tests.conftest import scalar
from tests.test_cli import assert_one_line_error, etl


def test_ingest_a_file_source_then_replay_it(fresh_db, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "c.csv").write_text("customer_id,customer_unique_id\nc1,u1\nc2,u2\n")
    sources = tmp_path / "sources.yml"
    sources.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {
                        "name": "drops",
                        "kind": "files",
                        "path": str(drop),
                        "table": "dim_customers",
                        "hash_ids": ["customer_id", "customer_unique_id"],
                    }
                ]
            }
        )
    )
    env = {
        "DATABASE_URL": fresh_db.database_url,
        "ETL_SOURCES_FILE": str(sources),
        "ETL_STAGING_DIR": str(tmp_path / "staging"),
    }
    import os
    import subprocess
    import sys

    def run(*a: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "etl.cli", *a],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=120,
        )

    proc = run("ingest")
    assert proc.returncode == 0, proc.stderr
    assert "drops" in proc.stdout and "succeeded" in proc.stdout
    assert scalar(fresh_db, "SELECT count(*) FROM dim_customers") == 2
    day = next((tmp_path / "staging" / "raw" / "drops").iterdir()).name
    proc = run("replay", "--source", "drops", "--date", day)
    assert proc.returncode == 0, proc.stderr
    assert "replayed drops" in proc.stdout


def test_replay_of_a_day_never_archived_is_one_line(fresh_db):
    proc = etl(
        "replay", "--source", "shopify", "--date", "1999-01-01", env={"DATABASE_URL": fresh_db.database_url}
    )
    assert_one_line_error(proc, "no archive for source shopify on 1999-01-01")


def test_ingest_unknown_source_is_one_line(fresh_db):
    proc = etl("ingest", "--source", "nope", env={"DATABASE_URL": fresh_db.database_url})
    assert_one_line_error(proc, "no source named 'nope'")
