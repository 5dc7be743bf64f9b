"""Database sources read into Arrow: replay from the Parquet archive, partitioned reads, the
SQL sent to each dialect (SQL Server has no server here: its statement is checked against its
dialect and its SQLAlchemy reader runs on SQLite), and the column mapping against the per-row one."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import connectorx as cx  # the reader PostgreSQL sources used before: the types to keep
import pyarrow as pa
import pytest
import sqlalchemy as sa
import yaml

from etl.errors import SourceError
from etl.ingest import archive, arrow_rows, runner, sql_arrow
from etl.ingest.databases import TableMapping, normalise
from etl.ingest.records import TABLE_COLUMNS
from etl.ingest.state import Watermark
from tests.test_ingest_db import N, SqlDb, configure, source_entries


def table_text(summary: dict, table: str) -> str:
    return Path(summary["tables"][table]["path"]).read_text(encoding="utf-8")


def test_replay_maps_the_archived_parquet_batches_to_the_same_rows(ready_db, tmp_path, monkeypatch):
    source = SqlDb("sqlite", tmp_path)
    settings = configure(ready_db, tmp_path, monkeypatch, "sqlite", source.url)
    first = runner.ingest_source(settings, "db-1", "shop-orders")
    assert first["status"] == "succeeded", first["error"]
    lines = archive.read_manifest(settings, "shop-orders", first["archive_day"])
    assert [line["file"].endswith(".parquet") for line in lines] == [True] * 5
    assert sum(line["records"] for line in lines) == N

    inputs, counts = runner.replay_inputs(settings, "shop-orders", first["archive_day"], "replay-1")
    assert counts == {"payloads": 5, "records": N}
    assert Path(inputs["fact_orders"][0]).read_text(encoding="utf-8") == table_text(first, "fact_orders")


def test_batches_archived_as_json_before_arrow_still_replay(fresh_db, tmp_path, monkeypatch):
    settings = configure(fresh_db, tmp_path, monkeypatch, "sqlite", "sqlite:///unused.db")
    arch = archive.Archive(settings, "shop-orders", "old-run")
    rows = [{"id": 7, "cid": "c7", "status": "delivered", "created_at": "2024-05-01T08:07:00.000000"}]
    arch.put("orders_b000001", json.dumps(rows).encode(), records=1, kind="batch", extra={"entity": "orders"})
    inputs, counts = runner.replay_inputs(settings, "shop-orders", arch.day, "replay-old")
    assert counts == {"payloads": 1, "records": 1}
    text = Path(inputs["fact_orders"][0]).read_text(encoding="utf-8")
    assert ",delivered,2024-05-01 08:07:00," in text and ",shop-orders,7," in text


def test_a_partitioned_read_gives_the_same_rows_in_the_same_batches(ready_db, tmp_path, monkeypatch):
    source = SqlDb("postgres", tmp_path)
    try:
        plain = configure(ready_db, tmp_path, monkeypatch, "postgres", source.url)
        whole = runner.ingest_source(plain, "db-whole", "shop-orders")
        entries = source_entries("postgres", "TEST_SHOP_DB_URL", {"partition_on": "id", "partitions": 3})
        path = tmp_path / "partitioned.yml"
        path.write_text(yaml.safe_dump({"sources": entries}))
        parts = runner.ingest_source(plain.with_overrides(sources_file=path), "db-parts", "shop-orders")
        assert parts["status"] == "succeeded", parts["error"]
        assert parts["batches"] == whole["batches"] == -(-N // 25)
        assert parts["watermark"] == whole["watermark"] == "2024-05-01T09:59:00.000000"
        lines = lambda s: sorted(table_text(s, "fact_orders").splitlines())  # noqa: E731
        assert lines(parts) == lines(whole) and len(lines(whole)) == N + 1
    finally:
        source.drop()


def test_sql_server_statements_as_its_dialect_writes_them():
    since = Watermark("orders", "2024-05-01T09:59:00.000000", ["5"])
    stmt = sql_arrow.statement("mssql", relation="sales.order", query=None, cursor="updated_at", since=since)
    compiled = stmt.compile(dialect=sa.dialects.registry.load("mssql.pymssql")(paramstyle="pyformat"))
    assert " ".join(str(compiled).split()) == "SELECT * FROM sales.[order] WHERE updated_at >= %(wm)s"
    assert compiled.params == {"wm": datetime(2024, 5, 1, 9, 59)}  # a bound value, never text in the SQL
    by_query = sql_arrow.statement(
        "mssql",
        relation=None,
        query="SELECT id FROM dbo.orders",
        cursor="id",
        since=Watermark("q", f"{42:020d}"),
    )
    text = " ".join(str(by_query.compile(dialect=sa.dialects.registry.load("mssql.pymssql")())).split())
    assert text == "SELECT * FROM (SELECT id FROM dbo.orders) AS q WHERE id >= :wm"
    assert by_query.compile().params == {"wm": 42}
    # connectorx dialects get the watermark as the dialect's own literal
    mysql = sql_arrow.statement("mysql", relation="shop.order", query=None, cursor="updated_at", since=since)
    assert " ".join(sql_arrow.compiled_sql("mysql", mysql, literal=True).split()) == (
        "SELECT * FROM shop.`order` WHERE updated_at >= '2024-05-01 09:59:00'"
    )


def test_the_sqlalchemy_reader_gives_the_rows_connectorx_gives(tmp_path):
    """SQL Server's reader path (SQLAlchemy rows -> Arrow), run against SQLite."""
    source = SqlDb("sqlite", tmp_path)
    stmt = sql_arrow.statement("sqlite", relation="orders", query=None, cursor=None, since=None)
    by_sqlalchemy = list(
        sql_arrow.rebatch(
            sql_arrow._sqlalchemy_batches(sa.engine.make_url(source.url), stmt, 25, "sqlite"), 25
        )
    )
    by_connectorx = list(
        sql_arrow.arrow_batches(
            "sqlite", source.url, relation="orders", query=None, cursor=None, since=None, batch_size=25
        )
    )
    assert [b.num_rows for b in by_sqlalchemy] == [b.num_rows for b in by_connectorx] == [25, 25, 25, 25, 20]
    mapping = TableMapping.from_options("shop-orders", source_entries("sqlite", "X")[1])
    mapped = [
        [arrow_rows.map_batch(mapping, b, "America/Sao_Paulo").to_pylist() for b in batches]
        for batches in (by_sqlalchemy, by_connectorx)
    ]
    assert mapped[0] == mapped[1]


