"""The dashboards' settings: the warehouse from ``etl.settings`` plus a few of their own.

Built when the app is created (never at import), from the environment:

``DASHBOARD_CACHE_SECONDS`` (default 30)  how long an API answer is reused; the
    views only change when they are refreshed after a load. 0 turns caching off.
``DASHBOARD_POOL_SIZE`` (default 4)       read-only connections per process.
``DASHBOARD_STATEMENT_TIMEOUT_MS`` (5000) a query running longer is cancelled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from etl.settings import Settings


@dataclass(frozen=True)
class DashboardConfig:
    settings: Settings
    cache_seconds: float = 30.0
    pool_size: int = 4
    statement_timeout_ms: int = 5000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None,
                 settings: Settings | None = None) -> "DashboardConfig":
        env = dict(os.environ if env is None else env)
        return cls(settings=settings or Settings.from_env(env),
                   cache_seconds=float(env.get("DASHBOARD_CACHE_SECONDS", "30")),
                   pool_size=int(env.get("DASHBOARD_POOL_SIZE", "4")),
                   statement_timeout_ms=int(env.get("DASHBOARD_STATEMENT_TIMEOUT_MS", "5000")))
