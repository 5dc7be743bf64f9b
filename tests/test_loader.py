"""The loader against the real PostgreSQL: binary COPY, merges, SCD2, fallback, roles, modes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import psycopg2
import psycopg2.errors
import pyarrow as pa
import pytest

from etl import binary_copy
from etl.load import chunk_order, merge
from etl.publish import aggregates
from etl.run import setup
from etl.run.stages import run_pipeline
from etl.warehouse import connection as db
from etl.warehouse import deferred_indexes, schema
from tests.conftest import query, scalar

UTC = UTC


@pytest.fixture
def conn(fresh_db):
    db.ensure_database(fresh_db.database_url)
    connection = db.connect(fresh_db.database_url)
    yield connection
    connection.close()


def _items(prices: list[int], note: list[str | None]) -> pa.Table:
    n = len(prices)
    return pa.table(
        {
            "order_id": [f"{i:032x}" for i in range(n)],
            "line": pa.array(range(1, n + 1), pa.int64()),  # int64 into SMALLINT: cast by the loader
            "at": pa.array(
                [datetime(2017, 3, 1, 12, i % 60, tzinfo=UTC) for i in range(n)], pa.timestamp("ns", tz="UTC")
            ),
            "price_cents": pa.array(prices, pa.int64()),
            "note": pa.array(note, pa.large_string()),
            "payload": pa.array([f'{{"n": {i}}}' for i in range(n)]),  # JSON text into jsonb: binary COPY
        }
    )


def _create_items(cur) -> None:
    cur.execute("""CREATE TABLE items (order_id CHAR(32), line SMALLINT, at TIMESTAMPTZ NOT NULL,
                   price_cents BIGINT, note TEXT, payload JSONB, PRIMARY KEY (order_id, line))""")


def test_binary_copy_loads_types_then_merges_only_changes(conn):
    with conn, conn.cursor() as cur:
        _create_items(cur)
        first = merge.load_table(
            cur, "items", _items([100, 200, 300], ["a", None, "c"]), key=("order_id", "line")
        )
    assert (first.path, first.method, first.rows_inserted) == ("direct", "copy", 3)  # jsonb in binary too
    assert first.bytes > 0
    rows = query_conn(conn, "SELECT line, at, price_cents, note, payload->>'n' FROM items ORDER BY line")
    assert rows == [
        (1, datetime(2017, 3, 1, 12, 0, tzinfo=UTC), 100, "a", "0"),
        (2, datetime(2017, 3, 1, 12, 1, tzinfo=UTC), 200, None, "1"),
        (3, datetime(2017, 3, 1, 12, 2, tzinfo=UTC), 300, "c", "2"),
    ]
    with conn, conn.cursor() as cur:
        again = merge.load_table(
            cur, "items", _items([100, 200, 300], ["a", None, "c"]), key=("order_id", "line")
        )
        changed = merge.load_table(
            cur, "items", _items([100, 250, 300, 400], ["a", None, "c", "d"]), key=("order_id", "line")
        )
    assert (again.rows_inserted, again.rows_updated, again.rows_unchanged) == (0, 0, 3)
    assert (changed.rows_inserted, changed.rows_updated, changed.rows_unchanged) == (1, 1, 2)
    assert scalar_conn(conn, "SELECT sum(price_cents) FROM items") == 1050


def test_empty_table_gets_a_direct_copy(conn):
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE plain (id BIGINT PRIMARY KEY, label CHAR(3), ok BOOLEAN)")
        result = merge.load_table(
            cur, "plain", pa.table({"id": [1, 2], "label": ["abc", "de"], "ok": [True, None]}), key=("id",)
        )
    assert (result.path, result.rows_inserted) == ("direct", 2)
    assert query_conn(conn, "SELECT id, label, ok FROM plain ORDER BY id") == [
        (1, "abc", True),
        (2, "de ", None),
    ]


def test_rows_are_ordered_chunk_by_chunk_keeping_input_order_within_a_chunk():
    week = 7 * 86_400 * 1_000_000
    day = lambda d: datetime(2017, 1, d, tzinfo=UTC)  # noqa: E731  # 2017-01-05 starts an epoch week
    data = pa.table(
        {
            "id": [1, 2, 3, 4, 5, 6],
            "at": pa.array([day(20), day(2), day(21), day(3), day(6), day(1)], pa.timestamp("ns", tz="UTC")),
        }
    )
    ordered = chunk_order.by_chunk(data, chunk_order.TimePartitioning("at", week))
    # weeks: [..-01-04] holds 2, 4, 6; [01-05..01-11] holds 5; [01-19..01-25] holds 1, 3 (input order kept)
    assert ordered.column("id").to_pylist() == [2, 4, 6, 5, 1, 3]
    assert chunk_order.by_chunk(data, None) is data
    assert chunk_order.by_chunk(data, chunk_order.TimePartitioning("other", week)) is data
    dates = pa.table({"id": [1, 2], "d": pa.array([day(20).date(), day(2).date()], pa.date32())})
    assert chunk_order.by_chunk(dates, chunk_order.TimePartitioning("d", week)).column("id").to_pylist() == [
        2,
        1,
    ]


def test_hypertable_load_is_ordered_by_chunk_and_loses_nothing(conn):
    with conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
        if cur.fetchone() is None:
            pytest.skip("TimescaleDB is not installed on this server")
        cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        cur.execute("CREATE TABLE plain_t (id BIGINT, at TIMESTAMPTZ NOT NULL)")
        cur.execute("CREATE TABLE hyper (id BIGINT, at TIMESTAMPTZ NOT NULL, PRIMARY KEY (id, at))")
        cur.execute("SELECT create_hypertable('hyper', by_range('at', INTERVAL '1 day'))")
        assert chunk_order.time_partitioning(cur, "plain_t") is None
        assert chunk_order.time_partitioning(cur, "hyper") == chunk_order.TimePartitioning(
            "at", 86_400 * 10**6
        )
        ids = list(range(300))
        at = [datetime(2017, 3, 1 + (i * 7) % 20, i % 24, tzinfo=UTC) for i in ids]  # 20 days, shuffled
        result = merge.load_table(
            cur,
            "hyper",
            pa.table({"id": ids, "at": pa.array(at, pa.timestamp("us", tz="UTC"))}),
            key=("id", "at"),
        )
    assert (result.path, result.rows_inserted) == ("direct", 300)
    assert query_conn(conn, "SELECT id, at FROM hyper ORDER BY id") == list(zip(ids, at))
    assert scalar_conn(conn, "SELECT count(*) FROM show_chunks('hyper')") == 20


def test_bad_data_fails_the_transaction_not_silently(conn):
    with pytest.raises(psycopg2.errors.NotNullViolation):
        with conn, conn.cursor() as cur:
            _create_items(cur)
            table = _items([1, 2], ["a", "b"]).set_column(
                2, "at", pa.array([None, None], pa.timestamp("us", tz="UTC"))
            )
            merge.load_table(cur, "items", table, key=("order_id", "line"))
    assert scalar_conn(conn, "SELECT to_regclass('items') IS NULL")  # the whole transaction rolled back


def test_copy_refused_falls_back_to_batched_insert_and_says_so(conn, caplog):
    # PostgreSQL itself refuses COPY into a view whose inserts go through a rule
    # ("cannot copy to view"), while INSERT through the rule works.
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE landing (id BIGINT, label TEXT)")
        cur.execute("CREATE VIEW landing_v AS SELECT id, label FROM landing WHERE id >= 0")
        cur.execute(
            "CREATE RULE landing_ins AS ON INSERT TO landing_v DO INSTEAD "
            "INSERT INTO landing VALUES (NEW.id, NEW.label)"
        )
        types = binary_copy.column_types(cur, "landing_v")
        data = binary_copy.arrow_for(pa.table({"id": list(range(12_000)), "label": ["x"] * 12_000}), types)
        with caplog.at_level(logging.WARNING, logger="etl.binary_copy"):
            result = binary_copy.copy_or_insert(cur, "landing_v", data)
    assert result.method == "insert-fallback"
    assert "refused" in caplog.text and "landing_v" in caplog.text
    assert scalar_conn(conn, "SELECT count(*) FROM landing") == 12_000


def test_insert_method_setting_loads_the_same_rows(conn):
    with conn, conn.cursor() as cur:
        _create_items(cur)
        result = merge.load_table(
            cur, "items", _items([5, 6], ["a", "b"]), key=("order_id", "line"), method="insert"
        )
    assert result.method == "insert-fallback"
    assert scalar_conn(conn, "SELECT sum(price_cents) FROM items") == 11


def test_scd2_keeps_history_and_facts_point_at_the_version_of_their_time(fresh_db, copy_of_sample):
    run_pipeline(fresh_db, data_dir=copy_of_sample, run_id="scd-1")
    product, order_item = query(
        fresh_db,
        """SELECT product_id, order_id FROM fact_order_items
                                             ORDER BY order_id LIMIT 1""",
    )[0]
    _edit_csv(
        copy_of_sample / "olist_products_dataset.csv",
        "product_id",
        {product},
        "product_category_name",
        "brinquedos",
    )
    run_pipeline(fresh_db, data_dir=copy_of_sample, run_id="scd-2")
    versions = query(
        fresh_db,
        """SELECT category_name, is_current, valid_from = '-infinity', valid_to = 'infinity'
                                    FROM dim_products WHERE product_id = %s ORDER BY valid_from""",
        (product,),
    )
    assert versions[1] == ("brinquedos", True, False, True)
    assert versions[0][1:] == (False, True, False)
    # The 2017/2018 order still points at the version current when it was bought.
    assert (
        scalar(
            fresh_db,
            """SELECT p.is_current FROM fact_order_items i JOIN dim_products p USING (product_key)
                                WHERE i.order_id = %s AND i.product_id = %s""",
            (order_item, product),
        )
        is False
    )
    assert (
        scalar(
            fresh_db, "SELECT count(*) FROM fact_order_items WHERE product_key IS NULL OR seller_key IS NULL"
        )
        == 0
    )
    audit = query(
        fresh_db,
        """SELECT rows_inserted, rows_updated, rows_unchanged, method FROM ingest_audit
                                WHERE run_id = 'scd-2' AND table_name = 'dim_products'""",
    )[0]
    assert audit == (0, 1, 1741, "copy")


def test_plain_postgresql_without_timescaledb(fresh_db, sample_dir):
    fresh_db = fresh_db.with_overrides(timescaledb=False)
    run_pipeline(fresh_db, data_dir=sample_dir, run_id="plain")
    conn = db.connect(fresh_db.database_url)
    try:
        assert schema.timescale_mode(conn).name == "postgresql"
        assert schema.hypertables(conn) == []
    finally:
        conn.close()
    assert scalar(fresh_db, "SELECT count(*) FROM fact_orders") == 2000
    assert_aggregates_match_facts(fresh_db)


def test_bi_reader_reads_aggregates_and_nothing_it_should_not(fresh_db, sample_dir):
    run_pipeline(fresh_db, data_dir=sample_dir, run_id="roles")
    conn = db.connect(fresh_db.database_url)
    try:

        def as_reader(statement: str):
            with conn.cursor() as cur:
                cur.execute("SET ROLE bi_reader")
                try:
                    cur.execute(statement)
                    return cur.fetchall() if cur.description else None
                finally:
                    conn.rollback()

        # BI reads schema bi only (sql/roles.sql; tests/analytics/test_roles.py has the rest)
        assert as_reader("SELECT sum(orders) FROM bi.daily_customer_metrics")[0][0] == 2000
        assert as_reader("SELECT count(*) FROM bi.hourly_sales")[0][0] > 0
        for forbidden in [
            "SELECT raw_record FROM public.quarantine",
            "SELECT * FROM public.ingest_audit",
            "SELECT count(*) FROM public.fact_orders",
            "INSERT INTO public.dim_dates SELECT * FROM public.dim_dates LIMIT 0",
            "DELETE FROM public.fact_orders",
            "UPDATE public.hourly_sales SET orders = 0",
            "CREATE TABLE bi.bi_scratch (x int)",
        ]:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                as_reader(forbidden)
        with conn.cursor() as cur:
            cur.execute("SET ROLE etl_writer")
            cur.execute("UPDATE fact_orders SET order_status = order_status WHERE false")
            conn.rollback()
    finally:
        conn.close()


def test_db_status_reports_the_mode(fresh_db, sample_dir, capsys, monkeypatch):
    from etl import cli

    setup.init_schema(fresh_db)
    monkeypatch.setenv("DATABASE_URL", fresh_db.database_url)
    assert cli.main(["db", "status"]) == 0
    out = capsys.readouterr().out
    assert "mode: timescaledb-apache" in out
    assert "aggregates: hourly_sales, daily_customer_metrics, sales_daily_orders" in out
    assert "as tables refreshed per touched day; 1 range(s) waiting" in out  # all of time, queued by init


# --- helpers shared with test_warehouse_acceptance ------------------------------------------


def query_conn(conn, statement, params=None):
    with conn.cursor() as cur:
        cur.execute(statement, params)
        rows = cur.fetchall()
    conn.rollback()
    return rows


def scalar_conn(conn, statement, params=None):
    return query_conn(conn, statement, params)[0][0]


def _edit_csv(path, key_column, keys, column, value) -> int:
    """Set ``column`` to ``value`` on the rows whose ``key_column`` is in ``keys`` (plain or .gz)."""
    import csv
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    changed = 0
    for row in rows:
        if row[key_column] in keys:
            row[column] = value
            changed += 1
    with opener(path, "wt", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return changed


def assert_aggregates_match_facts(settings) -> None:
    """The aggregates equal the same totals computed independently over the facts."""
    daily = query(
        settings,
        """SELECT (bucket AT TIME ZONE 'America/Sao_Paulo')::date, orders, customers,
                                      delivered_orders FROM daily_customer_metrics ORDER BY 1""",
    )
    expected_daily = query(
        settings,
        """
        SELECT (o.purchased_at AT TIME ZONE 'America/Sao_Paulo')::date, count(*),
               count(DISTINCT c.customer_unique_id), count(*) FILTER (WHERE o.order_status = 'delivered')
          FROM fact_orders o JOIN dim_customers c USING (customer_id) GROUP BY 1 ORDER BY 1""",
    )
    assert daily == expected_daily
    hourly = query(
        settings,
        """SELECT bucket AT TIME ZONE 'UTC', items, revenue_cents, freight_cents,
                                       coalesce(canceled_revenue_cents, 0) FROM hourly_sales ORDER BY 1""",
    )
    expected_hourly = query(
        settings,
        """
        SELECT date_trunc('hour', o.purchased_at AT TIME ZONE 'UTC'), count(*), sum(i.price_cents),
               sum(i.freight_cents),
               coalesce(sum(i.price_cents) FILTER (WHERE o.order_status IN ('canceled', 'unavailable')), 0)
          FROM fact_orders o JOIN fact_order_items i USING (order_id) GROUP BY 1 ORDER BY 1""",
    )
    assert hourly == expected_hourly
    assert scalar(settings, "SELECT count(*) FROM aggregate_refresh_queue") == 0


def test_merge_ranges_joins_adjacent_days():
    d = lambda day: datetime(2017, 1, day, 3, tzinfo=UTC)  # noqa: E731
    assert aggregates.merge_ranges([(d(3), d(4)), (d(1), d(2)), (d(2), d(3)), (d(9), d(10))]) == [
        (d(1), d(4)),
        (d(9), d(10)),
    ]


def _hyper_or_plain(cur) -> bool:
    cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    if cur.fetchone() is None:
        return False
    cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    return True


def _index_defs(cur, table: str) -> list[tuple[str, str]]:
    cur.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = to_regclass(%s) ORDER BY 1",
        (table,),
    )
    return cur.fetchall()


def test_initial_load_builds_keys_and_indexes_after_the_copy(conn, monkeypatch):
    monkeypatch.setattr(deferred_indexes, "MIN_ROWS", 100)
    with conn, conn.cursor() as cur:
        hyper = _hyper_or_plain(cur)
        cur.execute("""CREATE TABLE ev (id BIGINT, at TIMESTAMPTZ NOT NULL, code TEXT, note TEXT,
                       PRIMARY KEY (id, at), UNIQUE (code, at))""")
        cur.execute("CREATE INDEX ev_note_idx ON ev (lower(note)) WHERE note IS NOT NULL")
        cur.execute("CREATE INDEX ev_kept_idx ON ev (note)")
        cur.execute("COMMENT ON INDEX ev_kept_idx IS 'a comment would be lost: left in place'")
        if hyper:  # with TimescaleDB's default time index, like fact_orders
            cur.execute("SELECT create_hypertable('ev', by_range('at', INTERVAL '1 day'))")
        before = _index_defs(cur, "ev")
        assert [i.name for i in deferred_indexes.rebuildable(cur, "ev")] == (
            ["ev_code_at_key", "ev_pkey"] + (["ev_at_idx"] if hyper else []) + ["ev_note_idx"]
        )
        ids = list(range(500))
        data = pa.table(
            {
                "id": ids,
                "at": pa.array(
                    [datetime(2017, 3, 1 + i % 9, tzinfo=UTC) for i in ids], pa.timestamp("us", tz="UTC")
                ),
                "code": [f"c{i}" for i in ids],
                "note": [None if i % 3 else f"N{i}" for i in ids],
            }
        )
        result = merge.load_table(cur, "ev", data, key=("id", "at"))
        assert (result.path, result.rows_inserted) == ("direct", 500)
        assert _index_defs(cur, "ev") == before  # same names, same definitions
        cur.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'ev'::regclass AND contype IN ('p', 'u')"
        )
        assert cur.fetchone()[0] == 2
        if hyper:  # every chunk got its indexes back
            cur.execute("SELECT count(*) FROM show_chunks('ev') c JOIN pg_index i ON i.indrelid = c")
            assert cur.fetchone()[0] == 9 * len(before)
        again = merge.load_table(cur, "ev", data, key=("id", "at"))  # merges need the key: it is there
    assert (again.path, again.rows_unchanged) == ("merge", 500)
    assert scalar_conn(conn, "SELECT count(*) FROM ev") == 500


def test_duplicate_keys_in_an_initial_load_still_fail_it(conn, monkeypatch):
    monkeypatch.setattr(deferred_indexes, "MIN_ROWS", 100)
    with pytest.raises(psycopg2.errors.UniqueViolation):
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE dup (id BIGINT PRIMARY KEY, v TEXT)")
            merge.load_table(
                cur, "dup", pa.table({"id": list(range(200)) + [7], "v": ["x"] * 201}), key=("id",)
            )
    assert scalar_conn(conn, "SELECT to_regclass('dup') IS NULL")  # the whole transaction rolled back


def test_small_initial_loads_keep_their_indexes_in_place(conn):
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE small (id BIGINT PRIMARY KEY)")
        with deferred_indexes.deferred(cur, "small", deferred_indexes.MIN_ROWS - 1) as deferred:
            assert deferred == []
            assert _index_defs(cur, "small")


def test_an_order_moved_in_time_by_the_source_replaces_its_row(fresh_db):
    """fact_orders is keyed (order_id, purchased_at) for the hypertable; a corrected time is no second order."""
    from datetime import date

    setup.init_schema(fresh_db)

    def orders(second_purchase: datetime) -> pa.Table:
        times = [datetime(2017, 3, 1, 15, tzinfo=UTC), second_purchase]
        return pa.table(
            {
                "order_id": [f"{1:032x}", f"{2:032x}"],
                "customer_id": [f"{9:032x}"] * 2,
                "order_status": ["delivered"] * 2,
                "purchased_at": pa.array(times, pa.timestamp("us", tz="UTC")),
                "purchase_date_key": [int(t.strftime("%Y%m%d")) for t in times],
            }
        )

    conn = db.connect(fresh_db.database_url)
    try:
        with conn, conn.cursor() as cur:
            merge.load_table(
                cur, "fact_orders", orders(datetime(2017, 3, 1, 16, tzinfo=UTC)), timezone="America/Sao_Paulo"
            )
            moved = merge.load_table(
                cur, "fact_orders", orders(datetime(2017, 4, 2, 16, tzinfo=UTC)), timezone="America/Sao_Paulo"
            )
            again = merge.load_table(
                cur, "fact_orders", orders(datetime(2017, 4, 2, 16, tzinfo=UTC)), timezone="America/Sao_Paulo"
            )
    finally:
        conn.close()
    assert (moved.rows_inserted, moved.rows_updated, moved.rows_unchanged) == (0, 1, 1)
    assert moved.touched_days == [
        date(2017, 3, 1),
        date(2017, 4, 2),
    ]  # the old day's buckets are recomputed too
    assert (again.rows_inserted, again.rows_updated, again.touched_days) == (0, 0, [])
    assert query(fresh_db, "SELECT order_id, purchased_at FROM fact_orders ORDER BY order_id") == [
        (f"{1:032x}", datetime(2017, 3, 1, 15, tzinfo=UTC)),
        (f"{2:032x}", datetime(2017, 4, 2, 16, tzinfo=UTC)),
    ]


def test_first_load_of_linked_items_inserts_with_deferred_keys_and_resolves_versions(fresh_db, monkeypatch):
    """fact_order_items needs the staging join (product/seller versions at purchase time) even
    when empty: it is inserted plainly with its keys built afterwards, then upserted on reruns."""
    monkeypatch.setattr(deferred_indexes, "MIN_ROWS", 100)
    rebuilt = []
    create = deferred_indexes._create
    monkeypatch.setattr(
        deferred_indexes,
        "_create",
        lambda cur, table, index: (rebuilt.append((table, index.name)), create(cur, table, index)),
    )
    setup.init_schema(fresh_db)
    order = lambda n: f"{n:032x}"  # noqa: E731
    n = 300
    orders = pa.table(
        {
            "order_id": [order(i) for i in range(n)],
            "customer_id": [order(9)] * n,
            "order_status": ["delivered"] * n,
            "purchased_at": pa.array(
                [datetime(2017, 3, 1 + i % 20, 15, tzinfo=UTC) for i in range(n)],
                pa.timestamp("us", tz="UTC"),
            ),
            "purchase_date_key": [20170301 + i % 20 for i in range(n)],
        }
    )
    items = pa.table(
        {
            "order_id": [order(i) for i in range(n)],
            "order_item_id": [1] * n,
            "product_id": [order(1000 + i % 2) for i in range(n)],
            "seller_id": [order(2000)] * n,
            "shipping_limit_at": pa.array(
                [datetime(2017, 4, 1, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC")
            ),
            "price_cents": [100] * n,
            "freight_cents": [10] * n,
        }
    )
    conn = db.connect(fresh_db.database_url)
    try:
        with conn, conn.cursor() as cur:
            merge.load_table(
                cur,
                "dim_products",
                pa.table({"product_id": [order(1000), order(1001)], "category_name": ["a", "b"]}),
            )
            merge.load_table(cur, "dim_sellers", pa.table({"seller_id": [order(2000)], "state": ["SP"]}))
            merge.load_table(cur, "fact_orders", orders, timezone="America/Sao_Paulo")
            before = _index_defs(cur, "fact_order_items")
            first = merge.load_table(cur, "fact_order_items", items, timezone="America/Sao_Paulo")
            assert _index_defs(cur, "fact_order_items") == before
            again = merge.load_table(cur, "fact_order_items", items, timezone="America/Sao_Paulo")
    finally:
        conn.close()
    assert ("fact_order_items", "fact_order_items_pkey") in rebuilt  # built once, after the insert
    assert (first.path, first.rows_inserted, first.rows_updated) == ("merge", n, 0)
    assert len(first.touched_days) == 20
    assert (again.rows_inserted, again.rows_updated, again.rows_unchanged) == (0, 0, n)
    assert query(
        fresh_db,
        "SELECT count(*), count(DISTINCT i.product_key), bool_and(p.product_id = i.product_id), "
        "bool_and(s.seller_id = i.seller_id) FROM fact_order_items i "
        "JOIN dim_products p USING (product_key) JOIN dim_sellers s USING (seller_key)",
    ) == [(n, 2, True, True)]


def test_a_parquet_file_loads_piece_by_piece_like_a_whole_table(conn, tmp_path):
    """The pipeline streams clean files (merge.Pieces): same rows, merges and counts as one table."""
    import pyarrow.parquet as pq

    with conn, conn.cursor() as cur:
        _create_items(cur)
        cur.execute("CREATE TABLE whole (LIKE items INCLUDING ALL)")
    data = _items(list(range(100, 1100)), [None] * 1000).drop_columns(["payload"])
    path = tmp_path / "items.parquet"
    pq.write_table(data, path, row_group_size=64)
    pieces = merge.Pieces.parquet(path, rows_per_piece=150)
    assert (pieces.num_rows, pieces.column_names) == (1000, data.column_names)
    assert [t.num_rows for t in pieces.read()] == [150] * 6 + [100]
    with conn, conn.cursor() as cur:
        streamed = merge.load_table(cur, "items", pieces, key=("order_id", "line"))
        whole = merge.load_table(cur, "whole", data, key=("order_id", "line"))
        changed = data.set_column(
            3,
            "price_cents",
            pa.array([p + (i % 10 == 0) for i, p in enumerate(range(100, 1100))], pa.int64()),
        )
        pq.write_table(changed, path, row_group_size=64)
        merged = merge.load_table(
            cur, "items", merge.Pieces.parquet(path, rows_per_piece=150), key=("order_id", "line")
        )
    assert (streamed.path, streamed.rows_inserted, streamed.bytes > 0) == (whole.path, 1000, True)
    assert (merged.path, merged.rows_inserted, merged.rows_updated, merged.rows_unchanged) == (
        "merge",
        0,
        100,
        900,
    )
    assert (
        scalar_conn(
            conn,
            "SELECT count(*) FROM (SELECT order_id, line, at, note FROM items "
            "EXCEPT SELECT order_id, line, at, note FROM whole) d",
        )
        == 0
    )
    assert scalar_conn(conn, "SELECT sum(price_cents) FROM items") == sum(range(100, 1100)) + 100
