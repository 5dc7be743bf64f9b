"""The one HTTP client every API connector uses (requests + tenacity).

Each call: waits for the source's token bucket, asks its circuit breaker,
sends with a (connect, read) timeout, and parses the JSON body. Transient
failures -- connection reset, timeout, HTTP 429/500/502/503/504, a body that
is not JSON -- are retried up to ``max_attempts`` times with exponential backoff
and full jitter; a ``Retry-After`` header on 429/503 is honoured instead of the
backoff. Anything else (401, 404...) is a one-line ``SourceError`` at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from etl.errors import SourceError
from etl.ingest.resilience import CircuitBreaker, Clock, TokenBucket

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts, retries, rate limit and circuit breaker of one source (sources.yml ``http:``)."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_attempts: int = 5
    backoff_base: float = 0.5  # seconds; attempt n waits up to base * 2**n (full jitter)
    backoff_max: float = 30.0
    retry_after_max: float = 120.0  # never wait longer than this for a Retry-After
    rate_per_minute: float = 100.0
    rate_window: float = 60.0  # seconds the rate is counted over (tests scale it down)
    burst: int = 1
    circuit_failures: int = 5
    circuit_cooldown: float = 60.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> HttpPolicy:
        values = dict(values or {})
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise SourceError(
                f"unknown http setting(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(cls.__dataclass_fields__)}"
            )
        return cls(**values)


class TransientError(Exception):
    """A failure worth retrying; ``retry_after`` is the server's wish, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Page:
    """One response as received: the exact bytes (for the archive) and the parsed body."""

    url: str
    params: dict
    status: int
    headers: Mapping[str, str]
    body: bytes
    data: Any


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass
class HttpClient:
    source: str
    policy: HttpPolicy = field(default_factory=HttpPolicy)
    clock: Clock = field(default_factory=Clock)
    headers: dict = field(default_factory=dict)
    auth: Any = None
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.limiter = TokenBucket(
            self.policy.rate_per_minute, self.policy.rate_window, self.policy.burst, self.clock
        )
        self.breaker = CircuitBreaker(
            self.source, self.policy.circuit_failures, self.policy.circuit_cooldown, self.clock
        )
        self.session.headers.update(self.headers)
        self.attempts = 0  # every request sent, for the run summary
        self.request_times: list[float] = []

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return min(exc.retry_after, self.policy.retry_after_max)
        return wait_random_exponential(multiplier=self.policy.backoff_base, max=self.policy.backoff_max)(
            state
        )

    def get_json(self, url: str, params: Mapping[str, Any] | None = None) -> Page:
        """GET and parse, retrying transient failures; the circuit breaker has the last word."""
        params = dict(params or {})
        retrying = Retrying(
            stop=stop_after_attempt(self.policy.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(TransientError),
            sleep=self.clock.sleep,
            reraise=True,
        )
        try:
            return retrying(self._attempt, url, params)
        except TransientError as exc:
            raise SourceError(
                f"source {self.source}: GET {url} failed after {self.policy.max_attempts} attempts ({exc})"
            ) from exc

    def _attempt(self, url: str, params: dict) -> Page:
        self.breaker.before_call()
        self.limiter.acquire()
        self.attempts += 1
        self.request_times.append(self.clock.now())
        try:
            response = self.session.get(
                url,
                params=params,
                auth=self.auth,
                timeout=(self.policy.connect_timeout, self.policy.read_timeout),
            )
            body = response.content
        except requests.Timeout as exc:
            return self._fail(f"timeout after {self.policy.read_timeout:g} s ({type(exc).__name__})")
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            return self._fail(f"connection error ({type(exc).__name__})")
        if response.status_code in RETRY_STATUSES:
            retry_after = (
                parse_retry_after(response.headers.get("Retry-After"))
                if response.status_code in (429, 503)
                else None
            )
            return self._fail(f"HTTP {response.status_code}", retry_after)
        if response.status_code >= 400:
            # Not transient: retrying a 401 or 404 only hides the real problem.
            self.breaker.record_failure(f"HTTP {response.status_code}")
            hint = (
                " (check the credentials in the source's environment variables)"
                if response.status_code in (401, 403)
                else ""
            )
            raise SourceError(
                f"source {self.source}: GET {response.url} answered HTTP {response.status_code}{hint}"
            )
        try:
            data = json.loads(body)
        except ValueError as exc:
            return self._fail(f"invalid JSON in a {len(body)}-byte body ({exc})")
        self.breaker.record_success()
        return Page(
            url=response.url,
            params=params,
            status=response.status_code,
            headers=dict(response.headers),
            body=body,
            data=data,
        )

    def _fail(self, message: str, retry_after: float | None = None) -> Page:
        self.breaker.record_failure(message)
        log.info("%s: %s; will retry if attempts remain", self.source, message)
        raise TransientError(message, retry_after)
