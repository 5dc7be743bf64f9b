"""Rate limiting and circuit breaking for one source, on an injectable clock.

Both take a ``Clock`` so tests run a "minute" in milliseconds (or in no real
time at all) instead of sleeping: nothing here calls ``time.sleep`` directly.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from etl.errors import SourceError


@dataclass
class Clock:
    """Monotonic time and sleep; tests pass a fake or scaled one."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


class FakeClock(Clock):
    """A clock whose sleep advances time instantly (deterministic tests)."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start
        self.slept: list[float] = []
        super().__init__(now=lambda: self.t, sleep=self._sleep)

    def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += max(0.0, seconds)


class TokenBucket:
    """At most ``per_window`` requests per ``window`` seconds, per source.

    Tokens refill continuously at ``per_window / window`` per second up to
    ``burst``. With ``burst=1`` (the default) requests are evenly spaced and no
    half-open window of ``window`` seconds ever holds more than ``per_window``
    requests; a larger burst trades that strict bound (worst case
    ``burst + per_window - 1``) for less waiting after an idle spell.
    """

    def __init__(self, per_window: float, window: float = 60.0, burst: int = 1,
                 clock: Clock | None = None) -> None:
        if per_window <= 0 or window <= 0 or burst < 1:
            raise ValueError("rate limit needs per_window > 0, window > 0 and burst >= 1")
        self.rate = per_window / window
        self.capacity = float(burst)
        self.clock = clock or Clock()
        self._tokens = float(burst)
        self._stamp = self.clock.now()
        self._lock = threading.Lock()
        self.waited = 0.0

    def _refill(self) -> None:
        now = self.clock.now()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def acquire(self) -> None:
        """Block (on the clock) until a token is available, then take it."""
        with self._lock:
            self._refill()
            while self._tokens < 1.0:
                wait = (1.0 - self._tokens) / self.rate
                self.waited += wait
                self.clock.sleep(wait)
                self._refill()
            self._tokens -= 1.0


class CircuitOpenError(SourceError):
    """The source failed too often in a row; calls fail fast until the cool-down ends."""


@dataclass
class CircuitBreaker:
    """closed -> (N consecutive failures) -> open -> (cool-down) -> half-open -> closed | open.

    While open every call fails at once, so a dead source costs a bounded time
    (N attempts plus their backoff) instead of hanging the run. In half-open
    one trial call is let through: success closes the circuit, failure reopens it.
    """

    source: str
    failure_threshold: int = 5
    cooldown: float = 60.0
    clock: Clock = field(default_factory=Clock)
    state: str = "closed"
    failures: int = 0
    opened_at: float = 0.0
    last_error: str = ""

    def before_call(self) -> None:
        if self.state == "open":
            if self.clock.now() - self.opened_at >= self.cooldown:
                self.state = "half-open"
            else:
                raise CircuitOpenError(
                    f"source {self.source}: circuit open after {self.failures} consecutive failures "
                    f"(last: {self.last_error}); not calling it again for {self.cooldown:g} s")

    def record_success(self) -> None:
        self.state, self.failures = "closed", 0

    def record_failure(self, error: str) -> None:
        self.failures += 1
        self.last_error = error
        if self.state == "half-open" or self.failures >= self.failure_threshold:
            self.state = "open"
            self.opened_at = self.clock.now()
