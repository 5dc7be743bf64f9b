"""The raw archive: every payload exactly as received, compressed, with a manifest.

Layout (``etl.staging.raw_dir``)::

    raw/{source}/{YYYY-MM-DD}/{name}_{timestamp}_{seq}.json.gz   API page (or DB batch, before Arrow)
    raw/{source}/{YYYY-MM-DD}/{name}_{timestamp}_{seq}.parquet   DB batch (zstd Parquet, as read)
    raw/{source}/{YYYY-MM-DD}/{name}_{timestamp}_{seq}.csv.zst   copy of an Olist CSV file (.csv.gz before)
    raw/{source}/{YYYY-MM-DD}/{name}_{timestamp}_{seq}.raw.zst   copy of a source's file (.raw.gz before)
    raw/{source}/{YYYY-MM-DD}/manifest.jsonl                     one line per payload

A manifest line: source, run_id, file, kind, request (method, url, params --
never credentials), status, records, sha256 and bytes of the payload as
received (before compression), received_at; a copied file's line also has
``file_sha256``, the checksum of the file as it is on disk (``.gz`` included),
computed in the same read as the copy. ``etl replay`` reads only this.

Copied files are zstd level 1 with a frame checksum, streamed: gzip level 5
took 14.7 s of one thread for the 656 MB of a 1M-order folder, zstd level 1
takes ~3 s and writes a smaller archive (docs/performance.md "Ingest: the raw
archive"). Pages and batches (``put``) stay gzip: small, and read by tools
that expect ``.json.gz``. Both are read back, old ``.gz`` copies included.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import zstandard

from etl import staging
from etl.errors import SourceError
from etl.settings import Settings

MANIFEST = "manifest.jsonl"
#: zstd level of copied files: level 1 runs at several hundred MB/s on one core and
#: still compresses the Olist CSVs better than gzip level 5 (283 against 301 MB at 1M orders).
ZSTD_LEVEL = 1


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


@dataclass
class Archive:
    """Writes one source's payloads for one run into the day's folder."""

    settings: Settings
    source: str
    run_id: str
    day: str = ""

    def __post_init__(self) -> None:
        staging.check_run_id(self.run_id)  # before the first byte of a run is written anywhere
        self.day = self.day or today()
        self.directory = staging.raw_dir(self.settings, self.source, self.day)
        self.seq = 0
        self.written: list[dict] = []

    def put(
        self,
        name: str,
        payload: bytes,
        *,
        suffix: str = "json",
        records: int,
        request: dict | None = None,
        status: int | None = None,
        kind: str = "page",
        extra: dict | None = None,
        compress: bool = True,
    ) -> dict:
        """Store one payload and append its manifest line (fsynced: the archive outlives a crash).

        ``compress=False`` for payloads compressed by their own format (Parquet
        batches of database sources): stored as they are, without ``.gz``.
        """
        return self._store(
            name,
            iter((payload,)),
            suffix,
            records,
            request,
            status,
            kind,
            extra,
            origin=f"payload {name}",
            codec="gz" if compress else None,
        )

    def put_file(
        self,
        name: str,
        path: Path,
        *,
        decompress: bool = False,
        suffix: str = "csv",
        records: int = -1,
        request: dict | None = None,
        kind: str = "file",
        extra: dict | None = None,
    ) -> dict:
        """Store a file's content zstd-compressed, streamed in blocks (gunzipped first if ``decompress``).

        The file is read once: that read feeds the compressor, the payload's
        sha256 and the file's own (``file_sha256`` in the returned line, the
        checksum ``etl run`` keys already-loaded files by), so no separate
        checksum pass. Memory stays at one block whatever the file's size, and a
        corrupt or truncated gzip file is found while streaming: a one-line
        SourceError naming the file, and nothing of it is left in the archive.
        """
        with open(path, "rb") as raw:
            hashed = _Hashing(raw)
            line = self._store(
                name,
                _file_blocks(path, hashed, decompress),
                suffix,
                records,
                request,
                None,
                kind,
                extra,
                origin=str(path),
                codec="zst",
                read=hashed,
            )
        return line

    def _store(
        self,
        name,
        blocks: Iterable[bytes],
        suffix,
        records,
        request,
        status,
        kind,
        extra,
        *,
        origin,
        codec: str | None,
        read: _Hashing | None = None,
    ):
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _archive_error(self.directory, origin, exc) from None
        self.seq += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
        path = self.directory / f"{safe}_{stamp}_{self.seq:05d}.{suffix}{'.' + codec if codec else ''}"
        digest, size = hashlib.sha256(), 0
        try:
            with open(path, "wb") as raw:
                with _compressor(raw, codec) as fh:
                    for block in blocks:
                        digest.update(block)
                        size += len(block)
                        fh.write(block)
                # gzip's trailer and zstd's last block are written on close: only then is it complete
                raw.flush()
                os.fsync(raw.fileno())
        except OSError as exc:  # disk full, quota, read-only: nothing half-written stays
            path.unlink(missing_ok=True)
            raise _archive_error(self.directory, origin, exc) from None
        except BaseException:  # the input itself is bad (SourceError) or the run was stopped
            path.unlink(missing_ok=True)
            raise
        line = {
            "source": self.source,
            "run_id": self.run_id,
            "file": path.name,
            "kind": kind,
            "request": request or {},
            "status": status,
            "records": records,
            "sha256": digest.hexdigest(),
            "bytes": size,
            "received_at": datetime.now(UTC).isoformat(),
            **({"file_sha256": read.hexdigest()} if read else {}),
            **(extra or {}),
        }
        try:
            _append_line(self.directory / MANIFEST, json.dumps(line, default=str) + "\n")
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise _archive_error(self.directory, origin, exc) from None
        self.written.append(line)
        return line


#: Files are archived this many bytes at a time: one block is all the memory a copy
#: holds. 8 MiB blocks left a run's peak RSS ~60 MB higher
#: (tests/reliability/test_damaged_files.py: 363 against 302 MB).
BLOCK_BYTES = 1 << 20


def _compressor(raw: BinaryIO, codec: str | None):
    """A writer compressing into ``raw`` (left open, so it can be fsynced once complete)."""
    if codec == "gz":
        return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=5)
    if codec == "zst":
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
        return compressor.stream_writer(raw, closefd=False)
    return contextlib.nullcontext(raw)


class _Hashing:
    """A binary file read through once, hashing every byte that goes by."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.digest.update(data)
        return data

    def drain(self) -> None:
        """Hash what the reader above left unread (gzip stops at its last member's trailer)."""
        while self.read(BLOCK_BYTES):
            pass

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