def test_column_mapping_matches_the_per_row_mapping():
    batch = pa.record_batch(
        {
            "id": pa.array([1, 2, None], pa.int64()),
            "cid": pa.array(["c1", "c1", None]),
            "status": pa.array(["delivered", "2024-05-01T08:00:00", "2024-05-01T08:00:00+02:00"]),
            "placed": pa.array(
                [
                    datetime(2024, 5, 1, 11, 30, tzinfo=UTC),
                    None,
                    datetime(2024, 1, 2, 3, 4, 5, 600, tzinfo=UTC),
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "local": pa.array(
                [datetime(2024, 5, 1, 8, 0, 0, 999999), None, datetime(2024, 5, 2)], pa.timestamp("us")
            ),
            "amount": pa.array([Decimal("12.50"), None, Decimal("0.01")], pa.decimal128(10, 2)),
            "day": pa.array([date(2024, 5, 1), None, date(2024, 5, 3)]),
            "raw": pa.array([b"\x01\xff", None, b""]),
        }
    )
    mapping = TableMapping(
        "shop",
        "fact_payments",
        {"order_id": "id", "payment_type": "status", "payment_value": "amount", "payment_sequential": "cid"},
        hash_ids=["order_id"],
        id_field="id",
        currency="BRL",
    )
    orders = TableMapping(
        "shop",
        "fact_orders",
        {
            "order_id": "cid",
            "order_purchase_timestamp": "placed",
            "order_approved_at": "local",
            "order_status": "raw",
            "order_estimated_delivery_date": "day",
        },
        hash_ids=["order_id"],
        id_field="placed",
    )
    for m in (mapping, orders):
        by_columns = arrow_rows.map_batch(m, batch, "America/Sao_Paulo").to_pylist()
        by_rows = []
        for record in batch.to_pylist():
            row = m.row({k: normalise(v) for k, v in record.items()}, "America/Sao_Paulo")
            by_rows.append({c: (None if row.get(c) is None else str(row[c])) for c in TABLE_COLUMNS[m.table]})
        assert by_columns == by_rows, m.table


def test_watermark_arithmetic_by_columns_matches_the_per_row_one():
    batch = pa.record_batch(
        {
            "id": pa.array([3, 1, 2, 4]),
            "updated_at": pa.array(
                [
                    datetime(2024, 5, 1, 9),
                    datetime(2024, 5, 1, 10),
                    datetime(2024, 5, 1, 10),
                    datetime(2024, 5, 1, 8),
                ],
                pa.timestamp("us"),
            ),
        }
    )
    since = Watermark("orders", "2024-05-01T09:00:00.000000", ["3"])
    new = arrow_rows.fresh(batch, "updated_at", "id", since)
    assert new.column("id").to_pylist() == [1, 2]
    mark = arrow_rows.advanced(since, "orders", new, "updated_at", "id")
    assert mark == Watermark("orders", "2024-05-01T10:00:00.000000", ["1", "2"])
    numbers = pa.record_batch({"id": pa.array(["a", "b"]), "seq": pa.array([7, 12])})
    assert arrow_rows.advanced(None, "q", numbers, "seq", "id") == Watermark("q", f"{12:020d}", ["b"])


EVERY_TYPE = (
    "CREATE TABLE every_type (i2 smallint, i4 int, i8 bigint, f4 real, f8 double precision, "
    "n numeric(10, 2), b boolean, d date, ts timestamp, tz timestamptz, tx text, vc varchar(5), "
    "bp char(3), by bytea, u uuid, tm time)"
)
EVERY_ROW = (
    "INSERT INTO every_type VALUES (1, 2, 3, 1.5, 2.25, 12.50, true, '2024-01-02', "
    "'2024-01-02 03:04:05.123456', '2024-01-02 03:04:05+02', e'a,\"b\"\\nc', '', ' x', '\\x00ff', "
    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '10:11:12'), "
    "(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
)


def test_postgres_copy_types_every_column_as_connectorx_did(tmp_path):
    """COPY CSV parsed by pyarrow: connectorx's Arrow types, NULL apart from '', numeric as printed."""
    source = SqlDb("postgres", tmp_path)
    try:
        source.execute([EVERY_TYPE, EVERY_ROW])
        (batch,) = sql_arrow.arrow_batches(
            "postgres", source.url, relation="every_type", query=None, cursor=None, since=None, batch_size=10
        )
        url = sql_arrow.connectorx_url("postgres", sa.engine.make_url(source.url))
        before = cx.read_sql(url, "SELECT * FROM every_type", return_type="arrow")
        for name in before.schema.names:
            if name == "n":  # numeric: connectorx's decimal(38, 10) rounded past 10 digits
                assert batch.column(name).to_pylist() == ["12.50", None]
                continue
            got, was = batch.schema.field(name).type, before.schema.field(name).type
            assert got == was or (pa.types.is_timestamp(got) and got.unit == was.unit and got.tz), name
            assert batch.column(name).to_pylist() == before.column(name).to_pylist(), name
        assert batch.column("tx").to_pylist() == ['a,"b"\nc', None] and batch.column("vc")[0].as_py() == ""
    finally:
        source.drop()


def test_postgres_partitions_take_every_row_once_nulls_included(tmp_path):
    source = SqlDb("postgres", tmp_path)
    try:
        source.execute(["INSERT INTO orders (id, cid) SELECT g, NULL FROM generate_series(1000, 1004) g"])
        source.execute(
            ["ALTER TABLE orders ADD COLUMN part int", "UPDATE orders SET part = id WHERE id < 1002"]
        )
        batches = sql_arrow.arrow_batches(
            "postgres",
            source.url,
            relation="orders",
            query=None,
            cursor=None,
            since=None,
            batch_size=40,
            partition_on="part",
            partitions=3,
        )
        ids = sorted(i for b in batches for i in b.column("id").to_pylist())
        assert ids == [*range(N), *range(1000, 1005)]
    finally:
        source.drop()


def test_postgres_read_stopped_early_or_failing_leaves_no_session(tmp_path):
    source = SqlDb("postgres", tmp_path)
    try:
        source.execute(["INSERT INTO orders (id) SELECT g FROM generate_series(1000, 400000) g"])
        read = lambda **kw: sql_arrow.arrow_batches(  # noqa: E731
            "postgres", source.url, query=None, cursor=None, since=None, batch_size=1000, **kw
        )
        batches = read(relation="orders")
        assert next(batches).num_rows == 1000
        batches.close()  # the consumer stops: the COPY is cancelled, the connection closed
        with pytest.raises(SourceError) as caught:
            list(read(relation="no_such_table"))
        assert str(caught.value).startswith("postgres read at 127.0.0.1:5432 failed (")
        assert "no_such_table" in str(caught.value) and "\n" not in str(caught.value)
        sessions = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        conn = source.connect()
        with conn.cursor() as cur:
            cur.execute(sessions)
            assert cur.fetchone()[0] == 0
        conn.close()
    finally:
        source.drop()
