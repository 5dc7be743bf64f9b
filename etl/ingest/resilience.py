"""Rate limiting and circuit breaking for one source, on an injectable clock.

Both take a ``Clock`` so tests run a "minute" in milliseconds (or in no real
time at all) instead of sleeping: nothing here calls ``time.sleep`` directly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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

    A token bucket of ``burst`` tokens refilled at ``per_window / window`` per
    second, kept in its exact GCRA form (one "theoretical arrival time" instead
    of a fractional token count, so no rounding can let a request through
    early). With ``burst=1`` (the default) requests are evenly spaced and no
    half-open window of ``window`` seconds holds more than ``per_window``; a
    larger burst trades that strict bound (worst case ``burst + per_window - 1``)
    for less waiting after an idle spell.
    """

    def __init__(
        self, per_window: float, window: float = 60.0, burst: int = 1, clock: Clock | None = None
    ) -> None:
        if per_window <= 0 or window <= 0 or burst < 1:
            raise ValueError("rate limit needs per_window > 0, window > 0 and burst >= 1")
        self.interval = window / per_window
        self.burst = burst
        self.clock = clock or Clock()
        self._tat = self.clock.now()  # when the bucket would be full again
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self) -> None:
        """Block (on the clock) until a request may go, then count it."""
        with self._lock:
            while True:
                now = self.clock.now()
                allowed_at = self._tat - (self.burst - 1) * self.interval
                if now >= allowed_at:
                    break
                self.waited += allowed_at - now
                self.clock.sleep(allowed_at - now)
            self._tat = max(self._tat, now) + self.interval


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
                    f"(last: {self.last_error}); not calling it again for {self.cooldown:g} s"
                )

    def record_success(self) -> None:
        self.state, self.failures = "closed", 0

    def record_failure(self, error: str) -> None:
        self.failures += 1
        self.last_error = error
        if self.state == "half-open" or self.failures >= self.failure_threshold:
            self.state = "open"
            self.opened_at = self.clock.now()
