"""Quality gate, stored scores, and the quarantine a person works with — real PostgreSQL."""

import json
import shutil

import pandas as pd
import pytest

from etl import quality
from etl.generate import generate
from etl.load import merge
from etl.run import setup
from etl.run.stages import run_pipeline
from etl.settings import PROJECT_ROOT
from tests.conftest import query, scalar
from tests.test_cli import assert_one_line_error, etl


@pytest.fixture(scope="module")
def dirty_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("dirty")
    generate(300, 0.05, 5, out)
    return out


def test_by_default_a_dirty_run_loads_its_good_rows_and_quarantines_the_bad(fresh_db, dirty_dir):
    run_pipeline(fresh_db, data_dir=dirty_dir, run_id="dirty-default")  # seed 001's gate passes it
    audit = query(
        fresh_db,
        "SELECT table_name, rows_read, rows_loaded, rows_quarantined, status FROM ingest_audit "
        "WHERE run_id = 'dirty-default'",
    )
    assert all(status == "succeeded" and read == loaded + q for _, read, loaded, q, status in audit)
    quarantined = sum(q for _, _, _, q, _ in audit)
    assert quarantined > 0
    assert scalar(fresh_db, "SELECT count(*) FROM quarantine WHERE run_id = 'dirty-default'") == quarantined
    assert scalar(fresh_db, "SELECT count(*) FROM fact_orders") > 0


def test_a_per_dimension_gate_stops_the_run_and_still_stores_why(fresh_db, dirty_dir):
    gated = fresh_db.with_overrides(dq_gate=frozenset({"integrity", "overall"}))
    with pytest.raises(quality.QualityGateError) as err:
        run_pipeline(gated, data_dir=dirty_dir, run_id="gated")
    assert "the run as a whole: integrity score" in str(err.value)
    assert "below the target 100" in str(err.value)
    # nothing loaded, but the scores, the rejected rows and the failed run are there
    assert scalar(fresh_db, "SELECT count(*) FROM fact_orders") == 0
    rows = query(
        fresh_db, "SELECT count(DISTINCT table_name), count(*) FROM quality_scores WHERE run_id = 'gated'"
    )
    assert rows[0] == (10, 90)  # 9 tables + _overall, 8 dimensions + overall
    audit = query(
        fresh_db,
        "SELECT status, error, rows_loaded, rows_quarantined FROM ingest_audit WHERE run_id = 'gated'",
    )
    assert audit and all(status == "failed" and loaded == 0 for status, _, loaded, _ in audit)
    assert all("failed its data quality targets" in error for _, error, _, _ in audit)
    quarantined = sum(q for *_, q in audit)
    assert quarantined > 0
    assert scalar(fresh_db, "SELECT count(*) FROM quarantine WHERE run_id = 'gated'") == quarantined


def test_the_seed_gate_stops_a_run_below_80_overall(fresh_db, tmp_path):
    """A day where most rows are broken: the default gate stops it, and says why."""
    bad = tmp_path / "olist"
    generate(200, 0.5, 5, bad)
    with pytest.raises(quality.QualityGateError) as err:
        run_pipeline(fresh_db, data_dir=bad, run_id="mostly-broken")
    assert "the run as a whole" in str(err.value)
    assert "table " not in str(err.value)  # per-table targets are not the gate's by default
    assert scalar(fresh_db, "SELECT count(*) FROM quarantine WHERE run_id = 'mostly-broken'") > 0
    assert scalar(fresh_db, "SELECT count(*) FROM fact_orders") == 0


