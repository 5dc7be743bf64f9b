"""The validation gate, notify and refresh_aggregates against the real PostgreSQL and the sample."""

import os
import subprocess
import sys

import pandas as pd
import pytest

from etl import staging
from etl.run.notify import notify_stage
from etl.run.pipeline import refresh_aggregates_stage
from etl.run.stages import run_pipeline
from etl.run.validate import Thresholds, ValidationError, validate_run, validate_stage
from tests.conftest import query, scalar

LENIENT = Thresholds(require_quality_scores=False)


def score(settings, run_id, value, table="_overall", dimension="overall"):
    query_exec(
        settings,
        """INSERT INTO quality_scores (run_id, table_name, dimension, score, target)
                            VALUES (%s, %s, %s, %s, 80)
                            ON CONFLICT (run_id, table_name, dimension) DO UPDATE SET score = EXCLUDED.score""",
        (run_id, table, dimension, value),
    )


def query_exec(settings, statement, params=None):
    import psycopg2

    conn = psycopg2.connect(settings.database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def sample_run(module_db, sample_dir):
    run_pipeline(module_db, data_dir=sample_dir, run_id="v-1")
    return "v-1"


def test_a_good_run_passes_every_check(sample_run, module_db):
    score(module_db, sample_run, 93.5)
    report = validate_run(module_db, sample_run)
    assert report.passed, report.render()
    kinds = {c.check for c in report.checks}
    assert kinds == {"clean_file", "row_count", "null_pct", "duplicate_pct", "quality_overall", "reconcile"}
    # every table of the run is reconciled against audit, files and warehouse keys
    assert sum(c.check == "reconcile" for c in report.checks) == 10
    assert validate_stage(module_db, sample_run)["passed"] is True


def test_no_quality_scores_fails_clearly_unless_not_required(fresh_db, sample_dir):
    run_pipeline(fresh_db, data_dir=sample_dir, run_id="v-unscored")
    # e.g. a run transformed by a version that did not score, or scores deleted by hand
    query_exec(fresh_db, "DELETE FROM quality_scores WHERE run_id = 'v-unscored'")
    with pytest.raises(ValidationError) as err:
        validate_stage(fresh_db, "v-unscored")
    assert "_overall quality_overall = no quality_scores rows (expected >= 80)" in str(err.value)
    assert len(str(err.value).splitlines()) == 1
    assert validate_run(fresh_db, "v-unscored", LENIENT).passed


def test_low_overall_score_names_value_and_threshold(sample_run, module_db):
    score(module_db, sample_run, 71.25)
    try:
        with pytest.raises(ValidationError, match=r"_overall quality_overall = 71.25 \(expected >= 80\)"):
            validate_stage(module_db, sample_run)
        assert validate_run(module_db, sample_run, Thresholds(min_quality=70)).passed
    finally:
        score(module_db, sample_run, 93.5)


def test_missing_values_and_duplicates_are_measured_from_quarantine(fresh_db, copy_of_sample):
    orders = copy_of_sample / "olist_orders_dataset.csv"
    frame = pd.read_csv(orders, dtype=str, keep_default_na=False)
    frame.loc[:99, "customer_id"] = ""  # 100 of 2,040 read: 4.90 %
    frame = pd.concat([frame, frame.iloc[500:540]], ignore_index=True)  # 40 duplicates: ~1.96 %
    frame.to_csv(orders, index=False)
    # orphaned children of the emptied orders miss the integrity target (100): load anyway
    run_pipeline(fresh_db.with_overrides(dq_enforce=False), data_dir=copy_of_sample, run_id="dirty")
    report = validate_run(fresh_db, "dirty", LENIENT)
    assert report.passed, report.render()  # within 20 % / 5 %
    by = {(c.table, c.check): c for c in report.checks}
    assert by[("fact_orders", "null_pct")].value == "4.90%"
    assert by[("fact_orders", "duplicate_pct")].value == "1.96%"
    strict = validate_run(
        fresh_db, "dirty", Thresholds(max_null_pct=4, max_duplicate_pct=1, require_quality_scores=False)
    )
    failed = {(c.table, c.check) for c in strict.failures}
    assert ("fact_orders", "null_pct") in failed and ("fact_orders", "duplicate_pct") in failed
    with pytest.raises(ValidationError, match=r"fact_orders null_pct = 4.90% \(expected <= 4%\)"):
        validate_stage(fresh_db, "dirty", strict.thresholds)


def test_warehouse_that_lost_rows_does_not_reconcile(fresh_db, sample_dir):
    run_pipeline(fresh_db, data_dir=sample_dir, run_id="lost")
    query_exec(fresh_db, "DELETE FROM fact_payments WHERE ctid IN (SELECT ctid FROM fact_payments LIMIT 3)")
    report = validate_run(fresh_db, "lost", LENIENT)
    (failure,) = report.failures
    assert failure.table == "fact_payments" and failure.check == "reconcile"
    assert "warehouse has" in failure.value and "loaded keys" in failure.value


def test_missing_clean_file_and_unloaded_run_fail(fresh_db, sample_dir):
    run_pipeline(fresh_db, data_dir=sample_dir, run_id="gone")
    (staging.clean_dir(fresh_db, "gone") / "fact_reviews.parquet").unlink()
    query_exec(fresh_db, "DELETE FROM ingest_audit WHERE run_id = 'gone' AND table_name = 'dim_sellers'")
    failed = {(c.table, c.check) for c in validate_run(fresh_db, "gone", LENIENT).failures}
    assert failed == {("fact_reviews", "clean_file"), ("dim_sellers", "reconcile")}
    nothing = validate_run(fresh_db, "never-ran", LENIENT)
    assert not nothing.passed and nothing.failures[0].check == "clean_file"


def test_rerunning_a_run_id_replaces_its_audit_and_quarantine(fresh_db, copy_of_sample):
    orders = copy_of_sample / "olist_orders_dataset.csv"
    frame = pd.read_csv(orders, dtype=str, keep_default_na=False)
    frame.loc[:9, "customer_id"] = ""
    frame.to_csv(orders, index=False)
    ungated = fresh_db.with_overrides(dq_enforce=False)  # orphans miss the integrity target
    run_pipeline(ungated, data_dir=copy_of_sample, run_id="again")
    first = query(fresh_db, "SELECT table_name, rows_read, rows_quarantined FROM ingest_audit ORDER BY 1")
    run_pipeline(ungated, data_dir=copy_of_sample, run_id="again")
    assert (
        query(fresh_db, "SELECT table_name, rows_read, rows_quarantined FROM ingest_audit ORDER BY 1")
        == first
    )
    assert scalar(fresh_db, "SELECT count(*) FROM quarantine WHERE table_name = 'fact_orders'") == 10
    assert validate_run(fresh_db, "again", LENIENT).passed


def test_a_second_day_over_an_unchanged_folder_passes_with_a_note(fresh_db, sample_dir):
    """A backfill (or a manual run after the scheduled one) finds every file loaded: a success."""
    run_pipeline(fresh_db, data_dir=sample_dir, run_id="daily-2018-08-01")
    counts = scalar(fresh_db, "SELECT count(*) FROM fact_orders")
    run_pipeline(fresh_db, data_dir=sample_dir, run_id="daily-2018-08-02")
    assert scalar(fresh_db, "SELECT count(*) FROM fact_orders") == counts
    summary = validate_stage(fresh_db, "daily-2018-08-02")
    assert summary["passed"] is True
    (note,) = summary["notes"]
    assert note.startswith("nothing new: all 9 input file(s) were loaded by earlier runs")
    assert validate_stage(fresh_db, "daily-2018-08-01")["notes"] == []


def test_refresh_aggregates_stage_catches_up_the_queue_then_the_views(fresh_db, sample_dir):
    run_pipeline(fresh_db, data_dir=sample_dir, run_id="agg")  # refreshes as its last stage
    again = refresh_aggregates_stage(fresh_db, "agg")
    assert again["ranges"] == 0  # the load's days were consumed
    assert again["views_refreshed"] == 0  # nothing queued, nothing recomputed
    revenue = scalar(
        fresh_db,
        """SELECT sum(price_cents) FROM fact_order_items i JOIN fact_orders o
                                   USING (order_id) WHERE o.order_status NOT IN ('canceled', 'unavailable')""",
    )
    assert scalar(fresh_db, "SELECT sum(revenue_cents) FROM monthly_sales_summary") == revenue


def test_notify_summarises_what_the_warehouse_recorded(sample_run, module_db):
    sent = []
    settings = module_db.with_overrides(notify_emails=("team@example.org",))
    result = notify_stage(settings, sample_run, send=lambda to, subj, body: sent.append((to, subj, body)))
    assert result["delivery"] == "sent to 1" and result["rows_loaded"] > 2_000
    ((to, subject, body),) = sent
    assert to == ["team@example.org"] and subject.startswith(f"[etl_pipeline] run {sample_run} succeeded")
    assert "fact_orders" in body and "quality 93.5" in body
    assert notify_stage(module_db, sample_run, send=None)["delivery"] == "logged"


def test_cli_validate_exits_3_with_one_line(sample_run, module_db):
    env = {
        **os.environ,
        "DATABASE_URL": module_db.database_url,
        "ETL_STAGING_DIR": str(module_db.staging_dir),
    }
    score(module_db, sample_run, 60)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "etl.cli", "validate", "--run-id", sample_run],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    finally:
        score(module_db, sample_run, 93.5)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: run {sample_run} failed validation (1 check(s)): "
        "_overall quality_overall = 60.00 (expected >= 80)"
    ]
    assert "FAIL _overall" in proc.stdout
    ok = subprocess.run(
        [sys.executable, "-m", "etl.cli", "validate", "--run-id", sample_run],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert ok.returncode == 0 and "PASSED" in ok.stdout, ok.stderr
