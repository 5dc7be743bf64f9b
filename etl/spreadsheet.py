"""Cells a spreadsheet would run as a formula (CSV injection), and how CSV files defuse them.

A text value starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return
is evaluated by Excel, LibreOffice and Google Sheets when a CSV file is opened
(``=cmd|' /C calc'!A0``, ``=HYPERLINK(...)``); plain numbers such as ``-5.00``
are not formulas. Every CSV the project writes for people (``etl export``,
``etl quarantine export``) prefixes such a cell with an apostrophe, which the
spreadsheet shows as text; readers of our own exports (the dashboard fallback)
take it off again, so the values round-trip exactly.
"""

from __future__ import annotations

import re

import pandas as pd

#: The same rules as regular expressions (RE2 and Python alike), for column-wise checks.
FORMULA_START = "^[=+\\-@\\t\\r]"
PLAIN_NUMBER = "^[+-]?[0-9]+([.,][0-9]+)?$"
PREFIX = "'"

_START = re.compile(FORMULA_START)
_NUMBER = re.compile(PLAIN_NUMBER)


def is_formula(text: str) -> bool:
    return bool(_START.match(text)) and not _NUMBER.match(text)


def escape(value):
    """The value as a CSV cell a spreadsheet shows but never runs."""
    return PREFIX + value if isinstance(value, str) and is_formula(value) else value


def unescape(text: str) -> str:
    """The value ``escape`` was given (for readers of our own CSV files)."""
    return text[1:] if text.startswith(PREFIX) and is_formula(text[1:]) else text


def escape_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with every formula-like text cell escaped (numbers, dates... untouched)."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
            out[column] = values.map(escape, na_action="ignore")
    return out
