"""Failure alerts to Slack and Microsoft Teams, beside the email: the same facts, as each service wants them.

Both services take an *incoming webhook*: a secret URL that accepts one JSON
POST per message. The facts are those of the failure email (what failed, the
try, the error line, the log link); only the shape differs:

* **Slack** (incoming webhooks, https://api.slack.com/messaging/webhooks):
  ``{"text": fallback, "blocks": [...]}`` in Block Kit — a ``header`` block,
  a ``section`` with ``fields``, the error in a ``section``, a ``button``
  linking to the log. ``text`` is what notifications and old clients show.
* **Microsoft Teams** (Workflows "Post to a channel when a webhook request is
  received", which replaced the retired Office 365 connectors and their
  MessageCard): ``{"type": "message", "attachments": [{"contentType":
  "application/vnd.microsoft.card.adaptive", "content": <Adaptive Card 1.4>}]}``.

A webhook URL is a credential: it is never logged, only the host it points to.
Sending never raises: an alert that cannot be delivered is logged as a warning
and must not hide the task failure it reports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

log = logging.getLogger(__name__)

SLACK_HEADER_MAX = 150  # Block Kit: header text
SLACK_TEXT_MAX = 3000  # Block Kit: section text
ERROR_LINE_MAX = 500
TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class FailureFacts:
    """What a person needs to act on a failed task (the email's facts)."""

    dag_id: str
    task_id: str
    run_id: str
    day: str  # YYYY-MM-DD the run stands for
    try_number: int
    max_tries: int  # retries + 1
    error_line: str
    log_url: str | None = None
    map_index: int | None = None

    @property
    def task_label(self) -> str:
        return self.task_id + (
            f"[{self.map_index}]" if self.map_index is not None and self.map_index >= 0 else ""
        )

    def title(self) -> str:
        """The email's subject: "[etl_pipeline] validate failed for 2018-08-02 (try 1)"."""
        return f"[{self.dag_id}] {self.task_label} failed for {self.day} (try {self.try_number})"

    def tries(self) -> str:
        return f"{self.try_number} of {self.max_tries}; no more retries"


def error_line(exception: object) -> str:
    """The first non-empty line of the error, shortened: a chat message is not a log."""
    text = str(exception or "").strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "") or "(no message)"
    name = type(exception).__name__ if isinstance(exception, BaseException) else ""
    line = f"{name}: {first}" if name and not first.startswith(name) else first
    return line if len(line) <= ERROR_LINE_MAX else line[: ERROR_LINE_MAX - 1] + "…"


def _slack_escape(text: str) -> str:
    """Slack's mrkdwn needs only &, < and > escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(facts: FailureFacts) -> dict:
    """Block Kit message for a Slack incoming webhook."""
    title = facts.title()
    error = _slack_escape(facts.error_line.replace("```", "'''"))
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:SLACK_HEADER_MAX]}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Task*\n{_slack_escape(facts.task_label)}"},
                {"type": "mrkdwn", "text": f"*Run*\n{_slack_escape(facts.run_id)}"},
                {"type": "mrkdwn", "text": f"*Try*\n{facts.tries()}"},
                {"type": "mrkdwn", "text": f"*DAG*\n{_slack_escape(facts.dag_id)}"},
            ],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Error*\n```{error}```"[:SLACK_TEXT_MAX]}},
    ]
    if facts.log_url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open the log"},
                        "url": facts.log_url,
                        "action_id": "open_log",
                    }
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "Rerunning the day is safe: it replaces that day's run, it never adds to it.",
                }
            ],
        }
    )
    fallback = f"{title}: {facts.error_line}" + (f" (log: {facts.log_url})" if facts.log_url else "")
    return {"text": fallback, "blocks": blocks}


def teams_payload(facts: FailureFacts) -> dict:
    """A Teams Workflows webhook message carrying one Adaptive Card (1.4)."""
    card: dict = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": facts.title(),
                "weight": "Bolder",
                "size": "Medium",
                "color": "Attention",
                "wrap": True,
            },
            {
                "type": "FactSet",
                "facts": [
                    {"title": "Task", "value": facts.task_label},
                    {"title": "Run", "value": facts.run_id},
                    {"title": "Try", "value": facts.tries()},
                    {"title": "DAG", "value": facts.dag_id},
                ],
            },
            {"type": "TextBlock", "text": "Error", "weight": "Bolder", "wrap": True},
            {"type": "TextBlock", "text": facts.error_line, "fontType": "Monospace", "wrap": True},
            {
                "type": "TextBlock",
                "text": "Rerunning the day is safe: it replaces that day's run, it never adds to it.",
                "isSubtle": True,
                "wrap": True,
            },
        ],
    }
    if facts.log_url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open the log", "url": facts.log_url}]
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


PAYLOADS = {"slack": slack_payload, "teams": teams_payload}


def _where(url: str) -> str:
    """What may be logged about a webhook: its service host, never its path (the secret)."""
    return urlsplit(url).hostname or "an invalid URL"


def post(service: str, url: str, payload: dict, session: requests.Session | None = None) -> str:
    """POST one message; one retry after a 429/5xx (honouring Retry-After up to 5 s). Never raises."""
    http = session or requests.Session()
    for attempt in (1, 2):
        try:
            response = http.post(url, json=payload, timeout=TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            outcome = f"not delivered ({type(exc).__name__})"
        else:
            if response.status_code < 300:
                log.info("%s alert delivered to %s", service, _where(url))
                return "delivered"
            outcome = f"refused with HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code == 429 or response.status_code >= 500:
                if attempt == 1:
                    time.sleep(min(float(response.headers.get("Retry-After") or 1), 5.0))
                    continue
        if attempt == 1 and outcome.startswith("not delivered"):
            time.sleep(1)
            continue
        break
    log.warning("%s alert to %s %s", service, _where(url), outcome)
    return outcome


def send_failure(facts: FailureFacts, webhooks: Mapping[str, str]) -> dict[str, str]:
    """Send the alert to every configured service ({"slack": url, "teams": url}); outcome per service."""
    outcomes = {}
    for service, url in webhooks.items():
        if url:
            outcomes[service] = post(service, url, PAYLOADS[service](facts))
    if not outcomes:
        log.info("no Slack or Teams webhook configured; failure alert sent by email only")
    return outcomes
