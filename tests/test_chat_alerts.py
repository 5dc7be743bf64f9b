"""Slack and Teams failure alerts: a real HTTP server on 127.0.0.1 checks each service's documented shape.

The server plays both services. For Slack it checks what an incoming webhook
accepts (https://api.slack.com/messaging/webhooks, Block Kit limits): a
non-empty ``text``, at most 50 blocks of known types, header text ≤ 150 plain
characters, section text ≤ 3000, ≤ 10 fields, buttons with a URL; it answers
``200 ok``. For Teams it checks the Workflows webhook message: ``type:
message`` with one Adaptive Card attachment (contentType, AdaptiveCard,
version, a body of known elements, Action.OpenUrl with a URL); it answers
``202``, as Workflows does. A bad shape gets 400 like the real services.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from etl.run import airflow as orch
from etl.run import chat
from tests.test_airflow_dag import airflow_db, load_dag, run_dag, task_states  # noqa: F401

SLACK_BLOCKS = {"header", "section", "actions", "context", "divider"}
CARD_ELEMENTS = {"TextBlock", "FactSet", "ColumnSet", "Container"}


def slack_problems(body: dict) -> list[str]:
    problems = []
    if not isinstance(body.get("text"), str) or not body["text"].strip():
        problems.append("text (the notification fallback) is missing")
    blocks = body.get("blocks", [])
    if len(blocks) > 50:
        problems.append("more than 50 blocks")
    for block in blocks:
        kind = block.get("type")
        if kind not in SLACK_BLOCKS:
            problems.append(f"unknown block type {kind}")
        if kind == "header":
            text = block["text"]
            if text.get("type") != "plain_text" or not 0 < len(text["text"]) <= 150:
                problems.append("header needs plain_text of 1-150 characters")
        if kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append("section needs text or fields")
            if "text" in block and len(block["text"]["text"]) > 3000:
                problems.append("section text over 3000")
            fields = block.get("fields", [])
            if len(fields) > 10 or any(f.get("type") not in ("mrkdwn", "plain_text") for f in fields):
                problems.append("bad fields")
        if kind == "actions":
            for element in block["elements"]:
                if element.get("type") == "button" and not str(element.get("url", "")).startswith("http"):
                    problems.append("button without url")
                if element.get("text", {}).get("type") != "plain_text":
                    problems.append("button text must be plain_text")
    return problems


def teams_problems(body: dict) -> list[str]:
    problems = []
    if body.get("type") != "message":
        problems.append("type must be 'message'")
    attachments = body.get("attachments") or []
    if len(attachments) != 1:
        return problems + ["exactly one attachment expected"]
    att = attachments[0]
    if att.get("contentType") != "application/vnd.microsoft.card.adaptive":
        problems.append("contentType must be the adaptive card type")
    card = att.get("content", {})
    if card.get("type") != "AdaptiveCard" or not str(card.get("version", "")).startswith("1."):
        problems.append("content must be an AdaptiveCard with a 1.x version")
    for element in card.get("body", []):
        if element.get("type") not in CARD_ELEMENTS:
            problems.append(f"unknown card element {element.get('type')}")
        if element.get("type") == "TextBlock" and not isinstance(element.get("text"), str):
            problems.append("TextBlock without text")
        if element.get("type") == "FactSet" and not all(
            {"title", "value"} <= set(f) for f in element["facts"]
        ):
            problems.append("fact without title/value")
    for action in card.get("actions", []):
        if action.get("type") != "Action.OpenUrl" or not str(action.get("url", "")).startswith("http"):
            problems.append("actions must be Action.OpenUrl with a url")
    return problems


class ChatServer:
    """One loopback server; /slack/<secret> and /teams/<secret> are the two webhooks."""

    def __init__(self):
        self.received: list[tuple[str, dict]] = []
        self.fail_next: list[int] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                service = self.path.split("/")[1]
                if server.fail_next:
                    self.send_response(server.fail_next.pop(0))
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                wrong_type = self.headers.get("Content-Type") != "application/json"
                problems = (["Content-Type must be application/json"] if wrong_type else []) + (
                    slack_problems(body) if service == "slack" else teams_problems(body)
                )
                server.received.append((service, body))
                if problems:
                    self.send_response(400)
                    self.end_headers()
                    self.wfile.write("; ".join(problems).encode())
                    return
                self.send_response(200 if service == "slack" else 202)
                self.end_headers()
                self.wfile.write(b"ok" if service == "slack" else b"")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chat_server():
    server = ChatServer()
    yield server
    server.close()


FACTS = chat.FailureFacts(
    dag_id="etl_pipeline",
    task_id="ingest",
    map_index=2,
    run_id="scheduled__2018-08-02T02:00:00+00:00",
    day="2018-08-02",
    try_number=3,
    max_tries=3,
    error_line="SourceError: shop <main> answered 401 & gave up",
    log_url="http://localhost:8080/dags/etl_pipeline/runs/x/tasks/ingest?map_index=2",
)


def test_both_payloads_pass_the_services_checks(chat_server):
    outcomes = chat.send_failure(
        FACTS,
        {"slack": f"{chat_server.url}/slack/T0/B0/secret", "teams": f"{chat_server.url}/teams/wf/secret"},
    )
    assert outcomes == {"slack": "delivered", "teams": "delivered"}
    (_, slack), (_, teams) = chat_server.received
    assert slack["blocks"][0]["text"]["text"] == "[etl_pipeline] ingest[2] failed for 2018-08-02 (try 3)"
    assert "shop &lt;main&gt; answered 401 &amp; gave up" in json.dumps(slack["blocks"])  # mrkdwn escaped
    assert slack["blocks"][3]["elements"][0]["url"] == FACTS.log_url
    card = teams["attachments"][0]["content"]
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert facts["Try"] == "3 of 3; no more retries" and facts["Task"] == "ingest[2]"
    assert card["body"][3]["text"] == FACTS.error_line  # Adaptive Cards take the text as is
    assert card["actions"][0]["url"] == FACTS.log_url


def test_a_shape_the_service_refuses_is_logged_not_raised(chat_server, caplog):
    outcome = chat.post("teams", f"{chat_server.url}/teams/wf/secret", {"text": "a Slack body sent to Teams"})
    assert outcome.startswith("refused with HTTP 400") and "type must be 'message'" in outcome
    assert "secret" not in caplog.text and "127.0.0.1" in caplog.text  # the URL's path is a credential


def test_one_retry_after_a_429_then_delivered(chat_server):
    chat_server.fail_next = [429]
    assert chat.post("slack", f"{chat_server.url}/slack/x", chat.slack_payload(FACTS)) == "delivered"
    chat_server.fail_next = [503, 503]
    assert chat.post("slack", f"{chat_server.url}/slack/x", chat.slack_payload(FACTS)).startswith(
        "refused with HTTP 503"
    )


def test_error_line_is_the_first_line_named_and_short():
    assert chat.error_line(ValueError("bad row 7\nTraceback ...")) == "ValueError: bad row 7"
    assert len(chat.error_line(RuntimeError("x" * 2000))) == chat.ERROR_LINE_MAX


def test_a_failed_task_posts_to_slack_and_teams(airflow_db, chat_server, monkeypatch, tmp_path):  # noqa: F811
    """A real DAG run whose first task fails (the warehouse is unreachable), retries 0."""
    monkeypatch.setenv("ETL_STAGING_DIR", str(tmp_path / "staging"))
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE", raising=False)
    monkeypatch.setenv("ETL_ALERT_EMAILS", "")  # this test is about chat; email is tested beside the DAG
    monkeypatch.setenv("ETL_SLACK_WEBHOOK_URL", f"{chat_server.url}/slack/from-env")
    # Teams from an Airflow Connection (as a secrets backend or the UI would hold it)
    monkeypatch.setenv(
        "AIRFLOW_CONN_TEAMS_ALERTS",
        json.dumps({"conn_type": "http", "extra": {"webhook_url": f"{chat_server.url}/teams/from-conn"}}),
    )
    dag_run = run_dag(load_dag(retries=0), "2018-08-03")
    assert dag_run.state == "failed"
    (first,) = [t for t, state in task_states(dag_run).items() if state == "failed"]
    services = sorted(service for service, _ in chat_server.received)
    assert services == ["slack", "teams"], chat_server.received  # one alert each: only one task failed
    slack = next(body for service, body in chat_server.received if service == "slack")
    assert slack["blocks"][0]["text"]["text"] == f"[etl_pipeline] {first} failed for 2018-08-03 (try 1)"
    assert "cannot connect to PostgreSQL at 127.0.0.1:1/nowhere" in slack["text"]
    assert "/dags/etl_pipeline/runs/" in slack["blocks"][3]["elements"][0]["url"]
    teams = next(body for service, body in chat_server.received if service == "teams")
    facts = {f["title"]: f["value"] for f in teams["attachments"][0]["content"]["body"][1]["facts"]}
    assert facts["Task"] == first and facts["Try"] == "1 of 1; no more retries"


def test_webhook_from_connection_fields():
    class Conn:
        def __init__(self, extra=None, password=None, host=None):
            self.extra = json.dumps(extra) if extra else None
            self.extra_dejson = extra or {}
            self.password, self.host = password, host

    assert orch.webhook_from_connection(Conn({"webhook_url": "https://hooks.slack.com/services/T/B/x"}))
    assert orch.webhook_from_connection(Conn(password="https://example.webhook.office.com/x")).startswith(
        "https"
    )
    assert orch.webhook_from_connection(Conn(host="hooks.slack.com")) == ""
