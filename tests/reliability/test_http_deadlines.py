"""Deadlines and the breaker against real hostile servers on 127.0.0.1 (real time, real sockets).

The read timeout stays long (30 s) in these tests on purpose: each drip arrives
every 2 s, well within it, so only the total deadlines can stop the request.
The time bounds asserted are the configured deadlines plus a second of slack
for a loaded machine; they check a behaviour (the request is cut off), not speed.
"""

from __future__ import annotations

import pytest
import yaml

from etl.errors import ConfigError, SourceError
from etl.ingest import runner
from etl.ingest.http import HttpClient, HttpPolicy
from tests.reliability.servers import DripServer, SilentServer, elapsed
from tests.test_cli import etl

SLACK = 1.5


def _client(**policy) -> HttpClient:
    values = {"read_timeout": 30, "connect_timeout": 5, "backoff_base": 0.05, "rate_per_minute": 6000}
    return HttpClient("shop", HttpPolicy(**{**values, **policy}))


@pytest.mark.parametrize("headers_first", [True, False], ids=["body-drip", "status-line-drip"])
def test_a_drip_feed_is_cut_off_at_the_request_deadline(headers_first):
    with DripServer(interval=2.0, headers_first=headers_first) as server:
        client = _client(request_deadline=2.5, max_attempts=1, circuit_failures=1)
        error, seconds = elapsed(client.get_json, server.url + "/orders.json")
    assert isinstance(error, SourceError), error
    assert "no complete answer within 2.5 s (request_deadline)" in str(error)
    assert seconds < 2.5 + SLACK
    assert server.accepted == 1 and server.bytes_sent >= 1  # it did drip, and was cut off


def test_retries_of_a_drip_feed_stop_at_the_source_deadline():
    with DripServer(interval=2.0, headers_first=True) as server:
        client = _client(request_deadline=2.5, source_deadline=4.0, max_attempts=5, circuit_failures=5)
        error, seconds = elapsed(client.get_json, server.url + "/orders.json")
    assert isinstance(error, SourceError)
    assert seconds < 4.0 + SLACK
    # the first attempt ran its 2.5 s; the second got only what was left of the source's 4 s
    assert server.accepted == 2
    assert "source_deadline" in str(error) or "deadline of 4 s" in str(error)


def test_a_server_that_never_answers_opens_the_breaker_before_the_retries_run_out():
    with SilentServer() as server:
        client = _client(read_timeout=0.5, request_deadline=10, max_attempts=5, circuit_failures=3)
        error, seconds = elapsed(client.get_json, server.url + "/orders.json")
    assert isinstance(error, SourceError)
    message = str(error)
    assert message.startswith("source shop: circuit open after 3 consecutive failures (last: timeout")
    assert server.accepted == 3  # not 5: the breaker stopped the retries
    assert seconds < 3 * 0.5 + SLACK
    assert "\n" not in message


def test_a_server_that_never_answers_fails_within_the_source_deadline():
    with SilentServer() as server:
        client = _client(request_deadline=60, source_deadline=3.0, max_attempts=5, circuit_failures=5)
        error, seconds = elapsed(client.get_json, server.url + "/orders.json")
    assert isinstance(error, SourceError)
    assert (
        "gave up: the source's deadline of 3 s has passed (last error: no complete answer within 3 s"
        in str(error)
    )
    assert seconds < 3.0 + SLACK


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"circuit_failures": 6, "max_attempts": 5}, "the breaker would never open"),
        ({"request_deadline": 0}, "request_deadline must be a number of seconds above 0"),
        ({"source_deadline": "soon"}, "http settings must be numbers"),
    ],
)
def test_http_settings_that_cannot_work_are_refused_in_one_line(values, needle):
    with pytest.raises(ConfigError, match=needle):
        HttpPolicy.from_mapping(values)


def _sources(path, url: str, http: dict) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {
                        "name": "shop",
                        "kind": "shopify",
                        "base_url": url,
                        "shop": "shop",
                        "auth": {"token": "not-a-secret"},
                        "http": http,
                    }
                ]
            }
        )
    )


def test_a_drip_feeding_source_fails_that_source_within_its_deadline(ready_db, tmp_path):
    http = {"read_timeout": 30, "request_deadline": 2.5, "source_deadline": 4, "backoff_base": 0.05}
    with DripServer(interval=2.0, headers_first=True) as server:
        _sources(tmp_path / "sources.yml", server.url, http)
        settings = ready_db.with_overrides(sources_file=tmp_path / "sources.yml")
        summary = runner.ingest_source(settings, "run-drip", "shop")
    assert summary["status"] == "failed"
    assert summary["seconds"] < 4 + SLACK
    assert "shop" in summary["error"] and "deadline" in summary["error"]


def test_etl_ingest_prints_a_failed_source_once(fresh_db, tmp_path):
    http = {"read_timeout": 0.5, "max_attempts": 3, "circuit_failures": 2, "backoff_base": 0.05}
    with SilentServer() as server:
        _sources(tmp_path / "sources.yml", server.url, http)
        proc = etl(
            "ingest",
            "--no-load",
            env={"DATABASE_URL": fresh_db.database_url, "ETL_SOURCES_FILE": str(tmp_path / "sources.yml")},
        )
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    everything = (proc.stdout + proc.stderr).splitlines()
    mentions = [line for line in everything if "circuit open" in line]
    assert len(mentions) == 1, everything
    assert "WARNING" in mentions[0]
    assert (
        "source shop failed and was not loaded: source shop: circuit open after 2 consecutive" in mentions[0]
    )
    assert server.accepted == 2
