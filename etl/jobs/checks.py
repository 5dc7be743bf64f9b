"""Is an upload something the pipeline can load? Decided before anything is stored.

An upload is one Olist CSV (``.csv`` or ``.csv.gz``) whose header names one
table, or a ``.zip`` of Olist files (the nine, or some of them). Refused, each
with a sentence and an HTTP status the API returns:

* empty (400), larger than the limit (413);
* not what its name says: a ``.csv`` that is not UTF-8 text or holds NUL bytes,
  a ``.zip`` that is not a zip archive, any other name (415);
* a CSV header that matches no Olist table (422);
* a zip with a member path that is absolute or climbs out (``../``), a member
  that is not an Olist file name, more members than Olist has files, or more
  uncompressed bytes than the limit or a compression ratio above 200:1 (a zip
  bomb) -- judged from the central directory *and* enforced while extracting,
  since the directory can lie (400 / 413).
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from etl.olist import ALL_TABLES, ORDERS, TableSpec

MAX_RATIO = 200
HEADER_BYTES = 64 * 1024


class UploadRefused(Exception):
    """An upload that is not accepted; ``status`` is the HTTP status, the message the sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class AcceptedFile:
    name: str  # file name in the drop folder (an Olist file name)
    spec: TableSpec
    data: bytes


def _human(n: int) -> str:
    return f"{n / 1_000_000:,.1f} MB" if n >= 1_000_000 else f"{n:,} bytes"


def _spec_for_header(header: list[str]) -> TableSpec | None:
    names = {h.strip() for h in header}
    matches = [s for s in ALL_TABLES if set(s.source_columns) <= names]
    # the most specific table (geolocation's columns are not a subset of another's, but be sure)
    return max(matches, key=lambda s: len(s.source_columns)) if matches else None


def _text_head(data: bytes, name: str) -> str:
    head = data[:HEADER_BYTES]
    if b"\x00" in head:
        raise UploadRefused(415, f"{name} is not a CSV text file (it holds binary data)")
    try:
        return head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the 64 KB boundary
            raise UploadRefused(
                415, f"{name} is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV"
            ) from None
        return head[: exc.start].decode("utf-8-sig")


def check_csv(name: str, data: bytes) -> AcceptedFile:
    """One CSV (plain or gzip): its header must be an Olist table's."""
    plain = data
    if name.endswith(".gz"):
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
                plain = fh.read(HEADER_BYTES)
        except (OSError, EOFError):
            raise UploadRefused(415, f"{name} is not a gzip file") from None
    text = _text_head(plain, name)
    header = next(csv.reader(io.StringIO(text)), [])
    if not header:
        raise UploadRefused(422, f"{name} has no header line")
    spec = _spec_for_header(header)
    if spec is None:
        shown = ", ".join(h.strip() for h in header[:6]) + (", ..." if len(header) > 6 else "")
        raise UploadRefused(
            422,
            f"{name}: the header ({shown}) is not an Olist table's; e.g. orders need "
            + ", ".join(ORDERS.source_columns[:4])
            + ", ...",
        )
    stored = f"{spec.file_stem}.csv" + (".gz" if name.endswith(".gz") else "")
    return AcceptedFile(stored, spec, data)


def _olist_names() -> dict[str, TableSpec]:
    names = {}
    for spec in ALL_TABLES:
        names[f"{spec.file_stem}.csv"] = spec
        names[f"{spec.file_stem}.csv.gz"] = spec
    return names


def check_zip(name: str, data: bytes, max_bytes: int) -> list[AcceptedFile]:
    """A zip of Olist files: every member checked by name, path, size and header."""
    if not data.startswith(b"PK\x03\x04"):
        raise UploadRefused(415, f"{name} is not a zip archive")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()]
    except zipfile.BadZipFile as exc:
        raise UploadRefused(415, f"{name} is not a readable zip archive ({exc})") from None
    known = _olist_names()
    if not members:
        raise UploadRefused(400, f"{name} holds no files")
    if len(members) > len(ALL_TABLES):
        raise UploadRefused(
            400, f"{name} holds {len(members)} files; an Olist upload has at most {len(ALL_TABLES)}"
        )
    declared = 0
    for m in members:
        path = PurePosixPath(m.filename.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or (m.filename[1:3] == ":/"):
            raise UploadRefused(400, f"{name}: member {m.filename!r} has an unsafe path; nothing was stored")
        if path.name not in known:
            raise UploadRefused(
                400, f"{name}: member {m.filename!r} is not an Olist file (e.g. olist_orders_dataset.csv)"
            )
        declared += m.file_size
        if m.compress_size and m.file_size / m.compress_size > MAX_RATIO:
            raise UploadRefused(
                413,
                f"{name}: member {m.filename!r} expands {m.file_size // m.compress_size}:1 (a zip bomb?); refused",
            )
    if declared > max_bytes:
        raise UploadRefused(
            413, f"{name} expands to {_human(declared)}, above the limit of {_human(max_bytes)}"
        )
    accepted, seen, total = [], set(), 0
    for m in members:
        base = PurePosixPath(m.filename.replace("\\", "/")).name
        if known[base].name in seen:
            raise UploadRefused(400, f"{name} holds two files for table {known[base].name}")
        seen.add(known[base].name)
        with archive.open(m) as fh:  # the directory may lie: count what really comes out
            content = fh.read(max_bytes - total + 1)
        total += len(content)
        if total > max_bytes:
            raise UploadRefused(413, f"{name} expands to more than the limit of {_human(max_bytes)}; refused")
        file = check_csv(base, content)
        if file.spec is not known[base]:
            raise UploadRefused(422, f"{name}: {base} has the header of {file.spec.file_stem}.csv")
        accepted.append(file)
    return accepted


def check_upload(name: str, data: bytes, max_bytes: int) -> list[AcceptedFile]:
    """The files an upload holds, or UploadRefused with the reason."""
    name = Path(name or "").name  # never trust a client's path
    if not data:
        raise UploadRefused(400, f"{name or 'the upload'} is empty")
    if len(data) > max_bytes:
        raise UploadRefused(413, f"{name} is {_human(len(data))}, above the limit of {_human(max_bytes)}")
    lower = name.lower()
    if lower.endswith(".zip"):
        return check_zip(name, data, max_bytes)
    if lower.endswith((".csv", ".csv.gz")):
        return [check_csv(name, data)]
    raise UploadRefused(415, f"{name or 'the upload'}: upload a .csv, .csv.gz or a .zip of Olist CSV files")
