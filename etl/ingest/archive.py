"""The raw archive: every payload exactly as received, compressed, with a manifest.

Layout (``etl.staging.raw_dir``)::

    raw/{source}/{YYYY-MM-DD}/{name}_{timestamp}_{seq}.json.gz   API page (or DB batch, before Arrow)
    raw/{source}/{YYYY-MM-DD}/{name}_{timestamp}_{seq}.parquet   DB batch (zstd Parquet, as read)
    raw/{source}/{YYYY-MM-DD}/{name}_{timestamp}_{seq}.csv.zst   copy of an Olist CSV file (.csv.gz before)
    raw/{source}/{YYYY-MM-DD}/{name}_{timestamp}_{seq}.raw.gz    copy of a source's file
    raw/{source}/{YYYY-MM-DD}/manifest.jsonl                     one line per payload

A manifest line: source, run_id, file, kind, request (method, url, params --
never credentials), status, records, sha256 and bytes of the payload as
received (before compression), received_at. ``etl replay`` reads only this.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from etl import staging
from etl.errors import SourceError
from etl.settings import Settings

MANIFEST = "manifest.jsonl"
_BLOCK = 8 << 20


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
        path = self._path(name, f"{suffix}{'.gz' if compress else ''}")
        if compress:
            with gzip.open(path, "wb", compresslevel=5) as fh:
                fh.write(payload)
        else:
            path.write_bytes(payload)
        digest = hashlib.sha256(payload).hexdigest()
        return self._record(path, kind, request, status, records, digest, len(payload), extra)

    def put_file(
        self,
        name: str,
        source: Path,
        *,
        suffix: str,
        records: int,
        request: dict | None = None,
        extra: dict | None = None,
        digest: str | None = None,
    ) -> dict:
        """Store a file's content zstd-compressed, streamed in blocks (memory flat in file size).

        A ``.gz`` file is stored decompressed-then-zstd (the payload is its content,
        as for ``put``). ``digest``: the file's sha256 when the caller has it (a plain
        file's payload is the file, so it is not hashed twice). zstd level 1 instead
        of gzip level 5: the 656 MB of a 1M-order folder took 14.7 s to gzip in the
        whole-run profile (docs/performance.md).
        """
        path = self._path(name, f"{suffix}.zst")
        gunzip = source.suffix == ".gz"
        hasher = hashlib.sha256() if gunzip or digest is None else None
        size = 0
        opener = gzip.open if gunzip else open
        with opener(source, "rb") as fh, pa.output_stream(str(path), compression="zstd") as out:
            for block in iter(lambda: fh.read(_BLOCK), b""):
                out.write(block)
                size += len(block)
                if hasher:
                    hasher.update(block)
        return self._record(
            path, "file", request, None, records, hasher.hexdigest() if hasher else digest, size, extra
        )

    def _path(self, name: str, suffix: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.seq += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
        return self.directory / f"{safe}_{stamp}_{self.seq:05d}.{suffix}"

    def _record(self, path, kind, request, status, records, digest, size, extra) -> dict:
        """Append the payload's manifest line, fsynced: the archive outlives a crash."""
        line = {
            "source": self.source,
            "run_id": self.run_id,
            "file": path.name,
            "kind": kind,
            "request": request or {},
            "status": status,
            "records": records,
            "sha256": digest,
            "bytes": size,
            "received_at": datetime.now(UTC).isoformat(),
            **(extra or {}),
        }
        with open(self.directory / MANIFEST, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.written.append(line)
        return line


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
                with pa.input_stream(str(path), compression="zstd") as fh:
                    payload = fh.read()
            else:
                payload = path.read_bytes()
        except OSError as exc:
            raise SourceError(f"{path}: cannot read the archived payload ({exc})") from exc
        if hashlib.sha256(payload).hexdigest() != line["sha256"]:
            raise SourceError(
                f"{path}: payload does not match its manifest sha256; "
                "the archive was changed after it was written"
            )
        yield line, payload
