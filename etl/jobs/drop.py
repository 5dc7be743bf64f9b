"""The file drop: accepted uploads, one folder per job, each file with its sha256.

Layout (``settings.jobs_drop_dir``, default ``data/staging/drop``)::

    drop/{job_id}/olist_orders_dataset.csv ...   the files, under their Olist names
    drop/{job_id}/manifest.json                  upload name, bytes, sha256 per file

A job's folder is written under ``.incoming-{job_id}`` and renamed into place
only when complete, so a crash or a refused upload leaves nothing a worker
could pick up; ``verify`` re-checks every checksum before a run reads the files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from etl.errors import SourceError
from etl.jobs.checks import AcceptedFile
from etl.olist import ALL_TABLES
from etl.settings import Settings

MANIFEST = "manifest.json"


def job_dir(drop_dir: Path, job_id: str) -> Path:
    return Path(drop_dir) / job_id


def store(drop_dir: Path, job_id: str, upload_name: str, files: list[AcceptedFile]) -> dict:
    """Write the files and their manifest atomically; the manifest (checksums included)."""
    drop_dir = Path(drop_dir)
    incoming = drop_dir / f".incoming-{job_id}"
    target = job_dir(drop_dir, job_id)
    incoming.mkdir(parents=True, exist_ok=False)
    try:
        entries = []
        for f in files:
            (incoming / f.name).write_bytes(f.data)
            entries.append(
                {
                    "name": f.name,
                    "table": f.spec.name,
                    "bytes": len(f.data),
                    "sha256": hashlib.sha256(f.data).hexdigest(),
                }
            )
        manifest = {"job_id": job_id, "upload": upload_name, "files": entries}
        (incoming / MANIFEST).write_text(json.dumps(manifest, indent=2))
        incoming.rename(target)
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    return manifest


def remove(drop_dir: Path, job_id: str) -> None:
    shutil.rmtree(job_dir(drop_dir, job_id), ignore_errors=True)


def verify(drop_dir: Path, job_id: str) -> dict:
    """The manifest, after checking every file against its sha256 (SourceError if changed)."""
    folder = job_dir(drop_dir, job_id)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise SourceError(f"job {job_id}: its drop folder {folder} has no readable manifest ({exc})") from exc
    for entry in manifest["files"]:
        digest = hashlib.sha256((folder / entry["name"]).read_bytes()).hexdigest()
        if digest != entry["sha256"]:
            raise SourceError(
                f"job {job_id}: {entry['name']} changed after upload (sha256 differs); upload it again"
            )
    return manifest


def complete(drop_dir: Path, job_id: str) -> Path:
    """Give the job's folder a header-only file for each Olist table the upload lacks; the folder.

    A run reads every Olist table; an empty one reads nothing, so the upload's
    rows resolve their references against the warehouse instead.
    """
    folder = job_dir(drop_dir, job_id)
    uploaded = {entry["table"] for entry in verify(drop_dir, job_id)["files"]}
    for spec in ALL_TABLES:
        if spec.name not in uploaded:
            (folder / f"{spec.file_stem}.csv").write_text(
                ",".join(spec.source_columns) + "\n", encoding="utf-8"
            )
    return folder


def run_settings(settings: Settings, folder: Path) -> Settings:
    """Settings of a job's run: the drop folder is the data, and no sources.yml source rides along."""
    folder = Path(folder)
    return settings.with_overrides(data_dir=folder, sources_file=folder / "no-sources.yml")