def _file_blocks(path: Path, hashed: _Hashing, decompress: bool) -> Iterator[bytes]:
    """The file's bytes (read through ``hashed``) in blocks; a damaged gzip file is one SourceError line."""
    done = 0
    try:
        with gzip.GzipFile(fileobj=hashed, mode="rb") if decompress else contextlib.nullcontext(hashed) as fh:
            while block := fh.read(BLOCK_BYTES):
                done += len(block)
                yield block
        hashed.drain()
    except EOFError:
        raise SourceError(
            f"{path}: the gzip file is truncated (it ends after {done:,} bytes of data); "
            "copy or download it again"
        ) from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise SourceError(
            f"{path}: corrupt gzip data ({exc}) in the block from byte {done:,} of its content; "
            "copy or download it again"
        ) from None


def _append_line(path: Path, text: str) -> None:
    """Append one manifest line whole, or leave the manifest as it was (fsynced)."""
    data = text.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        before = os.fstat(fd).st_size
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, "short write to the manifest")
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, before)  # a partial line would make every later line unreadable
            raise
    finally:
        os.close(fd)


def _archive_error(directory: Path, origin: str, exc: OSError) -> SourceError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "the disk is full"
        hint = "free space there (or point ETL_STAGING_DIR at a larger disk) and run again"
    else:
        what = exc.strerror or str(exc)
        hint = "check that folder's permissions and disk, then run again"
    return SourceError(
        f"cannot archive {origin} in {directory}: {what}; what was archived before is kept; {hint}"
    )


def read_manifest(settings: Settings, source: str, day: str, run_id: str | None = None) -> list[dict]:
    path = staging.raw_dir(settings, source, day) / MANIFEST
    if not path.exists():
        raise SourceError(
            f"no archive for source {source} on {day} ({path} does not exist); "
            "list data/staging/raw/{source}/ for the days archived"
        )
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [line for line in lines if run_id is None or line["run_id"] == run_id]


def payloads(
    settings: Settings, source: str, day: str, run_id: str | None = None
) -> Iterator[tuple[dict, bytes]]:
    """(manifest line, payload bytes) in the order received, each checked against its sha256."""
    directory = staging.raw_dir(settings, source, day)
    for line in read_manifest(settings, source, day, run_id):
        path = directory / line["file"]
        try:
            if path.suffix == ".gz":
                with gzip.open(path, "rb") as fh:
                    payload = fh.read()
            elif path.suffix == ".zst":
                payload = b"".join(_unzstd_blocks(path))
            else:
                payload = path.read_bytes()
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceError(
                f"{path}: cannot read the archived payload ({exc}); the archive was damaged after it was written"
            ) from None
        if hashlib.sha256(payload).hexdigest() != line["sha256"]:
            raise SourceError(
                f"{path}: payload does not match its manifest sha256; "
                "the archive was changed after it was written"
            )
        yield line, payload


def _unzstd_blocks(path: Path) -> Iterator[bytes]:
    """A zstd archive's content in blocks: a flipped byte fails its frame checksum, a cut file is told."""
    decompressor = zstandard.ZstdDecompressor()
    stream = decompressor.decompressobj()
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK_BYTES):
            while block:
                try:
                    yield stream.decompress(block)
                except zstandard.ZstdError as exc:
                    raise SourceError(
                        f"{path}: corrupt zstd data ({exc}); the archive was damaged after it was written"
                    ) from None
                block = stream.unused_data if stream.eof else b""
                if block:  # another frame follows (concatenated zstd is valid zstd)
                    stream = decompressor.decompressobj()
    if not stream.eof:
        raise SourceError(
            f"{path}: the zstd archive is truncated; the archive was damaged after it was written"
        )
