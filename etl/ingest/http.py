"""The one HTTP client every API connector uses (requests + tenacity).

Each call: waits for the source's token bucket, asks its circuit breaker,
sends with a (connect, read) timeout under a total deadline, and parses the
JSON body. Transient failures -- connection reset, timeout, HTTP
429/500/502/503/504, a body that is not JSON -- are retried up to
``max_attempts`` times with exponential backoff and full jitter; a
``Retry-After`` header on 429/503 is honoured instead of the backoff. Anything
else (401, 404...) is a one-line ``SourceError`` at once.

Time is bounded three ways, so a dead or drip-feeding server costs a known
amount: ``request_deadline`` caps one request from connect to last body byte
(the read timeout alone only bounds the gap between two reads);
``source_deadline`` caps everything one source does in a run (requests, backoff
and Retry-After waits); and the circuit breaker opens after
``circuit_failures`` consecutive failures, which must not exceed
``max_attempts``, so a dead source stops at the breaker instead of at the last
retry. Each failure ends in one ``SourceError`` line; retries are logged at INFO.
"""

from __future__ import annotations

import json
import logging
import time
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

from etl.errors import ConfigError, SourceError
from etl.ingest.deadline import DeadlineAdapter, deadline
from etl.ingest.resilience import CircuitBreaker, CircuitOpenError, Clock, TokenBucket

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts, retries, rate limit and circuit breaker of one source (sources.yml ``http:``)."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    request_deadline: float = 60.0  # seconds for one request, connect to last byte
    source_deadline: float = 600.0  # seconds for all of one source's requests and waits in a run
    max_attempts: int = 5
    backoff_base: float = 0.5  # seconds; attempt n waits up to base * 2**n (full jitter)
    backoff_max: float = 30.0
    retry_after_max: float = 120.0  # never wait longer than this for a Retry-After
    rate_per_minute: float = 100.0
    rate_window: float = 60.0  # seconds the rate is counted over (tests scale it down)
    burst: int = 1
    circuit_failures: int = 3  # below max_attempts: a dead source stops at the breaker
    circuit_cooldown: float = 60.0

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "request_deadline", "source_deadline"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"http setting {name} must be a number of seconds above 0")
        if self.max_attempts < 1 or self.circuit_failures < 1:
            raise ConfigError("http settings max_attempts and circuit_failures must be at least 1")
        if self.circuit_failures > self.max_attempts:
            raise ConfigError(
                f"http setting circuit_failures ({self.circuit_failures}) is above max_attempts "
                f"({self.max_attempts}): the breaker would never open before the retries run out; "
                "lower it"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> HttpPolicy:
        values = dict(values or {})
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise SourceError(
                f"unknown http setting(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(cls.__dataclass_fields__)}"
            )
        try:
            return cls(**values)
        except TypeError as exc:  # a comparison of a string with a number
            raise ConfigError(f"http settings must be numbers ({exc})") from exc


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
    #: Real time for the deadlines (the clock may be scaled in tests; sockets are not).
    monotonic: Any = time.monotonic

    def __post_init__(self) -> None:
        self.limiter = TokenBucket(
            self.policy.rate_per_minute, self.policy.rate_window, self.policy.burst, self.clock
        )
        self.breaker = CircuitBreaker(
            self.source, self.policy.circuit_failures, self.policy.circuit_cooldown, self.clock
        )
        self.session.headers.update(self.headers)
        adapter = DeadlineAdapter()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.source_expires_at = self.monotonic() + self.policy.source_deadline
        self.last_error = ""
        self.attempts = 0  # every request sent, for the run summary
        self.request_times: list[float] = []

    def remaining(self) -> float:
        """Seconds left of the source's deadline (real time)."""
        return self.source_expires_at - self.monotonic()

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            wait = min(exc.retry_after, self.policy.retry_after_max)
        else:
            wait = wait_random_exponential(multiplier=self.policy.backoff_base, max=self.policy.backoff_max)(
                state
            )
        # Never sleep past the source's deadline: the next attempt then gives up at once.
        return max(0.0, min(wait, self.remaining()))

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
        remaining = self.remaining()
        if remaining <= 0:
            raise SourceError(
                f"source {self.source}: GET {url} gave up: the source's deadline of "
                f"{self.policy.source_deadline:g} s has passed"
                + (f" (last error: {self.last_error})" if self.last_error else "")
                + "; raise http.source_deadline if the source is just slow"
            )
        self.limiter.acquire()
        self.attempts += 1
        self.request_times.append(self.clock.now())
        limit = min(self.policy.request_deadline, remaining)
        connect, read = min(self.policy.connect_timeout, limit), min(self.policy.read_timeout, limit)
        with deadline(limit) as watchdog:
            try:
                response = self.session.get(url, params=params, auth=self.auth, timeout=(connect, read))
                body = response.content
            except (
                requests.Timeout,
                requests.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                # A socket timeout cut to the deadline is the deadline too (whichever fired first).
                cut = isinstance(exc, requests.Timeout) and read < self.policy.read_timeout
                if watchdog.expired or cut:
                    which = "request_deadline" if limit == self.policy.request_deadline else "source_deadline"
                    return self._fail(url, f"no complete answer within {round(limit, 1):g} s ({which})")
                if isinstance(exc, requests.Timeout):
                    return self._fail(
                        url, f"timeout after {self.policy.read_timeout:g} s ({type(exc).__name__})"
                    )
                return self._fail(url, f"connection error ({type(exc).__name__})")
        if response.status_code in RETRY_STATUSES:
            retry_after = (
                parse_retry_after(response.headers.get("Retry-After"))
                if response.status_code in (429, 503)
                else None
            )
            return self._fail(url, f"HTTP {response.status_code}", retry_after)
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
            return self._fail(url, f"invalid JSON in a {len(body)}-byte body ({exc})")
        self.breaker.record_success()
        return Page(
            url=response.url,
            params=params,
            status=response.status_code,
            headers=dict(response.headers),
            body=body,
            data=data,
        )

    def _fail(self, url: str, message: str, retry_after: float | None = None) -> Page:
        """Count a transient failure: retry it, unless the breaker has just opened."""
        self.breaker.record_failure(message)
        self.last_error = message
        if self.breaker.state == "open":
            raise CircuitOpenError(
                f"source {self.source}: circuit open after {self.breaker.failures} consecutive failures "
                f"(last: {message} from GET {url}); not calling it again for "
                f"{self.policy.circuit_cooldown:g} s"
            )
        log.info("%s: %s; will retry if attempts remain", self.source, message)
        raise TransientError(message, retry_after)
