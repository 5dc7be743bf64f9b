"""The DAG's deadline alert: email when a run is still unfinished 2 h after it was queued.

Two Airflow 3.3.2 behaviours shape this module:

* **The interval is declared in seconds, not as a ``timedelta``.** Airflow stores a
  ``timedelta`` interval in ``deadline_alert.interval`` as its serde dict
  (``{"__classname__": "datetime.timedelta", "__data__": 7200.0, ...}``), but
  ``_recalculate_dagrun_queued_at_deadlines`` (run when a task of a run with an
  unexpired deadline is cleared, and by backfills that rerun days) reads the
  column with ``timedelta(seconds=...)``: ``TypeError: unsupported type for
  timedelta seconds component: dict``, an HTTP 500 from the UI's Clear button.
  A plain number is the column's older form, which every reader accepts (the
  decoder turns it into a ``timedelta``; the recalculation adds it as seconds).
* **Airflow removes a run's deadline only when the run succeeds.** A failed run
  keeps it, and at the deadline the callback would fire for a run that ended
  hours ago. The callback is ours (``deadline_missed``, run by the triggerer)
  rather than ``SmtpNotifier``: it reads the run's state from the context the
  scheduler hands it and says nothing for a run that has already finished (its
  failure email went out with the failing task). The context's run id is
  ``dag_run.dag_run_id`` (the REST API's shape), not ``run_id``: the notifier's
  template rendered it blank.

Airflow is imported inside functions only (as in ``etl.run.airflow``): the
``etl`` package works without it.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

log = logging.getLogger(__name__)

DEADLINE = timedelta(hours=2)
FINISHED_STATES = ("success", "failed")
FROM_EMAIL = "etl_pipeline@localhost"


def deadline_alert(recipients: Sequence[str], smtp_conn_id: str, after: timedelta = DEADLINE):
    """``DeadlineAlert`` for the DAG: ``deadline_missed`` when a run is unfinished ``after`` queueing."""
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        # Seconds, not a timedelta: Airflow 3.3.2 cannot recalculate a stored timedelta (module doc).
        interval=after.total_seconds(),
        callback=AsyncCallback(
            deadline_missed,
            kwargs={
                "to": list(recipients),
                "smtp_conn_id": smtp_conn_id,
                "after_seconds": after.total_seconds(),
            },
        ),
        name=f"etl_pipeline unfinished {_duration(after.total_seconds())} after queueing",
    )


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"


def deadline_message(context: Mapping[str, Any], after_seconds: float) -> tuple[str, str] | None:
    """(subject, html body) for a missed deadline, or None when the run has already finished."""
    run = dict(context.get("dag_run") or {})
    run_id = run.get("dag_run_id") or run.get("run_id") or "?"
    state = run.get("state")
    if state in FINISHED_STATES:
        return None
    deadline_time = (context.get("deadline") or {}).get("deadline_time", "?")
    day = (run.get("logical_date") or run.get("run_after") or "")[:10]
    subject = (
        f"[etl_pipeline] run {run_id} ({day}) still unfinished {_duration(after_seconds)} after queueing"
    )
    body = (
        f"<p>DAG run <b>{html.escape(run_id)}</b> of etl_pipeline (day {html.escape(day)}, "
        f"{html.escape(str(run.get('run_type', '')))}) was queued at {html.escape(str(run.get('queued_at')))} "
        f"and was still <b>{html.escape(str(state))}</b> at its deadline, {html.escape(str(deadline_time))}.</p>"
        "<p>Nothing has failed yet (a failing task sends its own email). Look at the run's tasks in "
        "the Airflow UI: one waiting for the warehouse lock means another run holds it; a slow "
        "transform or load means more input than usual.</p>"
    )
    return subject, body


async def deadline_missed(
    *,
    to: Sequence[str],
    smtp_conn_id: str,
    after_seconds: float = DEADLINE.total_seconds(),
    context: Mapping[str, Any] | None = None,
):
    """Run by the triggerer at the deadline: email unless the run has already finished."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    message = deadline_message(context or {}, after_seconds)
    run = (context or {}).get("dag_run") or {}
    if message is None:
        log.info(
            "deadline of run %s passed after it had finished (%s): no alert",
            run.get("dag_run_id"),
            run.get("state"),
        )
        return "run already finished: no alert"
    subject, body = message
    async with SmtpHook(smtp_conn_id=smtp_conn_id) as hook:
        await hook.asend_email_smtp(
            to=list(to), subject=subject, html_content=body, from_email=hook.from_email or FROM_EMAIL
        )
    return f"alert sent to {len(to)} recipient(s)"