def test_stored_scores_trace_to_rows_and_retry_after_a_lookup_fix(fresh_db, dirty_dir, tmp_path):
    settings = fresh_db.with_overrides(dq_enforce=False)
    run_pipeline(settings, data_dir=dirty_dir, run_id="dirty")
    # every lost point traces to rows: the query in docs/data_quality.md
    mismatches = query(
        fresh_db,
        """
        SELECT s.table_name, s.dimension, s.rows_failed, coalesce(i.n, 0)
          FROM quality_scores s
          LEFT JOIN (SELECT table_name, dimension,
                            CASE WHEN dimension = 'completeness' THEN count(*)
                                 ELSE count(DISTINCT row_number) END AS n
                       FROM quality_issues WHERE run_id = 'dirty' GROUP BY 1, 2) i
                 USING (table_name, dimension)
         WHERE s.run_id = 'dirty' AND s.table_name <> '_overall' AND s.dimension <> 'overall'
           AND s.rows_failed <> coalesce(i.n, 0)""",
    )
    assert mismatches == []
    for table, read, loaded, quarantined in query(
        fresh_db,
        """SELECT table_name, rows_read, rows_loaded,
            rows_quarantined FROM ingest_audit WHERE run_id = 'dirty'""",
    ):
        assert read == loaded + quarantined, table
    # soft-rule breakers are loaded and flagged
    assert scalar(fresh_db, "SELECT count(*) FROM dim_products WHERE dq_flags LIKE '%category_known%'") > 0

    env = {"DATABASE_URL": fresh_db.database_url}
    listed = etl("quarantine", "list", "--run", "dirty", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "order_status_known" in listed.stdout and "fk:order_id->fact_orders" in listed.stdout
    shown = etl("quarantine", "show", "--run", "dirty", "--rule", "order_status_known", env=env)
    assert "teleported" in shown.stdout
    exported = tmp_path / "q.jsonl"
    assert etl("quarantine", "export", "--run", "dirty", "--out", str(exported), env=env).returncode == 0
    records = [json.loads(line) for line in exported.read_text().splitlines()]
    assert len(records) == scalar(fresh_db, "SELECT count(*) FROM quarantine WHERE run_id = 'dirty'")
    assert_one_line_error(etl("quarantine", "list", "--run", "nope", env=env), "run nope")

    # a person teaches the lookup that 'teleported' means 'processing', then retries
    lookups = tmp_path / "lookups"
    shutil.copytree(PROJECT_ROOT / "data" / "lookups", lookups)
    statuses = json.loads((lookups / "order_statuses.json").read_text())
    statuses["aliases"]["teleported"] = "processing"
    (lookups / "order_statuses.json").write_text(json.dumps(statuses))
    teleported = scalar(
        fresh_db, "SELECT count(*) FROM quarantine WHERE run_id = 'dirty' AND rule = 'order_status_known'"
    )
    before = scalar(fresh_db, "SELECT count(*) FROM fact_orders")
    retried = etl("quarantine", "retry", "--run", "dirty", env={**env, "ETL_LOOKUP_DIR": str(lookups)})
    assert retried.returncode == 0, retried.stderr
    assert scalar(fresh_db, "SELECT count(*) FROM fact_orders") == before + teleported
    open_rows = query(
        fresh_db,
        "SELECT DISTINCT table_name FROM quarantine WHERE run_id = 'dirty' AND retried_by_run IS NULL",
    )
    assert open_rows == [("dim_geolocation",)]  # all retried but points (aggregated); none deleted
    retry_run = scalar(fresh_db, "SELECT DISTINCT retried_by_run FROM quarantine WHERE run_id = 'dirty'")
    for table, read, loaded, quarantined in query(
        fresh_db,
        """SELECT table_name, rows_read, rows_loaded,
            rows_quarantined FROM ingest_audit WHERE run_id = %s""",
        (retry_run,),
    ):
        assert read == loaded + quarantined, table
        again = scalar(
            fresh_db,
            "SELECT count(*) FROM quarantine WHERE run_id = %s AND table_name = %s",
            (retry_run, table),
        )
        assert again == quarantined
    # duplicates stay duplicates: their key is in the warehouse
    assert (
        scalar(
            fresh_db,
            "SELECT count(*) FROM quarantine WHERE run_id = %s AND category = 'DUPLICATE'",
            (retry_run,),
        )
        > 0
    )
    # the counts the dashboards read follow every write (COPY, retry updates)
    assert sorted(query(fresh_db, "SELECT * FROM quarantine_counts")) == _counted(fresh_db)


def _counted(settings) -> list[tuple]:
    return sorted(
        query(settings, "SELECT run_id, category, table_name, count(*) FROM quarantine GROUP BY 1, 2, 3")
    )


def test_quarantine_counts_follow_inserts_deletes_updates_and_truncate_and_backfill_once(fresh_db):
    from etl.warehouse import connection as db

    setup.init_schema(fresh_db)
    rejected = pd.DataFrame(
        {
            "row_number": [2, 3, 4],
            "category": ["DUPLICATE", "DUPLICATE", "DATA_FORMAT_ERROR"],
            "rule": ["unique", "unique", "price_number"],
            "detail": ["d"] * 3,
            "raw_record": ['{"a": 1}'] * 3,
        }
    )
    conn = db.connect(fresh_db.database_url)
    try:
        with conn, conn.cursor() as cur:
            merge.insert_quarantine(cur, "r1", "items.csv", "fact_order_items", rejected)
            merge.insert_quarantine(cur, "r1", "orders.csv", "fact_orders", rejected.head(1))
            merge.insert_quarantine(cur, "r2", "items.csv", "fact_order_items", rejected)
        assert (
            sorted(query(fresh_db, "SELECT * FROM quarantine_counts"))
            == _counted(fresh_db)
            == [
                ("r1", "DATA_FORMAT_ERROR", "fact_order_items", 1),
                ("r1", "DUPLICATE", "fact_order_items", 2),
                ("r1", "DUPLICATE", "fact_orders", 1),
                ("r2", "DATA_FORMAT_ERROR", "fact_order_items", 1),
                ("r2", "DUPLICATE", "fact_order_items", 2),
            ]
        )
        with conn, conn.cursor() as cur:
            merge.clear_quarantine(cur, "r1", "fact_order_items")  # a rerun of r1 starts afresh
            cur.execute("UPDATE quarantine SET run_id = 'r3' WHERE run_id = 'r2' AND row_number = 2")
            cur.execute("UPDATE quarantine SET retried_by_run = 'r4'")  # not a counted column
        assert (
            sorted(query(fresh_db, "SELECT * FROM quarantine_counts"))
            == _counted(fresh_db)
            == [
                ("r1", "DUPLICATE", "fact_orders", 1),
                ("r2", "DATA_FORMAT_ERROR", "fact_order_items", 1),
                ("r2", "DUPLICATE", "fact_order_items", 1),
                ("r3", "DUPLICATE", "fact_order_items", 1),
            ]
        )
        with conn, conn.cursor() as cur:  # a warehouse from before the counts
            cur.execute("DROP FUNCTION quarantine_run_counts_apply() CASCADE")  # and its triggers
            cur.execute("DROP TABLE quarantine_run_counts CASCADE")
            merge.insert_quarantine(cur, "r5", "items.csv", "fact_order_items", rejected.head(1))
        setup.init_schema(fresh_db)  # backfills once, then triggers
        assert sorted(query(fresh_db, "SELECT * FROM quarantine_counts")) == _counted(fresh_db)
        assert len(_counted(fresh_db)) == 5
        with conn, conn.cursor() as cur:
            cur.execute("TRUNCATE quarantine")
        assert query(fresh_db, "SELECT * FROM quarantine_counts") == []
    finally:
        conn.close()
