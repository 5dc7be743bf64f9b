"""Where stages leave their output for the next one, under ``settings.staging_dir``.

Stages hand over files, not DataFrames, so each can run in its own process
(an Airflow task, a CLI call, a test) and pass only small values (paths, run
id, counts) between them:

    runs/{run_id}/ingest.json          what ingest found (sources, paths, checksums)
    clean/{run_id}/{table}.parquet     typed, checked rows ready to load
    clean/{run_id}/{table}.quarantine.parquet   rejected rows with their reasons
    clean/{run_id}/_metadata.json      run id, sources, row counts, schema
    raw/{source}/{YYYY-MM-DD}/...      raw payloads as received (ingestion)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from etl.settings import Settings


def run_dir(settings: Settings, run_id: str) -> Path:
    return settings.staging_dir / "runs" / run_id


def clean_dir(settings: Settings, run_id: str) -> Path:
    return settings.staging_dir / "clean" / run_id


def raw_dir(settings: Settings, source: str, day: str) -> Path:
    return settings.staging_dir / "raw" / source / day


def write_json(path: Path, payload: Any) -> Path:
    """Write atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(path)
    return path


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def file_sha256(path: Path) -> str:
    """The checksum recorded for a staged or source file (manifests, archive, lookups)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
