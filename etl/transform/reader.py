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
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from etl.errors import SourceError
from etl.olist import ROW_NUMBER, TableSpec

#: pyarrow parses blocks of this size and reads several ahead: its memory is
#: about 36 x this (measured), so blocks stay small and are gathered into chunks.
BLOCK_BYTES = 4 << 20


def _frame(batches: list[pa.RecordBatch], wanted: list[str], first_row: int) -> pd.DataFrame:
    frame = pa.Table.from_batches(batches).combine_chunks().to_pandas(types_mapper=_as_string)[wanted]
    frame[ROW_NUMBER] = pd.RangeIndex(first_row, first_row + len(frame))
    return frame


def _header(path: Path) -> list[str]:
    opener = (
        (lambda: io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline=""))
        if path.suffix == ".gz"
        else (lambda: open(path, encoding="utf-8-sig", newline=""))
    )
    with opener() as fh:
        return [h.strip() for h in next(csv.reader(fh), [])]


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
    try:
        header = _header(path)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise SourceError(f"{path}: cannot read the file ({exc})") from exc
    missing = [c for c in spec.source_columns if c not in header]
    if missing:
        raise SourceError(
            f"{path}: missing column(s) {', '.join(missing)} "
            f"(the file has: {', '.join(header) or 'no header'})"
        )
    wanted = spec.source_columns + [c for c in spec.lineage if c in header]
    read_options = pacsv.ReadOptions(column_names=header, skip_rows=1, block_size=block_bytes)
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in header},
        include_columns=wanted,
        strings_can_be_null=True,
        null_values=[""],
        quoted_strings_can_be_null=True,
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
        raise SourceError(
            f"{path}: cannot parse as CSV near record {next_row} ({' '.join(str(exc).split())[:200]})"
        ) from exc
    if next_row == 2:
        yield pd.DataFrame(
            {c: pd.Series([], dtype="string") for c in wanted} | {ROW_NUMBER: pd.Series([], dtype="int64")}
        )
