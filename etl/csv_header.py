"""The header line of a CSV file, read safely: bounded, and every failure one line.

Used by ingest (to check a file's columns before anything is written) and by
the transform reader, so both refuse the same files with the same words: a
damaged or truncated gzip file, a first line that is not UTF-8, a "header"
that is one 200 MB line.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from pathlib import Path

from etl.errors import SourceError

#: A header line longer than this is not a header (e.g. a file that is one 200 MB line).
HEADER_LIMIT = 1 << 20


def read_header(path: Path) -> list[str]:
    """The column names of a CSV file (plain or .gz), reading at most ``HEADER_LIMIT`` bytes.

    Every way the first line can be unreadable -- a damaged or truncated gzip
    file, bytes that are not UTF-8, no line end within the limit -- is one
    SourceError naming the file.
    """
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as fh:
            head = fh.read(HEADER_LIMIT)
    except EOFError:
        raise SourceError(f"{path}: the gzip file is truncated; copy or download it again") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise SourceError(f"{path}: corrupt gzip data ({exc}); copy or download it again") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    end = head.find(b"\n")
    if end < 0 and len(head) >= HEADER_LIMIT:
        raise SourceError(
            f"{path}: the first line is longer than {HEADER_LIMIT >> 20} MiB, so it is not a CSV header "
            "(is this the right file?)"
        )
    line = head if end < 0 else head[:end]
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{path}: the header is not UTF-8 (byte {exc.start + 1} of line 1); save the file as UTF-8"
        ) from None
    try:
        return [h.strip() for h in next(csv.reader([text.rstrip("\r")]), [])]
    except csv.Error as exc:
        raise SourceError(f"{path}: the header line cannot be read as CSV ({exc})") from None


def check_columns(path: Path, header: list[str], needed: list[str] | tuple[str, ...]) -> None:
    """Refuse, in one line, a header that cannot give each needed column exactly once."""
    if not header or header == [""]:
        raise SourceError(f"{path}: the file is empty (not even a header line)")
    twice = sorted({name for name in needed if header.count(name) > 1})
    if twice:
        raise SourceError(
            f"{path}: column(s) {', '.join(twice)} appear more than once in the header, so which "
            "one holds the data is unclear; keep one of each"
        )
    missing = [c for c in needed if c not in header]
    if missing:
        separator = next((s for s in (";", "\t", "|") if len(header) == 1 and s in header[0]), None)
        hint = f"; it looks {separator!r}-separated: save it comma-separated" if separator else ""
        raise SourceError(
            f"{path}: missing column(s) {', '.join(missing)} "
            f"(the file has: {', '.join(header) or 'no header'}){hint}"
        )
