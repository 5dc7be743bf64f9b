"""Ingest: find and read the source files exactly as they are.

Reading is deliberately dumb: every field comes back as a string so that
nothing is coerced (or lost) before ``transform`` can decide, row by row,
whether a value is valid. Files may be plain ``.csv`` or ``.csv.gz``; a UTF-8
byte-order mark is accepted (Olist's translation file has one).
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pandas as pd

from etl.csv_header import check_columns, read_header
from etl.errors import SourceError
from etl.olist import ALL_TABLES, ROW_NUMBER, SourceFile, TableSpec


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def locate(spec: TableSpec, data_dir: Path) -> SourceFile:
    for candidate in (data_dir / f"{spec.file_stem}.csv", data_dir / f"{spec.file_stem}.csv.gz"):
        if candidate.is_file():
            return SourceFile(spec, candidate)
    raise SourceError(
        f"{data_dir}: missing source file {spec.file_stem}.csv (or .csv.gz) for table {spec.name}"
    )


def check_header(source: SourceFile) -> None:
    """Fail before anything is written if a column the table needs is missing (or twice there)."""
    check_columns(source.path, read_header(source.path), source.spec.source_columns)


def locate_all(data_dir: Path, specs: tuple[TableSpec, ...] = ALL_TABLES) -> list[SourceFile]:
    """Every source file, checked for existence and header, or one clear error."""
    if not data_dir.is_dir():
        raise SourceError(
            f"data directory {data_dir} does not exist (pass --data-dir pointing at the Olist CSV files)"
        )
    sources = [locate(spec, data_dir) for spec in specs]
    for source in sources:
        check_header(source)
    return sources


def read(source: SourceFile) -> pd.DataFrame:
    """All rows of a file as strings (empty fields become <NA>), plus their row number."""
    try:
        with _open_text(source.path) as fh:
            frame = pd.read_csv(
                fh,
                dtype="string",
                keep_default_na=False,
                na_values=[""],
                usecols=lambda c: c.strip() in source.spec.source_columns,
            )
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise SourceError(f"{source.path}: cannot parse as CSV ({exc})") from exc
    frame.columns = [c.strip() for c in frame.columns]
    frame[ROW_NUMBER] = pd.RangeIndex(2, len(frame) + 2)
    return frame
