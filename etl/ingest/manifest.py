"""The run's manifest: one input file per table, from every source the run ingested.

Each ingest task leaves ``sources/{source}.json`` (its summary and table files)
under the run's staging folder; ``assemble`` reads the summaries of the
sources the run declared and writes ``ingest.json``, the one file the
transform stage reads. Several inputs of one table are combined into one CSV.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import zlib
from pathlib import Path

from etl import staging
from etl.errors import SourceError
from etl.ingest.records import TABLE_COLUMNS
from etl.olist import ALL_TABLES, TableSpec
from etl.settings import Settings

log = logging.getLogger(__name__)


def summary_path(settings: Settings, run_id: str, source: str) -> Path:
    """Where an ingest task leaves its source's summary for the run."""
    return staging.run_dir(settings, run_id) / "sources" / f"{source}.json"


def assemble(settings: Settings, run_id: str, sources: list[dict]) -> dict:
    """``ingest.json`` from the summaries the run's ingest tasks left, one per declared source."""
    inputs: dict[str, list[str]] = {spec.name: [] for spec in ALL_TABLES}
    summaries, skipped, data_dir = [], [], "sources.yml"
    for source in sources:
        path = summary_path(settings, run_id, source["name"])
        if not path.exists():
            raise SourceError(
                f"run {run_id} has no ingest result for source {source['name']} at {path}; "
                "run the ingest stage first"
            )
        summary = staging.read_json(path)
        summaries.append(summary)
        skipped += summary.get("files_already_loaded_names", [])
        data_dir = summary.get("data_dir", data_dir)
        for table, entry in summary.get("tables", {}).items():
            if table in inputs:
                inputs[table].append(entry["path"])
    return write_manifest(settings, run_id, data_dir, ALL_TABLES, inputs, summaries, skipped)


def write_manifest(
    settings: Settings,
    run_id: str,
    data_dir: str,
    specs: tuple[TableSpec, ...],
    inputs: dict[str, list[str]],
    summaries: list[dict],
    skipped: list[str],
) -> dict:
    """One input file per table (combined when several feed it, header-only when none)."""
    tables_dir = staging.run_dir(settings, run_id) / "tables"
    entries = []
    for spec in specs:
        paths = inputs.get(spec.name, [])
        if len(paths) == 1:
            path = Path(paths[0])
        else:
            path = _combine(spec, [Path(p) for p in paths], tables_dir)
        entries.append({"table": spec.name, "path": str(path), "sha256": staging.file_sha256(path)})
    failed = [{"source": s["source"], "error": s["error"]} for s in summaries if s["status"] == "failed"]
    for f in failed:
        # The one report of a failed source, for `etl run`, `etl ingest` and Airflow alike.
        log.warning("source %s failed and was not loaded: %s", f["source"], f["error"])
    manifest = {
        "run_id": run_id,
        "data_dir": data_dir,
        "sources": entries,
        "inputs": inputs,
        "files_already_loaded": skipped,
        "ingested": [
            {k: s.get(k) for k in ("source", "kind", "status", "records_new", "error")} for s in summaries
        ],
        "failed_sources": failed,
    }
    staging.write_json(staging.run_dir(settings, run_id) / "ingest.json", manifest)
    return manifest


def _open_csv(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _combine(spec: TableSpec, paths: list[Path], directory: Path) -> Path:
    """Concatenate several inputs of a table into one CSV (their columns by name)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{spec.name}.csv.gz"
    with io.TextIOWrapper(gzip.open(target, "wb", compresslevel=3), encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=TABLE_COLUMNS[spec.name], extrasaction="ignore")
        writer.writeheader()
        limit = csv.field_size_limit(COMBINE_FIELD_LIMIT)  # the default 128 kB is no limit of ours
        try:
            for path in paths:
                try:
                    with _open_csv(path) as fh:
                        reader = csv.DictReader(fh)
                        reader.fieldnames = [f.strip() for f in reader.fieldnames or []]
                        writer.writerows(reader)
                except (csv.Error, EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError) as exc:
                    raise SourceError(
                        f"{path}: cannot be combined with the table's other inputs ({exc}); "
                        "fix or remove the file and run again"
                    ) from None
        finally:
            csv.field_size_limit(limit)
    return target


#: A field longer than this stops combining a table's inputs (the reader's own bound).
COMBINE_FIELD_LIMIT = 16 << 20


# --- replay ---------------------------------------------------------------------------------
