"""The deadline alert's declaration and callback (etl.run.deadline), with a real SMTP server.

The scheduler hands the callback a context whose ``dag_run`` is the REST API's
run shape (``dag_run_id``, ``state``, ...); these tests feed it that shape.
tests/airflow_live/test_scheduler.py sees the alert fire under a real scheduler.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy

import pytest

from etl.run import deadline
from tests.airflow_live.harness import free_port


def context(state: str, run_id: str = "manual__2018-08-03") -> dict:
    return {
        "dag_run": {
            "dag_run_id": run_id,
            "dag_id": "etl_pipeline",
            "logical_date": "2018-08-03T02:00:00Z",
            "queued_at": "2026-12-01T08:00:00Z",
            "run_type": "manual",
            "state": state,
        },
        "deadline": {"id": "d1", "deadline_time": "2026-12-01T10:00:00Z"},
    }


def test_the_interval_is_stored_as_seconds_which_clearing_can_read():
    """Airflow 3.3.2's clear recomputes `timedelta(seconds=<stored interval>)`: a dict crashes it."""
    from airflow.serialization.decoders import decode_deadline_alert
    from airflow.serialization.encoders import encode_deadline_alert

    alert = deadline.deadline_alert(["a@example.org"], "smtp_default", timedelta(hours=2))
    stored = json.loads(json.dumps(encode_deadline_alert(alert)))  # what the metadata DB keeps
    assert stored["interval"] == 7200.0
    assert timedelta(seconds=stored["interval"]) == timedelta(hours=2)  # the recalculation's read
    assert decode_deadline_alert(stored).interval == timedelta(hours=2)  # the run creation's read
    # What the SDK's own timedelta form would store, and why clearing then answered HTTP 500:
    from airflow.sdk import DeadlineAlert

    as_timedelta = DeadlineAlert(
        reference=alert.reference, interval=timedelta(hours=2), callback=alert.callback
    )
    stored_dict = json.loads(json.dumps(encode_deadline_alert(as_timedelta)))["interval"]
    assert isinstance(stored_dict, dict)
    with pytest.raises(TypeError, match="unsupported type for timedelta seconds component: dict"):
        timedelta(seconds=stored_dict)


def test_a_running_run_is_named_in_the_alert():
    subject, body = deadline.deadline_message(context("running"), 7200)
    assert subject == "[etl_pipeline] run manual__2018-08-03 (2018-08-03) still unfinished 2 h after queueing"
    assert "<b>manual__2018-08-03</b>" in body and "<b>running</b>" in body
    assert deadline.deadline_message(context("queued"), 90)[0].endswith("1.5 min after queueing")


@pytest.mark.parametrize("state", ["success", "failed"])
def test_no_alert_for_a_run_that_has_ended(state):
    assert deadline.deadline_message(context(state), 7200) is None


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"


def test_the_callback_mails_a_running_run_and_not_an_ended_one(monkeypatch):
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SMTP_TEST",
            json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": controller.port,
                    "extra": {"disable_tls": True, "disable_ssl": True},
                }
            ),
        )
        send = deadline.deadline_missed
        ended = asyncio.run(send(to=["a@example.org"], smtp_conn_id="smtp_test", context=context("failed")))
        assert ended == "run already finished: no alert" and inbox.messages == []
        sent = asyncio.run(send(to=["a@example.org"], smtp_conn_id="smtp_test", context=context("running")))
        assert sent == "alert sent to 1 recipient(s)"
        (mail,) = inbox.messages
        assert mail["To"] == "a@example.org"
        assert "run manual__2018-08-03 (2018-08-03) still unfinished" in mail["Subject"]
    finally:
        controller.stop()
