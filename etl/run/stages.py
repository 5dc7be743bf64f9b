"""The run, declared once: which stages, in which order, what each reads and hands on.

``etl.run.plan.PLAN`` names the stages and their order; this binds each to
its work. The CLI (``run_pipeline``, i.e. ``etl run``) loops over ``STAGES``;
the Airflow DAG (``dags/etl_pipeline.py``) maps one task to each planned stage
and runs it through ``run_stage``; tests iterate them. Adding a stage means
one entry in the plan and one here.
"""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from etl import staging
from etl.errors import SourceError
from etl.ingest import manifest as ingest_manifest
from etl.ingest import runner as ingest
from etl.run import events, lock, notify, pipeline, setup, validate
from etl.run.plan import PLAN, PLAN_BY_NAME, Run, StagePlan
from etl.settings import Settings
from etl.warehouse import connection


@dataclass(frozen=True)
class Stage:
    """A planned stage bound to its work. A fan-out stage runs ``each`` once per item of ``items``."""

    plan: StagePlan
    run: Callable[[Run], dict] | None = None
    items: Callable[[Settings], list[dict]] | None = None
    each: Callable[[Run, dict], dict] | None = None

    @property
    def name(self) -> str:
        return self.plan.name


def _setup(run: Run) -> dict:
    mode = setup.ensure_current(run.settings)
    return {"migrated": mode is not None, "mode": mode.name if mode else None}


@events.recorded("ingest", events.source_ingested)
def _ingest_one(run: Run, source: dict) -> dict:
    summary = ingest.ingest_one(run.settings, run.run_id, source, run.resources)
    staged = [Path(t["path"]) for t in (summary.get("tables") or {}).values() if t.get("path")]
    return {
        **{k: summary.get(k) for k in ("source", "kind", "status", "records_new", "error")},
        "bytes": sum(p.stat().st_size for p in staged if p.exists()),  # the audit trail shows it
    }


def _transform(run: Run) -> dict:
    ingest_manifest.assemble(run.settings, run.run_id, ingest.sources_for_run(run.settings))
    meta = pipeline.transform_stage(run.settings, run.run_id)
    return {
        "run_id": run.run_id,
        "tables": len(meta["tables"]),
        "rows_read": sum(t["rows_read"] for t in meta["tables"]),
        "rows_clean": sum(t["rows_loaded"] for t in meta["tables"]),
        "rows_quarantined": sum(t["rows_quarantined"] for t in meta["tables"]),
    }


def _quality_gate(run: Run) -> dict:
    return pipeline.quality_gate_stage(run.settings, run.run_id)


def _load(run: Run) -> dict:
    tables = pipeline.load_stage(run.settings, run.run_id)
    return {
        "run_id": run.run_id,
        "tables": [t.to_dict() for t in tables],
        "rows_loaded": sum(t.rows_loaded for t in tables),
        "rows_written": sum(t.rows_written for t in tables),
    }


def _refresh(run: Run) -> dict:
    return pipeline.refresh_aggregates_stage(run.settings, run.run_id)


def _validate(run: Run) -> dict:
    return validate.validate_stage(run.settings, run.run_id)


def _notify(run: Run) -> dict:
    return notify.notify_stage(run.settings, run.run_id, run.send, run.elapsed())


#: Each planned stage's work, by name (a fan-out stage: its items and the work on one item).
_WORK: dict[str, dict[str, Callable]] = {
    "setup": {"run": _setup},
    "ingest": {"items": ingest.sources_for_run, "each": _ingest_one},
    "transform": {"run": _transform},
    "quality_gate": {"run": _quality_gate},
    "load": {"run": _load},
    "refresh_aggregates": {"run": _refresh},
    "validate": {"run": _validate},
    "notify": {"run": _notify},
}
if set(_WORK) != set(PLAN_BY_NAME):  # a planned stage without work, or work without a plan
    raise RuntimeError(f"etl.run.plan and etl.run.stages disagree: {sorted(set(_WORK) ^ set(PLAN_BY_NAME))}")
