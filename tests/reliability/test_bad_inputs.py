"""Every file of the bad-input corpus (tests/data/bad/) through a real run, with its exact outcome.

A warehouse is loaded with the shipped sample once; then each corpus file
replaces its table's file in a copy of the sample and is run. Only that file is
new (the others are known by name and sha256), so the run reads exactly its
rows. The outcome is either a one-line rejection (nothing of the run loaded)
or the rows loaded and the quarantine by category and rule -- and in every
case the audit reconciles: read = loaded + quarantined, for every table.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from etl.errors import EtlError
from etl.run.stages import run_pipeline
from tests.conftest import query

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"

ORDERS, ITEMS, REVIEWS = "fact_orders", "fact_order_items", "fact_reviews"
FORMAT, RULE, QUALITY, FK, DUP = (
    "DATA_FORMAT_ERROR",
    "BUSINESS_RULE_VIOLATION",
    "DATA_QUALITY_ISSUE",
    "REFERENTIAL_INTEGRITY",
    "DUPLICATE",
)


@dataclass(frozen=True)
class Loaded:
    table: str
    read: int
    loaded: int
    quarantined: dict[tuple[str, str], int] = field(default_factory=dict)  # (category, rule) -> rows
    flags: dict[str, int] = field(default_factory=dict)  # dq_flags value -> rows of this file
    texts: dict[str, str] = field(default_factory=dict)  # id -> the text the warehouse holds


@dataclass(frozen=True)
class Rejected:
    needle: str


def rid(prefix: str, n: int) -> str:
    """The id make_corpus.py gave row ``n`` of the file with ``prefix``."""
    return (prefix + f"{n:04d}").rjust(32, "0")


CASES: dict[str, Loaded | Rejected] = {
    "orders__empty.csv": Rejected("the file is empty (not even a header line)"),
    "orders__header_only.csv": Loaded(ORDERS, 0, 0),
    "order_reviews__bom.csv": Loaded(REVIEWS, 2, 2),
    "order_reviews__crlf.csv": Loaded(REVIEWS, 2, 2),
    "order_reviews__latin1_in_utf8.csv": Loaded(REVIEWS, 2, 1, {(FORMAT, "invalid_utf8"): 1}),
    "order_reviews__unterminated_quote.csv": Rejected("Expected 7 columns, got 5"),
    "order_reviews__embedded_newlines.csv": Loaded(REVIEWS, 2, 2),
    "orders__extra_column.csv": Loaded(ORDERS, 2, 2),
    "orders__missing_column.csv": Rejected("missing column(s) order_status"),
    "orders__reordered_columns.csv": Loaded(ORDERS, 1, 1),
    "orders__wrong_delimiter.csv": Rejected("it looks ';'-separated: save it comma-separated"),
    "order_items__comma_decimals.csv": Loaded(ITEMS, 3, 1, {(FORMAT, "format:price_cents"): 2}),
    "orders__date_format_dmy.csv": Loaded(ORDERS, 2, 1, {(FORMAT, "format:purchased_at"): 1}),
    "orders__date_format_iso_t_z.csv": Loaded(ORDERS, 2, 1, {(FORMAT, "format:purchased_at"): 1}),
    "orders__date_format_compact.csv": Loaded(ORDERS, 2, 1, {(FORMAT, "format:purchased_at"): 1}),
    "orders__date_format_words.csv": Loaded(ORDERS, 2, 1, {(FORMAT, "format:purchased_at"): 1}),
    "orders__date_1900.csv": Loaded(ORDERS, 2, 1, {(RULE, "plausible:purchased_at"): 1}),
    "orders__date_2100.csv": Loaded(ORDERS, 2, 1, {(RULE, "plausible:purchased_at"): 1}),
    "order_items__negative_price.csv": Loaded(ITEMS, 2, 1, {(RULE, "price_positive"): 1}),
    "order_items__zero_price.csv": Loaded(ITEMS, 3, 1, {(RULE, "price_positive"): 2}),
    "order_items__nan_infinity.csv": Loaded(ITEMS, 5, 1, {(FORMAT, "format:price_cents"): 4}),
    "order_items__huge_numbers.csv": Loaded(ITEMS, 3, 1, {(FORMAT, "format:price_cents"): 2}),
    "order_reviews__10mb_field.csv.gz": Loaded(REVIEWS, 3, 2, {(QUALITY, "field_too_large"): 1}),
    "orders__duplicate_header.csv": Rejected("column(s) order_status appear more than once in the header"),
    "orders__duplicate_rows.csv": Loaded(ORDERS, 42, 40, {(DUP, "unique:order_id"): 2}),
    "order_items__orphan_keys.csv": Loaded(ITEMS, 2, 1, {(FK, "fk:order_id->fact_orders"): 1}),
    "orders__orphan_customer.csv": Loaded(ORDERS, 2, 1, {(FK, "fk:customer_id->dim_customers"): 1}),
    "order_reviews__nul_bytes.csv": Loaded(
        REVIEWS, 2, 2, flags={"text_cleaned": 1}, texts={rid("00", 1): "beforeafter", rid("00", 2): "clean"}
    ),
    "orders__nul_in_id.csv": Loaded(ORDERS, 2, 1, {(FORMAT, "format:order_id"): 1}),
    "order_reviews__control_chars.csv": Loaded(REVIEWS, 2, 2, flags={"text_cleaned": 2}),
    "order_reviews__sql_injection.csv": Loaded(
        REVIEWS,
        3,
        3,
        texts={
            rid("5a", 1): "'; DROP TABLE fact_orders; --",
            rid("5a", 2): "Robert'); DELETE FROM quarantine; --",
            rid("5a", 3): "1 OR 1=1",
        },
    ),
    "order_reviews__formula_injection.csv": Loaded(
        REVIEWS, 5, 5, flags={"formula_like": 4}, texts={rid("f0", 1): "=cmd|' /C calc'!A0"}
    ),
    "order_reviews__emoji_rtl.csv": Loaded(
        REVIEWS,
        4,
        4,
        flags={"text_cleaned": 1},
        texts={
            rid("e0", 1): "adorei 😍👍🏽",
            rid("e0", 2): "ممتاز جدا",
            rid("e0", 3): "שלום evil",  # the bidi override and pop are removed
            rid("e0", 4): "e\u0301 combining",
        },
    ),
    "orders__corrupt.csv.gz": Rejected("corrupt gzip data"),
    "orders__truncated.csv.gz": Rejected("the gzip file is truncated"),
    "orders__not_gzip.csv.gz": Rejected("corrupt gzip data (Not a gzipped file"),
}


def test_the_corpus_is_complete():
    files = {p.name for p in BAD.iterdir() if p.suffix != ".py" and p.name != "__pycache__"}
    assert files == set(CASES)
    assert len(files) >= 30


@pytest.fixture(scope="module")
def warehouse(module_db, sample_dir, tmp_path_factory):
    settings = module_db.with_overrides(
        sources_file=tmp_path_factory.mktemp("cfg") / "no-sources.yml", dq_enforce=False
    )
    run_pipeline(settings, data_dir=sample_dir, run_id="sample")
    return settings


def _data_dir(sample_dir: Path, corpus_file: Path, target: Path) -> Path:
    shutil.copytree(sample_dir, target)
    stem = "olist_" + corpus_file.name.split("__")[0] + "_dataset"
    (target / f"{stem}.csv").unlink()
    suffix = ".csv.gz" if corpus_file.name.endswith(".gz") else ".csv"
    shutil.copy(corpus_file, target / f"{stem}{suffix}")
    return target / f"{stem}{suffix}"


def _audit(settings, run_id: str) -> dict[str, tuple[int, int, int, str]]:
    rows = query(
        settings,
        "SELECT table_name, rows_read, rows_loaded, rows_quarantined, status FROM ingest_audit WHERE run_id = %s",
        (run_id,),
    )
    return {t: (r, lo, q, s) for t, r, lo, q, s in rows}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_bad_file_has_its_exact_outcome(name, warehouse, sample_dir, tmp_path):
    expected = CASES[name]
    source = _data_dir(sample_dir, BAD / name, tmp_path / "olist")
    run_id = "bad-" + name.split(".")[0].replace("__", "-").replace("_", "-")
    if isinstance(expected, Rejected):
        with pytest.raises(EtlError) as info:
            run_pipeline(warehouse, data_dir=tmp_path / "olist", run_id=run_id)
        message = str(info.value)
        assert "\n" not in message and expected.needle in message, message
        assert str(source) in message  # names the file
        assert not any(s == "succeeded" for *_, s in _audit(warehouse, run_id).values())
        return
    run_pipeline(warehouse, data_dir=tmp_path / "olist", run_id=run_id)
    audit = _audit(warehouse, run_id)
    for table, (read, loaded, quarantined, status) in audit.items():
        assert read == loaded + quarantined, (table, audit[table])  # every table reconciles
        assert status == "succeeded"
    read, loaded, quarantined, _ = audit.get(expected.table, (0, 0, 0, "succeeded"))
    assert (read, loaded) == (expected.read, expected.loaded), audit
    got = dict(
        ((c, r), n)
        for c, r, n in query(
            warehouse,
            "SELECT category, rule, count(*) FROM quarantine WHERE run_id = %s GROUP BY 1, 2",
            (run_id,),
        )
    )
    assert got == expected.quarantined
    assert quarantined == sum(expected.quarantined.values())
    sources = {
        s
        for (s,) in query(
            warehouse, "SELECT DISTINCT source_file FROM quarantine WHERE run_id = %s", (run_id,)
        )
    }
    assert sources <= {source.name}  # the quarantine names the file (and the row, below)
    if got:
        rows = [
            r for (r,) in query(warehouse, "SELECT row_number FROM quarantine WHERE run_id = %s", (run_id,))
        ]
        assert all(2 <= r <= expected.read + 1 for r in rows)
    if expected.flags or expected.texts:
        column = {REVIEWS: "review_id", ORDERS: "order_id"}[expected.table]
        message = "comment_message" if expected.table == REVIEWS else "order_status"
        rows = query(
            warehouse,
            f"SELECT {column}, {message}, dq_flags FROM {expected.table} WHERE {column} = ANY(%s)",  # noqa: S608
            (_ids(BAD / name),),
        )
        flags: dict[str, int] = {}
        for _, _, dq in rows:
            for flag in (dq or "").split(","):
                if flag:
                    flags[flag] = flags.get(flag, 0) + 1
        assert flags == expected.flags
        stored = {key: text for key, text, _ in rows}
        for key, text in expected.texts.items():
            assert stored[key] == text


def _ids(path: Path) -> list[str]:
    """The first column of a corpus file (its ids), however hostile the rest."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    lines = data.decode("utf-8", errors="replace").splitlines()[1:]
    return [line.split(",", 1)[0] for line in lines if line[:32].isalnum()]
