"""A source's configuration error fails that source only, in one line, without its password."""

from __future__ import annotations

import yaml

from tests.conftest import scalar
from tests.test_cli import etl

CANARY = "CanarySourcePw-41c9"


def test_bad_urls_fail_their_own_source_and_the_good_one_loads(fresh_db, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "c.csv").write_text("customer_id,customer_unique_id\nc1,u1\nc2,u2\n")
    mapping = {"table": "dim_customers", "from": "customers", "id_field": "customer_id"}
    sources = [
        {
            "name": "pg-bad-port",
            "kind": "postgres",
            "url": f"postgresql://etl:{CANARY}@127.0.0.1:abc/shop",
            **mapping,
        },
        {
            "name": "my-bad-port",
            "kind": "mysql",
            "url": f"mysql://root:{CANARY}@127.0.0.1:abc/shop",
            **mapping,
        },
        {
            "name": "mongo-bad-port",
            "kind": "mongodb",
            "url": f"mongodb://etl:{CANARY}@127.0.0.1:abc/shop",
            "collection": "customers",
            "table": "dim_customers",
            "id_field": "customer_id",
        },
        {"name": "pg-no-scheme", "kind": "postgres", "url": f"etl:{CANARY}@127.0.0.1/shop", **mapping},
        {
            "name": "drops",
            "kind": "files",
            "path": str(drop),
            "table": "dim_customers",
            "hash_ids": ["customer_id", "customer_unique_id"],
        },
    ]
    (tmp_path / "sources.yml").write_text(yaml.safe_dump({"sources": sources}))
    proc = etl(
        "ingest",
        env={"DATABASE_URL": fresh_db.database_url, "ETL_SOURCES_FILE": str(tmp_path / "sources.yml")},
    )
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert CANARY not in proc.stdout + proc.stderr
    status = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines() if line.strip()}
    assert status == {
        "pg-bad-port": "failed",
        "my-bad-port": "failed",
        "mongo-bad-port": "failed",
        "pg-no-scheme": "failed",
        "drops": "succeeded",
    }
    warnings = [line for line in proc.stderr.splitlines() if "failed and was not loaded" in line]
    assert len(warnings) == 4, proc.stderr
    by_source = {w.split("source ", 1)[1].split()[0]: w for w in warnings}
    assert "is not valid (Port could not be cast to integer value as 'abc')" in by_source["pg-bad-port"]
    assert "postgresql://127.0.0.1:abc/shop" in by_source["pg-bad-port"]  # where, without the user
    assert "is not valid" in by_source["my-bad-port"]
    assert "is not valid" in by_source["mongo-bad-port"]
    assert "has no scheme" in by_source["pg-no-scheme"]
    assert scalar(fresh_db, "SELECT count(*) FROM dim_customers") == 2