STAGES: tuple[Stage, ...] = tuple(Stage(plan, **_WORK[plan.name]) for plan in PLAN)
STAGES_BY_NAME = {stage.name: stage for stage in STAGES}
if STAGES[0].name != "setup":  # run_pipeline runs it before taking the lock (it may create the database)
    raise RuntimeError("the first planned stage must be setup")


def run_stage(stage: Stage, run: Run) -> dict | list[dict]:
    """One stage for a run, in this process (a fan-out stage loops over its items)."""
    if stage.plan.fans_out:
        return [stage.each(run, item) for item in stage.items(run.settings)]
    return stage.run(run)


#: How long a writing task waits for another run's task to leave the warehouse before it
#: fails naming the holder (its retries wait again); well inside every stage's timeout.
TASK_LOCK_WAIT = timedelta(minutes=15)


def run_task(name: str, run: Run, item: dict | None = None) -> dict | list[dict]:
    """One stage as an Airflow task runs it: a fan-out stage for one item, failing when it failed.

    In ``etl run`` a failed configured source is reported and the others load;
    as a task of its own it fails, so Airflow retries and alerts for that source.
    """
    stage = STAGES_BY_NAME[name]
    if not stage.plan.fans_out:
        if not stage.plan.exclusive:
            return stage.run(run)
        # Two DAG runs never write at once (a backfill ignores the DAG's max_active_runs).
        with lock.warehouse_lock(
            run.settings, f"run {run.run_id} {name}", wait=TASK_LOCK_WAIT.total_seconds()
        ):
            return stage.run(run)
    result = stage.each(run, item)
    if result.get("status") == "failed":
        raise SourceError(f"source {result.get('source')} failed: {result.get('error')}")
    return result


def run_pipeline(
    settings: Settings,
    data_dir: Path | None = None,
    run_id: str | None = None,
    resources: ingest.Resources | None = None,
    send: notify.Sender | None = None,
) -> pipeline.RunSummary:
    """``etl run``: every stage of ``STAGES`` in order, in one process."""
    started = time.monotonic()
    if data_dir is not None:
        settings = settings.with_overrides(data_dir=Path(data_dir))
    run = Run(settings, run_id or pipeline.new_run_id(), resources, send, lambda: time.monotonic() - started)
    staging.check_run_id(run.run_id)  # before anything is written anywhere
    timings: list[pipeline.StageTiming] = []
    results = {STAGES[0].name: _timed(STAGES[0], run, timings)}  # setup: it may create the lock's database
    # One run at a time per warehouse: a second `etl run` waits, saying for whom (or, with
    # --no-wait, stops at once naming it).
    with lock.warehouse_lock(
        settings,
        f"etl run {run.run_id} on {socket.gethostname()}",
        wait=None if settings.run_lock_wait else 0,
    ):
        results |= {stage.name: _timed(stage, run, timings) for stage in STAGES[1:]}
    manifest = pipeline.read_manifest(settings, run.run_id)
    tables = [pipeline.TableSummary(**t) for t in results["load"]["tables"]]
    rows_read = sum(t.rows_read for t in tables)
    return pipeline.RunSummary(
        run.run_id,
        manifest["data_dir"],
        connection.describe_url(settings.database_url),
        time.monotonic() - started,
        tables,
        quality=pipeline.score_text(settings, run.run_id),
        stages=[t.with_rows(rows_read) for t in timings],
    )


def _timed(stage: Stage, run: Run, timings: list[pipeline.StageTiming]) -> dict | list[dict]:
    """``run_stage``, its wall seconds and the process's peak RSS after it noted in ``timings``."""
    started = time.monotonic()
    result = run_stage(stage, run)
    timings.append(pipeline.StageTiming(stage.name, time.monotonic() - started, peak_rss_mb()))
    return result


def peak_rss_mb() -> float:
    """This process's peak resident set so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
