"""The real Olist subset with 60 injected defects, run with the default gate: good rows load, bad ones are
quarantined with the right category, and the audit reconciles for every table.

The defects (12 of each): negative prices, orphan items, review scores out of
range, duplicate payments, purchase timestamps that cannot be read. An order
whose timestamp cannot be read is quarantined, so its items, payments and
reviews are too (their order is not in the warehouse): those are counted
from the files, like everything expected here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from etl.run.stages import run_pipeline
from tests.conftest import query

N = 12


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def _write(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, compression="gzip")


@pytest.fixture(scope="module")
def dirty(olist_dir, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("dirty-day") / "olist"
    shutil.copytree(olist_dir, out, ignore=shutil.ignore_patterns("full", "*.md"))
    f = {
        name: out / f"olist_{name}_dataset.csv.gz"
        for name in ("orders", "order_items", "order_payments", "order_reviews")
    }
    orders, items, payments, reviews = (
        _read(f[n]) for n in ("orders", "order_items", "order_payments", "order_reviews")
    )

    bad_orders = set(orders["order_id"].iloc[500 : 500 + 1000 * N : 1000])
    orders.loc[orders["order_id"].isin(bad_orders), "order_purchase_timestamp"] = "31/12/2017 25:61"
    fine = lambda frame: frame[~frame["order_id"].isin(bad_orders)]  # noqa: E731

    negative = fine(items).drop_duplicates("order_id").index[100 : 100 + N]
    items.loc[negative, "price"] = "-" + items.loc[negative, "price"]
    orphans = items.loc[fine(items).index[200 : 200 + N]].copy()
    orphans["order_id"] = [f"{k:032x}" for k in range(0xDEAD0000, 0xDEAD0000 + N)]
    items = pd.concat([items, orphans], ignore_index=True)

    out_of_range = fine(reviews).index[300 : 300 + N]
    reviews.loc[out_of_range, "review_score"] = "7"
    duplicates = payments.loc[
        fine(payments).drop_duplicates(["order_id", "payment_sequential"]).index[400 : 400 + N]
    ]
    payments = pd.concat([payments, duplicates], ignore_index=True)

    for name, frame in (
        ("orders", orders),
        ("order_items", items),
        ("order_payments", payments),
        ("order_reviews", reviews),
    ):
        _write(frame, f[name])
    cascade = {
        "fact_order_items": int(items["order_id"].isin(bad_orders).sum()),
        "fact_payments": int(payments["order_id"].isin(bad_orders).sum()),
        "fact_reviews": int(reviews["order_id"].isin(bad_orders).sum()),
    }
    assert all(n > 0 for n in cascade.values())
    reads = {
        "fact_orders": len(orders),
        "fact_order_items": len(items),
        "fact_payments": len(payments),
        "fact_reviews": len(reviews),
    }
    return out, {"cascade": cascade, "reads": reads}


@pytest.mark.slow
def test_a_dirty_day_loads_its_good_rows_and_quarantines_exactly_the_bad_ones(fresh_db, dirty):
    data_dir, facts = dirty
    settings = fresh_db.with_overrides(sources_file=data_dir.parent / "no-sources.yml")
    run_pipeline(settings, data_dir=data_dir, run_id="dirty-day")  # the default gate (seed 001)
    cascade, reads = facts["cascade"], facts["reads"]
    fk = ("REFERENTIAL_INTEGRITY", "fk:order_id->fact_orders")
    expected = {
        ("fact_orders", "DATA_FORMAT_ERROR", "format:purchased_at"): N,
        ("fact_order_items", "BUSINESS_RULE_VIOLATION", "price_positive"): N,
        ("fact_order_items", *fk): N + cascade["fact_order_items"],
        ("fact_payments", "DUPLICATE", "unique:order_id+payment_sequential"): N,
        ("fact_payments", *fk): cascade["fact_payments"],
        ("fact_reviews", "BUSINESS_RULE_VIOLATION", "review_score_1_to_5"): N,
        ("fact_reviews", *fk): cascade["fact_reviews"],
    }
    got = {
        (t, c, r): n
        for t, c, r, n in query(
            settings,
            "SELECT table_name, category, rule, count(*) FROM quarantine WHERE run_id = 'dirty-day' GROUP BY 1, 2, 3",
        )
    }
    assert got == expected
    assert sum(expected.values()) == 5 * N + sum(cascade.values())
    audit = {
        t: (r, lo, q, s)
        for t, r, lo, q, s in query(
            settings,
            "SELECT table_name, rows_read, rows_loaded, rows_quarantined, status FROM ingest_audit "
            "WHERE run_id = 'dirty-day'",
        )
    }
    for table, (read, loaded, quarantined, status) in audit.items():
        assert status == "succeeded"
        assert read == loaded + quarantined, table
        assert quarantined == sum(n for (t, _, _), n in expected.items() if t == table), table
    for table, read in reads.items():
        assert audit[table][0] == read
        assert query(settings, f"SELECT count(*) FROM {table}")[0][0] == audit[table][1]  # noqa: S608
    runs = query(settings, "SELECT status, rows_quarantined FROM pipeline_runs WHERE run_id = 'dirty-day'")
    assert runs == [("succeeded", sum(expected.values()))]
