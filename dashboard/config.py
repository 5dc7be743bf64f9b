"""The dashboards' settings: the warehouse from ``etl.settings`` plus a few of their own.

Built when the app is created (never at import), from the environment:

``DASHBOARD_CACHE_SECONDS`` (default 30)  how long an API answer is reused; the
    views only change when they are refreshed after a load. 0 turns caching off.
``DASHBOARD_POOL_SIZE`` (default 4)       read-only connections per process.
``DASHBOARD_STATEMENT_TIMEOUT_MS`` (5000) a query running longer is cancelled.
``DASHBOARD_FALLBACK_DIR`` (unset)        an ``etl export`` folder answered from while
    the warehouse is unreachable (docs/dashboards.md); unset = 503 instead.
``DASHBOARD_FALLBACK_RETRY_SECONDS`` (10) while on the fallback, how long to wait
    before trying the warehouse again (a dead host costs a connect timeout).
``DASHBOARD_ALLOW_SUPERUSER`` (0)         1 lets the dashboards connect as a superuser;
    otherwise they refuse to start (connect as the ``etl_dashboard`` login instead).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from etl.settings import Settings, parse_bool


@dataclass(frozen=True)
class DashboardConfig:
    settings: Settings
    cache_seconds: float = 30.0
    pool_size: int = 4
    statement_timeout_ms: int = 5000
    fallback_dir: Path | None = None
    fallback_retry_seconds: float = 10.0
    allow_superuser: bool = False

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, settings: Settings | None = None
    ) -> DashboardConfig:
        env = dict(os.environ if env is None else env)
        return cls(
            settings=settings or Settings.from_env(env),
            cache_seconds=float(env.get("DASHBOARD_CACHE_SECONDS", "30")),
            pool_size=int(env.get("DASHBOARD_POOL_SIZE", "4")),
            statement_timeout_ms=int(env.get("DASHBOARD_STATEMENT_TIMEOUT_MS", "5000")),
            fallback_dir=Path(env["DASHBOARD_FALLBACK_DIR"]) if env.get("DASHBOARD_FALLBACK_DIR") else None,
            fallback_retry_seconds=float(env.get("DASHBOARD_FALLBACK_RETRY_SECONDS", "10")),
            allow_superuser=parse_bool(env.get("DASHBOARD_ALLOW_SUPERUSER", "0")),
        )
