"""The run's stages as data: names, order, what each reads and hands on, how long it may take.

Deliberately free of the heavy modules that do the work, so the Airflow DAG
file can read it at parse time (no pandas, no database) and map one task to
each entry; ``Run`` is what every stage is handed. ``etl.run.stages`` binds every entry to the function that runs it;
``etl run`` loops over the same entries in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from etl.settings import Settings


@dataclass(frozen=True)
class StagePlan:
    name: str
    reads: str
    hands_on: str
    timeout: timedelta
    #: Run once per source (the DAG: a ``list_sources`` task, then one mapped task each).
    fans_out: bool = False
    #: Writes the warehouse: as a DAG task it holds the warehouse lock (etl.run.lock) while it runs.
    exclusive: bool = False


PLAN: tuple[StagePlan, ...] = (
    # Not exclusive: it may have to create the database the lock lives in.
    StagePlan("setup", "sql/", "a warehouse at this code's schema version", timedelta(minutes=30)),
    StagePlan(
        "ingest",
        "the Olist folder and every enabled source of sources.yml",
        "staging/runs/<run>/sources/<source>.json and table files; the raw archive",
        timedelta(minutes=30),
        fans_out=True,
    ),
    StagePlan(
        "transform",
        "the sources' staged table files",
        "staging/clean/<run>/: clean Parquet, quarantine, _metadata.json; quality_scores rows",
        timedelta(minutes=45),
        exclusive=True,
    ),
    StagePlan("quality_gate", "the run's scores", "go, or stop before loading", timedelta(minutes=5)),
    StagePlan(
        "load",
        "staging/clean/<run>/",
        "dimensions, facts, quarantine, ingest_audit; the days to refresh",
        timedelta(minutes=45),
        exclusive=True,
    ),
    StagePlan(
        "refresh_aggregates",
        "the queued days",
        "aggregates and analytics views",
        timedelta(minutes=30),
        exclusive=True,
    ),
    StagePlan(
        "validate", "staging, ingest_audit, the warehouse", "pass, or fail (exit 3)", timedelta(minutes=15)
    ),
    StagePlan("notify", "ingest_audit, quality_scores", "the success summary", timedelta(minutes=5)),
)
PLAN_BY_NAME = {stage.name: stage for stage in PLAN}


@dataclass(frozen=True)
class Run:
    """What every stage is handed: the settings and the run it works for."""

    settings: Settings
    run_id: str
    #: Test doubles for HTTP sessions, Mongo clients, clocks (production: none).
    resources: Any = None
    #: How the success summary is mailed (the DAG: Airflow's SMTP connection; CLI: logged).
    send: Callable[[Sequence[str], str, str], None] | None = None
    #: Seconds the run has taken when the notify stage runs (None: from the audit).
    elapsed: Callable[[], float | None] = field(default=lambda: None)
