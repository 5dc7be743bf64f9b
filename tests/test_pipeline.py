"""The whole run against the real PostgreSQL, on the real Olist subset."""

import csv
import gzip
from decimal import Decimal

import pytest

from etl.olist import ALL_TABLES
from etl.run.stages import run_pipeline
from etl.warehouse import connection as db
from etl.warehouse import schema
from tests.conftest import query, scalar

MONEY = {"fact_order_items": ["price_cents", "freight_cents"], "fact_payments": ["payment_value_cents"]}
TABLES = [
    "category_translation",
    "dim_geolocation",
    "dim_customers",
    "dim_products",
    "dim_sellers",
    "dim_dates",
    "fact_orders",
    "fact_order_items",
    "fact_payments",
    "fact_reviews",
]


def snapshot(settings) -> dict:
    """Row count, money sums and a content hash of every warehouse table."""
    state = {}
    for table in TABLES:
        cols = [
            c
            for (c,) in query(
                settings,
                """SELECT column_name FROM information_schema.columns
                    WHERE table_name = %s AND column_name <> 'updated_at' ORDER BY ordinal_position""",
                (table,),
            )
        ]
        row_text = " || '|' || ".join(f"coalesce({c}::text, '')" for c in cols)
        sums = ", ".join(f"sum({c})" for c in MONEY.get(table, [])) or "0"
        state[table] = query(
            settings,
            f"SELECT count(*), md5(string_agg({row_text}, ',' ORDER BY {row_text})), {sums} FROM {table}",
        )[0]
    return state


@pytest.fixture(scope="module")
def first_run(module_db, olist_dir):
    return run_pipeline(module_db, data_dir=olist_dir, run_id="full-1")


def test_full_subset_loads_every_order(first_run, module_db):
    assert scalar(module_db, "SELECT count(*) FROM fact_orders") == 21_458
    assert scalar(module_db, "SELECT count(*) FROM fact_order_items") == 24_494
    assert scalar(module_db, "SELECT count(*) FROM dim_customers") == 21_458


def test_payments_equal_the_source_file_to_the_cent(first_run, module_db, olist_dir):
    with gzip.open(olist_dir / "olist_order_payments_dataset.csv.gz", "rt", encoding="utf-8") as fh:
        source_total = sum(Decimal(row["payment_value"]) for row in csv.DictReader(fh))
    warehouse_cents = scalar(module_db, "SELECT sum(payment_value_cents) FROM fact_payments")
    assert Decimal(warehouse_cents) / 100 == source_total


def test_audit_reconciles_read_with_loaded_plus_quarantined(first_run, module_db):
    rows = query(
        module_db,
        """SELECT table_name, rows_read, rows_loaded, rows_quarantined, status
                                 FROM ingest_audit WHERE run_id = 'full-1'""",
    )
    assert {r[0] for r in rows} == {spec.name for spec in ALL_TABLES} | {"dim_dates"}
    for table, read, loaded, quarantined, status in rows:
        assert status == "succeeded"
        assert read == loaded + quarantined, table
        in_quarantine = scalar(
            module_db, "SELECT count(*) FROM quarantine WHERE run_id = 'full-1' AND table_name = %s", (table,)
        )
        assert in_quarantine == quarantined, table
    # The real subset breaks no hard rule: nothing may be quarantined by mistake.
    assert sum(r[3] for r in rows) == 0
    assert first_run.rows_quarantined == 0


def test_timestamps_are_stored_in_utc(first_run, module_db):
    # First order of the subset: purchased 2016-10-03 22:06:03 São Paulo time (UTC-3).
    first = scalar(module_db, "SELECT min(purchased_at) AT TIME ZONE 'UTC' FROM fact_orders")
    assert str(first) == "2016-10-04 01:06:03"
    assert scalar(module_db, "SELECT count(*) FROM dim_customers WHERE length(zip_code_prefix) <> 5") == 0


def test_fact_orders_is_a_hypertable_when_timescaledb_is_there(first_run, module_db):
    conn = db.connect(module_db.database_url)
    try:
        mode = schema.timescale_mode(conn)
        if not mode.available:
            pytest.fail("TimescaleDB should be installed by scripts/bootstrap.sh on this machine")
        assert schema.hypertables(conn) == ["fact_orders"]
    finally:
        conn.close()


def test_second_run_is_idempotent_and_audited(first_run, module_db, olist_dir):
    before = snapshot(module_db)
    second = run_pipeline(module_db, data_dir=olist_dir, run_id="full-2")
    assert snapshot(module_db) == before
    assert all(t.rows_written == 0 for t in second.tables), second.render()
    assert scalar(module_db, "SELECT count(DISTINCT run_id) FROM ingest_audit") == 2
    assert (
        scalar(
            module_db, "SELECT count(*) FROM ingest_audit WHERE run_id = 'full-2' AND status = 'succeeded'"
        )
        == len(ALL_TABLES) + 1
    )


def test_quality_scores_are_stored_and_every_lost_point_traces_to_rows(first_run, module_db):
    # acceptance (issue 5): per table and overall in the summary and in quality_scores
    assert "quality" in first_run.render() and "_overall" in first_run.render()
    assert scalar(module_db, "SELECT count(*) FROM quality_scores WHERE run_id = 'full-1'") == 10 * 9
    assert (
        scalar(
            module_db,
            "SELECT score FROM quality_scores WHERE run_id = 'full-1' "
            "AND table_name = '_overall' AND dimension = 'integrity'",
        )
        == 100
    )
    # the query from docs/data_quality.md gives exactly the rows behind each lost point
    for table, dimension, failed in query(
        module_db,
        """SELECT table_name, dimension, rows_failed
            FROM quality_scores WHERE run_id = 'full-1' AND table_name <> '_overall'
             AND dimension <> 'overall'""",
    ):
        traced = scalar(
            module_db,
            """SELECT CASE WHEN %s = 'completeness' THEN count(*)
                                                  ELSE count(DISTINCT row_number) END
                                        FROM quality_issues WHERE run_id = 'full-1'
                                         AND table_name = %s AND dimension = %s""",
            (dimension, table, dimension),
        )
        assert traced == failed, (table, dimension)
    # the real subset's known soft issues are loaded and flagged, not quarantined
    assert (
        scalar(module_db, "SELECT count(*) FROM fact_orders WHERE dq_flags LIKE '%payments_match_items%'") > 0
    )
