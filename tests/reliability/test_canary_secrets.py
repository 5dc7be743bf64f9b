"""Canary secrets: a whole run with secret-bearing config, then every file, table and message it wrote is grepped.

The secrets are the warehouse password (in DATABASE_URL; the server trusts
loopback, so any password connects), three vendor API credentials (the
vendor server on 127.0.0.1 accepts exactly them) and the password of a
database source that cannot be reached (so its error is reported). None may
appear in stdout, stderr, the staging folder (raw archive included, gzip and
zstd opened) or any table of the warehouse.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

import psycopg2
import yaml
import zstandard
from psycopg2 import sql

from tests import vendor_server
from tests.vendor_server import VendorServer

CANARIES = {
    "db": "CanaryDbPw-5e1a77",
    "shopify": "shpat_CanaryShopify-9b2c",
    "stripe": "sk_live_CanaryStripe-40d1",
    "woo_key": "ck_CanaryWooKey-77aa",
    "woo_secret": "cs_CanaryWooSecret-1f3e",
    "mysql": "CanaryMysqlPw-c0ffee",
}


def _sources(url: str) -> dict:
    return {
        "defaults": {"http": {"read_timeout": 2, "backoff_base": 0.01, "rate_per_minute": 6000}},
        "sources": [
            {
                "name": "shopify",
                "kind": "shopify",
                "base_url": url,
                "page_size": 3,
                "shop": "canary",
                "auth": {"token": {"env": "CANARY_SHOPIFY_TOKEN"}},
            },
            {
                "name": "stripe",
                "kind": "stripe",
                "base_url": url,
                "page_size": 3,
                "auth": {"key": {"env": "CANARY_STRIPE_KEY"}},
            },
            {
                "name": "woocommerce",
                "kind": "woocommerce",
                "base_url": url,
                "page_size": 3,
                "auth": {"key": {"env": "CANARY_WOO_KEY"}, "secret": {"env": "CANARY_WOO_SECRET"}},
            },
            {
                "name": "shop-db",
                "kind": "mysql",
                "url": {"env": "CANARY_MYSQL_URL"},
                "from": "customers",
                "table": "dim_customers",
                "id_field": "customer_id",
            },
        ],
    }


def _grep_files(root, secrets: list[str]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        elif path.suffix == ".zst":  # copied files in the raw archive
            data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        hits += [f"{path}: {s}" for s in secrets if s.encode() in data]
    return hits


def _grep_tables(url: str, secrets: list[str]) -> list[str]:
    conn = psycopg2.connect(url)
    hits = []
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'"
            )
            tables = cur.fetchall()
            for schema, table in tables:
                for secret in secrets:
                    cur.execute(
                        sql.SQL("SELECT count(*) FROM {}.{} t WHERE t::text LIKE %s").format(
                            sql.Identifier(schema), sql.Identifier(table)
                        ),
                        (f"%{secret}%",),
                    )
                    if cur.fetchone()[0]:
                        hits.append(f"{schema}.{table}: {secret}")
    finally:
        conn.close()
    assert len(tables) > 10  # the warehouse was really there
    return hits


def test_no_canary_secret_reaches_any_file_table_or_message(fresh_db, tmp_path, sample_dir, monkeypatch):
    monkeypatch.setattr(vendor_server, "SHOPIFY_TOKEN", CANARIES["shopify"])
    monkeypatch.setattr(vendor_server, "STRIPE_KEY", CANARIES["stripe"])
    monkeypatch.setattr(vendor_server, "WOO_KEY", CANARIES["woo_key"])
    monkeypatch.setattr(vendor_server, "WOO_SECRET", CANARIES["woo_secret"])
    params = psycopg2.extensions.parse_dsn(fresh_db.database_url)
    db_url = (
        f"postgresql://{params.get('user', 'postgres')}:{CANARIES['db']}@{params.get('host', '127.0.0.1')}:"
        f"{params.get('port', '5432')}/{params['dbname']}"
    )
    staging = tmp_path / "staging"
    with VendorServer(n=5, page_size=3) as server:
        (tmp_path / "sources.yml").write_text(yaml.safe_dump(_sources(server.url)))
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "etl.cli",
                "-v",
                "run",
                "--data-dir",
                str(sample_dir),
                "--no-quality-gate",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={
                **os.environ,
                "DATABASE_URL": db_url,
                "ETL_STAGING_DIR": str(staging),
                "ETL_SOURCES_FILE": str(tmp_path / "sources.yml"),
                "CANARY_SHOPIFY_TOKEN": CANARIES["shopify"],
                "CANARY_STRIPE_KEY": CANARIES["stripe"],
                "CANARY_WOO_KEY": CANARIES["woo_key"],
                "CANARY_WOO_SECRET": CANARIES["woo_secret"],
                "CANARY_MYSQL_URL": f"mysql://etl:{CANARIES['mysql']}@127.0.0.1:1/shop",
            },
        )
        ok_pages = {v: server.ok_pages(v) for v in ("shopify", "stripe", "woocommerce")}
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert all(n > 0 for n in ok_pages.values()), ok_pages  # each API accepted its canary credential
    assert "shop-db failed and was not loaded" in proc.stderr  # the unreachable one reported its error
    secrets = list(CANARIES.values())
    output_hits = [
        f"{name}: {s}"
        for name, text in (("stdout", proc.stdout), ("stderr", proc.stderr))
        for s in secrets
        if s in text
    ]
    assert output_hits == []
    assert any((staging / "raw").rglob("*.json.gz"))  # API pages were archived
    assert _grep_files(staging, secrets) == []
    assert _grep_tables(fresh_db.database_url, secrets) == []
