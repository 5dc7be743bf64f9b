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
``DASHBOARD_JOBS`` (unset)                 ``1`` enables the upload part (``/jobs``,
    ``/api/jobs``, docs/jobs.md): it writes, so it is off unless asked for, and then
    needs ``DASHBOARD_JOBS_TOKEN`` (the shared secret uploaders present) and should
    have ``DASHBOARD_JOBS_DATABASE_URL``: a login with the ``etl_uploader`` role,
    not the read-only dashboard login (default: DATABASE_URL).
``DASHBOARD_JOBS_AIRFLOW_URL`` (unset)     an Airflow API (e.g. http://airflow:8080): jobs are
    triggered as etl_pipeline DAG runs there instead of waiting for ``etl jobs worker``;
    ``DASHBOARD_JOBS_AIRFLOW_USER`` / ``_PASSWORD`` sign in to it.
``DASHBOARD_ALLOW_SUPERUSER`` (0)         1 lets the dashboards connect as a superuser;
    otherwise they refuse to start (connect as the ``etl_dashboard`` login instead).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    jobs_enabled: bool = False
    jobs_token: str = field(default="", repr=False)
    jobs_database_url: str = field(default="", repr=False)
    jobs_airflow_url: str = ""
    jobs_airflow_user: str = ""
    jobs_airflow_password: str = field(default="", repr=False)
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
            jobs_enabled=env.get("DASHBOARD_JOBS", "0").lower() in ("1", "true", "yes"),
            jobs_token=env.get("DASHBOARD_JOBS_TOKEN", ""),
            jobs_database_url=env.get("DASHBOARD_JOBS_DATABASE_URL", ""),
            jobs_airflow_url=env.get("DASHBOARD_JOBS_AIRFLOW_URL", ""),
            jobs_airflow_user=env.get("DASHBOARD_JOBS_AIRFLOW_USER", ""),
            jobs_airflow_password=env.get("DASHBOARD_JOBS_AIRFLOW_PASSWORD", ""),
            allow_superuser=parse_bool(env.get("DASHBOARD_ALLOW_SUPERUSER", "0")),
        )
