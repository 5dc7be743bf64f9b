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
import re
from pathlib import Path
from typing import Any

from etl.errors import ConfigError
from etl.settings import Settings

#: A run id names folders here, so it may not climb out of them (``../../x``) or hide in them.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}", re.ASCII)
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}", re.ASCII)


def check_run_id(run_id: str) -> str:
    """The run id, or a ConfigError saying what a run id may be."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id) or ".." in run_id:
        shown = repr(run_id if len(str(run_id)) <= 60 else str(run_id)[:60] + "…")
        raise ConfigError(
            f"run id {shown} is not allowed: use up to 128 letters, digits and - _ . : + "
            "starting with a letter or digit (it names a folder under ETL_STAGING_DIR)"
        )
    return run_id


def run_dir(settings: Settings, run_id: str) -> Path:
    return settings.staging_dir / "runs" / check_run_id(run_id)


def clean_dir(settings: Settings, run_id: str) -> Path:
    return settings.staging_dir / "clean" / check_run_id(run_id)


def raw_dir(settings: Settings, source: str, day: str) -> Path:
    if not _NAME.fullmatch(source):
        raise ConfigError(f"source name {source!r} is not allowed in the archive's folder names")
    if not _DAY.fullmatch(day):
        raise ConfigError(f"archive day {day!r} must be a date like 2024-03-01")
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
