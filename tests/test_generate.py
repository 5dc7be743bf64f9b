"""The dirty-data generator and the chunked transform, end to end on files (no database)."""

import pandas as pd
import pyarrow.parquet as pq
import pytest

from etl.generate import evaluate, generate
from etl.ingest import locate_all
from etl.settings import Settings
from etl.transform.stage import transform_sources


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    summary = generate(1500, 0.05, 11, out)
    return out, summary


def _run(out, work, **overrides):
    settings = Settings.from_env({}).with_overrides(staging_dir=work, **overrides)
    return transform_sources(settings, "t", locate_all(out), work / "clean")


def _quarantined(work, outcomes) -> pd.DataFrame:
    parts = []
    for o in outcomes:
        if o.table == "dim_dates":  # derived, nothing to quarantine
            continue
        frame = pq.read_table(work / "clean" / f"{o.table}.quarantine.parquet").to_pandas()
        parts.append(frame.assign(table=o.table))
    return pd.concat(parts, ignore_index=True)


def test_generator_is_deterministic_and_follows_the_real_shapes(generated, tmp_path):
    out, summary = generated
    again = generate(1500, 0.05, 11, tmp_path)
    assert again == summary
    assert (tmp_path / "olist_orders_dataset.csv").read_bytes() == (
        out / "olist_orders_dataset.csv"
    ).read_bytes()
    items = pd.read_csv(out / "olist_order_items_dataset.csv", dtype=str)
    assert len(items) > 1500  # real orders average more than one item
    truth = pd.read_csv(out / "ground_truth.csv")
    assert {
        "duplicate",
        "orphan",
        "non_positive_price",
        "category_typo",
        "mixed_encoding",
        "bad_zip",
        "impossible_date",
        "missing_required",
    } <= set(truth["defect"])


def test_quarantine_matches_the_ground_truth_and_loses_nothing(generated, tmp_path):
    out, _ = generated
    outcomes, report, _ = _run(out, tmp_path)
    for o in outcomes:
        assert o.rows_read == o.rows_loaded + o.rows_quarantined, o.table
    result = evaluate(pd.read_csv(out / "ground_truth.csv"), _quarantined(tmp_path, outcomes))
    assert result.expected > 300
    assert result.recall >= 0.99 and result.precision >= 0.99, result
    assert report.score("_overall", "integrity").score < 100  # the orphans show


def test_small_chunks_give_the_same_result_as_one_chunk(generated, tmp_path):
    out, _ = generated
    big, big_report, _ = _run(out, tmp_path / "big")
    small, small_report, _ = _run(out, tmp_path / "small", chunk_rows=500)
    assert [(o.table, o.rows_read, o.rows_loaded, o.rows_quarantined) for o in big] == [
        (o.table, o.rows_read, o.rows_loaded, o.rows_quarantined) for o in small
    ]
    assert big_report.scores == small_report.scores
    for table in ("fact_orders", "fact_order_items", "dim_products"):
        a = pq.read_table(tmp_path / "big" / "clean" / f"{table}.parquet").to_pandas()
        b = pq.read_table(tmp_path / "small" / "clean" / f"{table}.parquet").to_pandas()
        pd.testing.assert_frame_equal(a, b)


def test_clean_csv_on_request(generated, tmp_path):
    out, _ = generated
    _run(out, tmp_path, clean_csv=True)
    csv = pd.read_csv(tmp_path / "clean" / "fact_payments.csv")
    parquet = pq.read_table(tmp_path / "clean" / "fact_payments.parquet").to_pandas()
    assert len(csv) == len(parquet) and list(csv.columns) == list(parquet.columns)
