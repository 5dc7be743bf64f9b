"""The run's timeline: one ``run_events`` row per stage it went through.

``ingest_audit`` says what each table loaded; it cannot say when the run was
transformed, its aggregates refreshed, validated or notified. Each stage
function is decorated with ``recorded(stage, summarize)``: when it returns or
raises, a row is written with its start, duration, outcome, a small summary of
its result (rows, counts) and the error line. The dashboards' Audit trail reads
it beside ``ingest_audit``.

Recording is best effort by design: it never changes what the stage does. If
the warehouse has no ``run_events`` table yet (an older schema) or cannot be
reached, the stage still succeeds or fails on its own, and a warning is logged.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg2

from etl.settings import Settings
from etl.warehouse import connection as db

log = logging.getLogger(__name__)

Summary = Callable[[Any], dict]


def write(
    settings: Settings,
    run_id: str,
    stage: str,
    started_at: datetime,
    seconds: float,
    status: str,
    detail: dict | None = None,
    error: str | None = None,
) -> None:
    """Insert one event; log (never raise) when the warehouse cannot take it."""
    detail = dict(detail or {})
    rows = detail.pop("rows", None)
    try:
        conn = db.connect(settings.database_url, settings.connect_timeout)
    except Exception as exc:  # noqa: BLE001 - best effort, see the module docstring
        # Said quietly: a stage that could not reach the warehouse has said so already.
        log.info("run %s: %s event not recorded (%s)", run_id, stage, exc)
        return
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass('run_events') IS NOT NULL")
            if not cur.fetchone()[0]:
                log.warning("run %s: no run_events table (run `etl db init`); event not recorded", run_id)
                return
            cur.execute(
                """INSERT INTO run_events (run_id, stage, status, started_at, finished_at, seconds,
                                           rows, detail, error)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                (
                    run_id,
                    stage,
                    status,
                    started_at,
                    datetime.now(UTC),
                    seconds,
                    rows,
                    json.dumps(detail, default=str),
                    error,
                ),
            )
    except psycopg2.Error as exc:
        log.warning("run %s: %s event not recorded (%s)", run_id, stage, " ".join(str(exc).split())[:200])
    finally:
        conn.close()


def _error_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:1000]


def recorded(stage: str, summarize: Summary | None = None):
    """Decorate a stage ``f(settings, run_id, ...)`` or ``f(run, ...)``: write its event when it returns or raises."""

    def wrap(func):
        signature = inspect.signature(func)

        @functools.wraps(func)
        def run(*args, **kwargs):
            bound = signature.bind_partial(*args, **kwargs)
            settings, run_id = bound.arguments.get("settings"), bound.arguments.get("run_id")
            if settings is None and "run" in bound.arguments:  # a stage handed an etl.run.plan.Run
                run_ = bound.arguments["run"]
                settings, run_id = getattr(run_, "settings", None), getattr(run_, "run_id", None)
            started_at, started = datetime.now(UTC), time.monotonic()
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                if settings is not None and run_id:
                    write(
                        settings,
                        run_id,
                        stage,
                        started_at,
                        time.monotonic() - started,
                        "failed",
                        None,
                        _error_line(exc),
                    )
                raise
            if settings is not None and run_id:
                try:
                    detail = summarize(result) if summarize else {}
                except Exception:  # noqa: BLE001 - a summary must not fail the stage
                    log.exception("run %s: could not summarise the %s stage", run_id, stage)
                    detail = {}
                write(settings, run_id, stage, started_at, time.monotonic() - started, "succeeded", detail)
            return result

        return run

    return wrap


# --- what each stage's result says, in a line of JSON ------------------------------------


def source_ingested(summary: dict) -> dict:
    """One source of the run (the ingest stage fans out: a row per source)."""
    return {
        **{k: summary.get(k) for k in ("source", "kind", "status", "error")},
        "rows": summary.get("records_new"),
    }


def transformed(metadata: dict) -> dict:
    tables = metadata.get("tables", [])
    return {
        "rows": sum(t.get("rows_read", 0) for t in tables),
        "rows_clean": sum(t.get("rows_loaded", 0) for t in tables),
        "rows_quarantined": sum(t.get("rows_quarantined", 0) for t in tables),
        "tables": len(tables),
    }


def loaded(tables: list) -> dict:
    return {
        "rows": sum(t.rows_loaded for t in tables),
        "rows_written": sum(t.rows_written for t in tables),
        "tables": {t.table: t.rows_loaded for t in tables},
    }


def refreshed(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "run_id"}


def gated(result: dict) -> dict:
    return {"enforced": result.get("enforced"), "violations": result.get("violations", [])}


def validated(report: Any) -> dict:
    return {"passed": report.passed, "checks": len(report.checks), "failed": len(report.failures)}


def notified(result: dict) -> dict:
    return {"delivery": result.get("delivery"), "rows": result.get("rows_loaded")}
