"""Formula-like cells in the CSV files people open: defused on the way out, restored by our own reader."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from dashboard import fallback, queries
from etl import spreadsheet
from etl.publish import export

HOSTILE = ["=cmd|' /C calc'!A0", "+SUM(A1:A9)", "-2+3", '@HYPERLINK("x")', "\t=1", "\r=1"]
SAFE = ["-5.00", "+3", "12,5", "plain", "a=b", "", "😀", "'quoted"]


@pytest.mark.parametrize("value", HOSTILE)
def test_formula_like_text_is_prefixed_and_restored(value):
    assert spreadsheet.is_formula(value)
    escaped = spreadsheet.escape(value)
    assert escaped == "'" + value
    assert spreadsheet.unescape(escaped) == value


@pytest.mark.parametrize("value", SAFE)
def test_numbers_and_plain_text_are_left_alone(value):
    assert not spreadsheet.is_formula(value)
    assert spreadsheet.escape(value) == value
    assert spreadsheet.unescape(value) == value


def test_an_exported_csv_defuses_formulas_and_the_fallback_reads_the_values_back(tmp_path):
    hostile = [v for v in HOSTILE if "\r" not in v]  # a bare CR is a line end to pandas' reader
    frame = pd.DataFrame({"category": hostile + SAFE, "orders": range(len(hostile + SAFE))})
    path = tmp_path / "view.csv"
    export._write(frame, path, "csv")
    cells = pd.read_csv(path, dtype=str, keep_default_na=False)["category"].tolist()
    assert all(c.startswith("'") for c in cells[: len(hostile)])  # a spreadsheet shows them as text
    assert cells[len(hostile) :] == SAFE
    kinds = {"category": "text", "orders": "int"}
    export._write_manifest(
        tmp_path, "csv", "h:5432/db", [(export.ExportedFile("cells", path, len(frame)), kinds)]
    )
    rows = queries._rows(fallback.load(tmp_path).connection(), "SELECT * FROM cells ORDER BY orders")
    assert [r["category"] for r in rows] == hostile + [v or None for v in SAFE]  # "" is missing, as ever
    assert [r["orders"] for r in rows] == list(range(len(hostile + SAFE)))


def test_the_export_manifest_says_cells_are_prefixed(tmp_path):
    export._write_manifest(tmp_path, "csv", "h:5432/db", [])
    assert json.loads((tmp_path / export.MANIFEST).read_text())["formula_prefix"] == "'"
