"""Read a source file in chunks of strings, so memory stays flat whatever its size.

The chunks look exactly like ``ingest.read`` output (every field a string,
empty -> missing, header names trimmed, ``_row_number`` as a spreadsheet
numbers records) but come from pyarrow's streaming CSV reader, a few hundred
thousand rows at a time. Quoted line breaks inside values are supported.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from etl.csv_header import check_columns, read_header
from etl.errors import SourceError
from etl.olist import ROW_NUMBER, TableSpec
from etl.transform import text_safety

#: pyarrow parses blocks of this size and reads several ahead: its memory is
#: about 36 x this (measured), so blocks stay small and are gathered into chunks.
BLOCK_BYTES = 4 << 20


#: A line or field above this size is refused (one error line) before it is read whole: the
#: csv module keeps 4 bytes per character of a field, so 16 MiB costs ~100 MB at most.
MAX_RECORD_BYTES = 16 << 20


def _frame(batches: list[pa.RecordBatch], wanted: list[str], first_row: int) -> pd.DataFrame:
    table = pa.Table.from_batches(batches).combine_chunks()
    table = pa.table({name: _valid_utf8(table.column(name)) for name in table.column_names})
    frame = table.to_pandas(types_mapper=_as_string)[wanted]
    frame[ROW_NUMBER] = pd.RangeIndex(first_row, first_row + len(frame))
    return frame


def _valid_utf8(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The column, its invalid UTF-8 (read unchecked) decoded as U+FFFD row by row.

    The check is one pass in C++; only a column that fails it is decoded in
    Python, so a Latin-1 row costs its own row's quarantine, not the file.
    """
    try:
        column.validate(full=True)
        return column
    except pa.ArrowInvalid:
        return pa.chunked_array([text_safety.decode_rows(chunk) for chunk in column.chunks])


def _as_string(t: pa.DataType):
    return (
        pd.StringDtype("pyarrow")
        if (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t))
        else None
    )


def read_chunks(
    path: Path, spec: TableSpec, chunk_rows: int = 250_000, block_bytes: int = BLOCK_BYTES
) -> Iterator[pd.DataFrame]:
    """Yield frames of at least ``chunk_rows`` rows (one block more at most) as strings."""
    path = Path(path)
    header = read_header(path)  # bounded: one SourceError line for any unreadable first line
    check_columns(path, header, spec.source_columns)
    wanted = spec.source_columns + [c for c in spec.lineage if c in header]
    read_options = pacsv.ReadOptions(column_names=header, skip_rows=1, block_size=block_bytes)
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in header},
        include_columns=wanted,
        strings_can_be_null=True,
        null_values=[""],
        quoted_strings_can_be_null=True,
        check_utf8=False,  # checked per column in _frame: a bad row must not fail the file
    )
    parse = pacsv.ParseOptions(newlines_in_values=True)
    raw = pa.OSFile(str(path))  # its position is the bytes read so far (progress: etl.progress)
    stream = pa.CompressedInputStream(raw, "gzip") if path.suffix == ".gz" else raw
    next_row = 2
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    try:
        with pacsv.open_csv(
            stream, read_options=read_options, parse_options=parse, convert_options=convert
        ) as reader:
            for batch in reader:
                pending.append(batch)
                pending_rows += batch.num_rows
                if pending_rows >= chunk_rows:
                    frame = _frame(pending, wanted, next_row)
                    next_row += len(frame)
                    pending, pending_rows = [], 0
                    frame.attrs["bytes_read"] = raw.tell()
                    yield frame
            if pending_rows:
                frame = _frame(pending, wanted, next_row)
                next_row += len(frame)
                frame.attrs["bytes_read"] = raw.tell()
                yield frame
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        reason = " ".join(str(exc).split())[:200]
        if path.suffix == ".gz" and ("zlib" in reason or "compressed" in reason):
            raise SourceError(
                f"{path}: corrupt or truncated gzip file ({reason}); copy or download it again"
            ) from None
        if "straddling" not in reason:
            raise SourceError(f"{path}: cannot parse as CSV after row {next_row} ({reason})") from None
        straddled = True
    else:
        straddled = False
    if straddled:
        # A record larger than a block (a field of several MB): from here on, read record
        # by record, so that record reaches the size checks (text_safety) as a row.
        for frame in _read_records(path, header, wanted, next_row, chunk_rows):
            next_row += len(frame)
            yield frame
    if next_row == 2:
        yield pd.DataFrame(
            {c: pd.Series([], dtype="string") for c in wanted} | {ROW_NUMBER: pd.Series([], dtype="int64")}
        )


def _read_records(
    path: Path, header: list[str], wanted: list[str], first_row: int, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """Records from ``first_row`` on, with Python's csv module (slow, but any record size).

    Rows before ``first_row`` were read by pyarrow already and are skipped;
    records are counted as pyarrow counts them (blank lines are not records).
    Invalid UTF-8 becomes U+FFFD, as in ``_frame``; a record over
    ``MAX_RECORD_BYTES`` is refused in one line.
    """
    positions = [header.index(c) for c in wanted]
    limit = csv.field_size_limit()
    csv.field_size_limit(MAX_RECORD_BYTES)
    row = 1
    columns: list[list] = [[] for _ in wanted]
    start = first_row
    try:
        opener = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
        with io.TextIOWrapper(opener, encoding="utf-8-sig", errors="replace", newline="") as fh:
            records = csv.reader(_bounded_lines(fh))
            next(records, None)  # the header
            for record in records:
                if not record:
                    continue
                row += 1
                if row < first_row:
                    continue
                if len(record) != len(header):
                    raise SourceError(
                        f"{path}: row {row} has {len(record)} fields, the header {len(header)} "
                        "(an unterminated quote or a wrong delimiter?)"
                    )
                for values, at in zip(columns, positions, strict=True):
                    values.append(record[at] or None)
                if len(columns[0]) >= chunk_rows:
                    yield _records_frame(wanted, columns, start)
                    start += len(columns[0])
                    columns = [[] for _ in wanted]
    except _LineTooLong:
        raise SourceError(
            f"{path}: the line after row {row} is longer than {MAX_RECORD_BYTES >> 20} MiB; "
            "it cannot be loaded: shorten or split the record"
        ) from None
    except csv.Error as exc:
        raise SourceError(
            f"{path}: a field after row {row} is larger than {MAX_RECORD_BYTES >> 20} MiB or not CSV "
            f"({exc}); it cannot be loaded: shorten or split it"
        ) from None
    except (EOFError, OSError, zlib.error) as exc:
        raise SourceError(f"{path}: cannot read the file after row {row} ({exc})") from None
    finally:
        csv.field_size_limit(limit)
    if columns[0]:
        yield _records_frame(wanted, columns, start)


def _bounded_lines(fh: io.TextIOBase) -> Iterator[str]:
    """The file's lines, none longer than ``MAX_RECORD_BYTES`` (csv.reader would read any line whole)."""
    while line := fh.readline(MAX_RECORD_BYTES + 1):
        if len(line) > MAX_RECORD_BYTES and not line.endswith("\n"):
            raise _LineTooLong
        yield line


class _LineTooLong(Exception):
    """A line past ``MAX_RECORD_BYTES``; ``_read_records`` says which row it follows."""


def _records_frame(wanted: list[str], columns: list[list], first_row: int) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            name: pd.array(values, dtype=pd.StringDtype("pyarrow"))
            for name, values in zip(wanted, columns, strict=True)
        }
    )
    frame[ROW_NUMBER] = pd.RangeIndex(first_row, first_row + len(frame))
    return frame
