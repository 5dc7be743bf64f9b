"""Database sources: real PostgreSQL and MariaDB (own database, dropped after), SQLite on a
temp file, MongoDB through mongomock (no MongoDB server exists on these machines)."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timedelta

import mongomock
import psycopg2
import pymysql
import pytest
import yaml

from etl.ingest import archive, runner
from etl.ingest.records import vendor_id
from etl.run import replay
from etl.warehouse import connection as db
from tests.conftest import _server_url, query, scalar

N = 120
T0 = datetime(2024, 5, 1, 8, 0, 0)


def customers(n=N):
    return [(f"c{k}", f"u{k // 2}", f"{(1000 + k) % 99999:05d}", "sao paulo", "SP") for k in range(n)]


def orders(n=N, start=0):
    return [
        (k, f"c{k % N}", "delivered", T0 + timedelta(minutes=k), T0 + timedelta(minutes=k))
        for k in range(start, start + n)
    ]


CUSTOMERS_DDL = (
    "CREATE TABLE customers (cid VARCHAR(20) PRIMARY KEY, uid VARCHAR(20), zip VARCHAR(5), "
    "city VARCHAR(50), state VARCHAR(2))"
)
ORDERS_DDL = (
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, cid VARCHAR(20), status VARCHAR(20), "
    "created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL)"
)


class SqlDb:
    """A throwaway source database of one kind, filled through its own driver."""

    def __init__(self, kind: str, tmp_path) -> None:
        self.kind = kind
        self.name = f"etl_src_{uuid.uuid4().hex[:8]}"
        if kind == "postgres":
            admin = psycopg2.connect(db.server_url(_server_url(), "postgres"))
            admin.autocommit = True
            admin.cursor().execute(f'CREATE DATABASE "{self.name}"')
            admin.close()
            self.url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{self.name}"
            self.connect = lambda: psycopg2.connect(host="127.0.0.1", user="postgres", dbname=self.name)
            self.mark = "%s"
        elif kind == "mysql":
            admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
            admin.cursor().execute(f"CREATE DATABASE `{self.name}`")
            admin.close()
            self.url = f"mysql://root@127.0.0.1:3306/{self.name}"
            self.connect = lambda: pymysql.connect(
                host="127.0.0.1", user="root", password="", database=self.name
            )
            self.mark = "%s"
        else:
            path = tmp_path / "shop.sqlite"
            self.url = f"sqlite:///{path}"
            self.connect = lambda: sqlite3.connect(path)
            self.mark = "?"
        self.execute([CUSTOMERS_DDL, ORDERS_DDL])
        self.insert("customers", customers())
        self.insert("orders", orders())

    def execute(self, statements):
        conn = self.connect()
        cur = conn.cursor()
        for s in statements:
            cur.execute(s)
        conn.commit()
        conn.close()

    def insert(self, table, rows):
        conn = self.connect()
        marks = ", ".join([self.mark] * len(rows[0]))
        conn.cursor().executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        conn.commit()
        conn.close()

    def drop(self):
        if self.kind == "postgres":
            db.drop_database(db.server_url(_server_url(), self.name))
        elif self.kind == "mysql":
            admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
            admin.cursor().execute(f"DROP DATABASE IF EXISTS `{self.name}`")
            admin.close()


def source_entries(kind: str, url_env: str, extra: dict | None = None) -> list[dict]:
    common = {
        "kind": kind,
        "url": {"env": url_env},
        "batch_size": 25,
        "id_namespace": "shop",
        **(extra or {}),
    }
    return [
        {
            "name": "shop-customers",
            **common,
            "table": "dim_customers",
            "id_field": "cid",
            "hash_ids": ["customer_id", "customer_unique_id"],
            "columns": {
                "customer_id": "cid",
                "customer_unique_id": "uid",
                "customer_zip_code_prefix": "zip",
                "customer_city": "city",
                "customer_state": "state",
            },
            **(
                {"collection": "customers", "database": "shop"}
                if kind == "mongodb"
                else {"from": "customers"}
            ),
        },
        {
            "name": "shop-orders",
            **common,
            "table": "fact_orders",
            "cursor": "updated_at",
            "id_field": "id",
            "hash_ids": ["order_id", "customer_id"],
            "columns": {
                "order_id": "id",
                "customer_id": "cid",
                "order_status": "status",
                "order_purchase_timestamp": "created_at",
            },
            **({"collection": "orders", "database": "shop"} if kind == "mongodb" else {"from": "orders"}),
        },
    ]


def configure(fresh_db, tmp_path, monkeypatch, kind, url):
    monkeypatch.setenv("TEST_SHOP_DB_URL", url)
    path = tmp_path / "sources.yml"
    path.write_text(yaml.safe_dump({"sources": source_entries(kind, "TEST_SHOP_DB_URL")}))
    return fresh_db.with_overrides(sources_file=path)


def order_ids(settings, ids):
    return scalar(
        settings,
        "SELECT count(*) FROM fact_orders WHERE order_id = ANY(%s)",
        ([vendor_id("shop", "order", k) for k in ids],),
    )


def check_incremental(settings, resources, add_rows):
    first = replay.ingest_and_load(settings, "db-1", resources=resources)
    by = {s["source"]: s for s in first["sources"]}
    assert by["shop-orders"]["status"] == "succeeded", by["shop-orders"]["error"]
    assert by["shop-orders"]["records_new"] == N
    assert by["shop-orders"]["batches"] == -(-N // 25)  # streamed in batches of 25
    assert order_ids(settings, range(N)) == N
    assert query(settings, "SELECT table_name, rule, detail FROM quarantine LIMIT 3") == []
    lines = archive.read_manifest(settings, "shop-orders", by["shop-orders"]["archive_day"])
    assert sum(line["records"] for line in lines) == N and len(lines) == by["shop-orders"]["batches"]

    second = replay.ingest_and_load(settings, "db-2", resources=resources)
    orders_2 = next(s for s in second["sources"] if s["source"] == "shop-orders")
    assert orders_2["records_new"] == 0 and orders_2["tables"] == {}

    add_rows()
    third = replay.ingest_and_load(settings, "db-3", resources=resources)
    orders_3 = next(s for s in third["sources"] if s["source"] == "shop-orders")
    assert orders_3["records_new"] == 3
    assert order_ids(settings, range(N + 3)) == N + 3


@pytest.mark.parametrize("kind", ["postgres", "mysql", "sqlite"])
def test_sql_source_streams_and_reads_incrementally(kind, fresh_db, tmp_path, monkeypatch):
    source = SqlDb(kind, tmp_path)
    try:
        settings = configure(fresh_db, tmp_path, monkeypatch, kind, source.url)
        check_incremental(settings, runner.Resources(), lambda: source.insert("orders", orders(3, start=N)))
    finally:
        source.drop()


def test_mongodb_source_with_mongomock(fresh_db, tmp_path, monkeypatch):
    client = mongomock.MongoClient()
    shop = client["shop"]
    shop.customers.insert_many([dict(zip(("cid", "uid", "zip", "city", "state"), c)) for c in customers()])
    keys = ("id", "cid", "status", "created_at", "updated_at")
    shop.orders.insert_many([dict(zip(keys, o)) for o in orders()])
    settings = configure(fresh_db, tmp_path, monkeypatch, "mongodb", "mongodb://mock/shop")
    resources = runner.Resources(mongo_client_factory=lambda url: client)
    client.close = lambda: None  # the factory hands out the same in-memory client every run
    check_incremental(
        settings, resources, lambda: shop.orders.insert_many([dict(zip(keys, o)) for o in orders(3, start=N)])
    )


def test_unreachable_database_fails_only_that_source(ready_db, tmp_path, monkeypatch):
    settings = configure(ready_db, tmp_path, monkeypatch, "mysql", "mysql://root@127.0.0.1:1/nope")
    summary = runner.ingest_source(settings, "db-down", "shop-orders")
    assert summary["status"] == "failed" and "127.0.0.1:1" in summary["error"]
    assert query(settings, "SELECT count(*) FROM ingest_watermarks") == [(0,)]
