"""The raw archive: every payload exactly as received, gzip-compressed, with a manifest.

Layout (``etl.staging.raw_dir``)::

    raw/{source}/{YYYY-MM-DD}/{name}_{timestamp}_{seq}.json.gz   API page (or DB batch, before Arrow)
    raw/{source}/{YYYY-MM-DD}/{name}_{timestamp}_{seq}.parquet   DB batch (zstd Parquet, as read)
    raw/{source}/{YYYY-MM-DD}/{name}_{timestamp}_{seq}.csv.gz    copy of a CSV file (etc.)
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

from etl import staging
from etl.errors import SourceError
from etl.settings import Settings

MANIFEST = "manifest.jsonl"


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
        self.directory.mkdir(parents=True, exist_ok=True)
        self.seq += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
        path = self.directory / f"{safe}_{stamp}_{self.seq:05d}.{suffix}{'.gz' if compress else ''}"
        if compress:
            with gzip.open(path, "wb", compresslevel=5) as fh:
                fh.write(payload)
        else:
            path.write_bytes(payload)
        line = {
            "source": self.source,
            "run_id": self.run_id,
            "file": path.name,
            "kind": kind,
            "request": request or {},
            "status": status,
            "records": records,
            "sha256": hashlib.sha256(payload).hexdigest(),
            "bytes": len(payload),
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
