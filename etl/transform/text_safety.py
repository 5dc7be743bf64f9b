"""Hostile text, found row by row before anything else looks at a batch.

What a source file can hold that would otherwise fail a whole run or harm
someone downstream, and what becomes of it (rule names in ``etl.transform.checks``):

* **bytes that are not UTF-8** (a Latin-1 row in a UTF-8 file): the reader
  decodes them as U+FFFD; the row is quarantined (``invalid_utf8``, hard) with
  the field named, so it can be fixed and retried;
* **a field longer than ``max_field_chars``** (default 100,000 characters,
  ``ETL_MAX_FIELD_CHARS``): quarantined (``field_too_large``, hard); the
  quarantined copy keeps the first characters and says how long it was, so the
  quarantine table stays small;
* **NUL and other control characters** (PostgreSQL refuses NUL in text; the
  others break terminals and CSV readers; tab, CR and LF stay) and **bidi
  override controls** (U+202A-U+202E, U+2066-U+2069: text that displays other
  than it reads): removed, and the row loads with ``text_cleaned`` in its
  ``dq_flags``;
* **formula-like text** (a free-text value starting with ``=``, ``+``, ``-``,
  ``@``, tab or CR that is not a plain number): loaded verbatim with
  ``formula_like`` in ``dq_flags``; ``etl export`` writes such cells to CSV with
  a leading apostrophe so no spreadsheet runs them.

Right-to-left scripts and emoji are text like any other and pass untouched.
Each finding names its field; the quarantine row names the file and the row.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from etl.olist import TableSpec
from etl.spreadsheet import FORMULA_START, PLAIN_NUMBER
from etl.transform import checks as ck
from etl.transform.columns import _np_bool, string_parts, to_arrow

REPLACEMENT = "\ufffd"
#: Removed from text: C0 controls but tab/LF/CR, DEL, and the bidi embedding/override/isolate controls.
_REMOVED = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f\u202a-\u202e\u2066-\u2069]"
#: How much of an over-size field the quarantine keeps.
KEPT_CHARS = 200

#: One finding for ``_Batch.emit``: (check, fail mask, applicable mask, detail).
Emit = tuple[ck.Check, np.ndarray, np.ndarray, str]


#: Bytes that need no closer look: all but C0 controls (tab, LF, CR excepted), DEL and the lead
#: bytes of the bidi controls (E2 80 AA..E2 81 A9) and of U+FFFD (EF BF BD).
_PLAIN_BYTES = bytes(
    b for b in range(256) if not (b < 0x20 and b not in (9, 10, 13)) and b not in (0x7F, 0xE2, 0xEF)
)
_FORMULA_BYTES = np.frombuffer(b"=+-@\t\r", dtype=np.uint8)


def sanitize(spec: TableSpec, raw: pd.DataFrame, max_field_chars: int) -> tuple[pd.DataFrame, list[Emit]]:
    """``raw`` with hostile text made safe, and the findings to emit for its rows.

    Clean columns cost a few byte scans of their data buffer (no per-value work):
    only a column holding a suspect byte, a value longer than the limit or a
    formula-like first character is looked at value by value.
    """
    emits: list[Emit] = []
    changed: dict[str, pd.Series] = {}
    free_text = {c.source for c in spec.columns if c.kind == "text"}
    for col in spec.columns:
        arr = to_arrow(raw[col.source])
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)) or len(arr) == 0:
            continue
        new, found = _column(col.source, arr, max_field_chars, col.source in free_text)
        emits += found
        if new is not None:
            changed[col.source] = pd.Series(pd.arrays.ArrowStringArray(new), index=raw.index)
    if changed:
        raw = raw.assign(**changed)
    return raw, emits


def _column(name: str, arr: pa.Array, limit: int, free_text: bool) -> tuple[pa.Array | None, list[Emit]]:
    emits: list[Emit] = []
    new = None
    offsets, data = string_parts(arr)
    present = None

    def valid() -> np.ndarray:
        return _np_bool(pc.is_valid(arr))

    printable_ascii = len(data) == 0 or (
        int(data.min()) >= 0x20 and int(data.max()) < 0x7F
    )  # ids, numbers, dates
    if not printable_ascii and data.tobytes().translate(None, _PLAIN_BYTES):  # a byte worth a closer look
        present = valid()
        invalid = _np_bool(pc.match_substring(arr, REPLACEMENT))
        if invalid.any():
            emits.append(
                (
                    ck.INVALID_UTF8,
                    invalid,
                    present,
                    f"{name} is not valid UTF-8 (the bytes that could not be read show as {REPLACEMENT}); "
                    "save the file as UTF-8 and retry the row",
                )
            )
        removable = _np_bool(pc.match_substring_regex(arr, _REMOVED))
        if removable.any():
            new = pc.replace_substring_regex(arr, _REMOVED, "")
            emits.append(
                (
                    ck.TEXT_CLEANED,
                    removable,
                    present,
                    f"{name} held control characters (NUL, escape, bidi overrides...) that were removed",
                )
            )
    if len(offsets) > 1 and int(np.diff(offsets).max()) > limit:  # bytes >= characters: else none is too long
        current = new if new is not None else arr
        lengths = pc.utf8_length(current)
        over = _np_bool(pc.greater(lengths, limit))
        if over.any():
            present = valid() if present is None else present
            sizes = np.asarray(pc.fill_null(lengths, 0).to_numpy(zero_copy_only=False))
            kept = [
                f"{v[:KEPT_CHARS]}… [{n:,} characters; the first {KEPT_CHARS} kept]" if big else v
                for v, n, big in zip(current.to_pylist(), sizes, over, strict=True)
            ]
            new = pa.array(kept, type=pa.large_string())
            emits.append(
                (
                    ck.FIELD_TOO_LARGE,
                    over,
                    present,
                    f"{name} is longer than {limit:,} characters (ETL_MAX_FIELD_CHARS)",
                )
            )
    if free_text and len(data):
        starts = offsets[:-1][np.diff(offsets) > 0]
        if np.isin(data[starts], _FORMULA_BYTES).any():
            current = new if new is not None else arr
            formula = _np_bool(pc.match_substring_regex(current, FORMULA_START)) & ~_np_bool(
                pc.match_substring_regex(current, PLAIN_NUMBER)
            )
            if formula.any():
                present = valid() if present is None else present
                emits.append(
                    (
                        ck.FORMULA_LIKE,
                        formula,
                        present,
                        f"{name} starts like a spreadsheet formula; CSV exports prefix it with an apostrophe",
                    )
                )
    if new is not None and not pa.types.is_large_string(new.type):
        new = new.cast(pa.large_string())
    return new, emits


def decode_rows(arr: pa.Array) -> pa.Array:
    """A string array that may hold invalid UTF-8, decoded row by row (bad bytes -> U+FFFD)."""
    raw = arr.cast(pa.large_binary()) if not pa.types.is_binary(arr.type) else arr
    return pa.array(
        (None if v is None else v.decode("utf-8", errors="replace") for v in _bytes(raw)),
        type=pa.large_string(),
    )


def _bytes(arr: pa.Array) -> Iterator[bytes | None]:
    return iter(arr.to_pylist())
