"""Runs of part of the pipeline: ``etl replay`` (a source's archived day) and ``etl ingest``.

Both assemble a manifest their own way, then hand it to the same transform and
load stages a full run uses (``etl.run.pipeline``).
"""

from __future__ import annotations

import uuid

from etl.errors import SourceError
from etl.ingest import manifest as ingest_manifest
from etl.ingest import runner as ingest
from etl.olist import ALL_TABLES
from etl.run import lock, pipeline, setup
from etl.settings import Settings


def replay(
    settings: Settings,
    source_name: str,
    day: str,
    archived_run: str | None = None,
    run_id: str | None = None,
) -> dict:
    """``etl replay``: transform and load one source's archived day, touching no source or state."""
    run_id = run_id or f"replay-{source_name}-{day}-{uuid.uuid4().hex[:8]}"
    setup.ensure_current(settings)  # like every run, it starts at the code's schema version
    inputs, counts = ingest.replay_inputs(settings, source_name, day, run_id, archived_run)
    if not inputs:
        raise SourceError(f"the archive of {source_name} on {day} holds no records to replay")
    manifest = ingest_manifest.write_manifest(
        settings, run_id, f"archive:{source_name}/{day}", ALL_TABLES, inputs, [], []
    )
    with lock.warehouse_lock(settings, f"etl replay {run_id}", wait=None if settings.run_lock_wait else 0):
        pipeline.transform_stage(settings, run_id)
        tables = pipeline.load_stage(settings, run_id)
    return {
        "run_id": run_id,
        "source": source_name,
        "day": day,
        **counts,
        "tables": [t.to_dict() for t in tables],
        "manifest": manifest["sources"],
    }


def ingest_and_load(
    settings: Settings,
    run_id: str,
    names: list[str] | None = None,
    resources: ingest.Resources | None = None,
    load: bool = True,
) -> dict:
    """``etl ingest``: the configured sources only (no Olist folder), then transform and load."""
    setup.ensure_current(settings)  # like every run, it starts at the code's schema version
    summaries = ingest.ingest_sources(settings, run_id, names, resources)
    inputs: dict[str, list[str]] = {}
    for summary in summaries:
        for table, entry in summary.get("tables", {}).items():
            inputs.setdefault(table, []).append(entry["path"])
    ingest_manifest.write_manifest(settings, run_id, "sources.yml", ALL_TABLES, inputs, summaries, [])
    tables = []
    if load:
        with lock.warehouse_lock(
            settings, f"etl ingest {run_id}", wait=None if settings.run_lock_wait else 0
        ):
            pipeline.transform_stage(settings, run_id)
            tables = [t.to_dict() for t in pipeline.load_stage(settings, run_id)]
    return {"run_id": run_id, "sources": summaries, "tables": tables}
