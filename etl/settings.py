"""One typed settings object, built from the environment when asked for.

Nothing reads the environment at import time: callers build ``Settings`` once
(``Settings.from_env()``) and pass it down, so tests and the DAG can construct
their own without monkeypatching globals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA_DIR = PROJECT_ROOT / "data" / "sample" / "olist"
SQL_DIR = PROJECT_ROOT / "sql"


def default_database_url(env: Mapping[str, str]) -> str:
    """The warehouse on the local server, honouring libpq's PGHOST/PGPORT/PGUSER."""
    host = env.get("PGHOST", "127.0.0.1")
    port = env.get("PGPORT", "5432")
    user = env.get("PGUSER", "postgres")
    return f"postgresql://{user}@{host}:{port}/warehouse"


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know about its environment."""

    database_url: str
    #: True when DATABASE_URL was given explicitly; only then do we never fall
    #: back to a private cluster (a wrong explicit URL is an error, not a hint).
    database_url_explicit: bool = False
    data_dir: Path = SAMPLE_DATA_DIR
    staging_dir: Path = PROJECT_ROOT / "data" / "staging"
    #: Olist timestamps are São Paulo wall-clock times; they are stored as UTC.
    source_timezone: str = "America/Sao_Paulo"
    #: Where a private PostgreSQL cluster lives when no server is reachable.
    local_dir: Path = PROJECT_ROOT / ".local"
    #: Seconds to wait for the warehouse before declaring it unreachable.
    connect_timeout: int = 5
    #: The sources file of etl ingest (docs/sources.md); missing file = no configured sources.
    sources_file: Path = PROJECT_ROOT / "config" / "sources.yml"
    #: How the loader sends rows: 'auto' (binary COPY, INSERT if COPY is refused) or 'insert'.
    load_method: str = "auto"
    #: Create the timescaledb extension when the server has it (ETL_TIMESCALEDB=0: plain PostgreSQL).
    timescaledb: bool = True
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        explicit = bool(env.get("DATABASE_URL"))
        return cls(
            database_url=env["DATABASE_URL"] if explicit else default_database_url(env),
            database_url_explicit=explicit,
            data_dir=Path(env.get("ETL_DATA_DIR", SAMPLE_DATA_DIR)),
            staging_dir=Path(env.get("ETL_STAGING_DIR", PROJECT_ROOT / "data" / "staging")),
            source_timezone=env.get("ETL_SOURCE_TIMEZONE", "America/Sao_Paulo"),
            local_dir=Path(env.get("ETL_LOCAL_DIR", PROJECT_ROOT / ".local")),
            connect_timeout=int(env.get("ETL_CONNECT_TIMEOUT", "5")),
            sources_file=Path(env.get("ETL_SOURCES_FILE", PROJECT_ROOT / "config" / "sources.yml")),
            load_method=env.get("ETL_LOAD_METHOD", "auto"),
            timescaledb=env.get("ETL_TIMESCALEDB", "1") not in ("0", "false", "no"),
        )

    def with_overrides(self, **changes: object) -> "Settings":
        """A copy with some fields changed (CLI flags, tests)."""
        return replace(self, **changes)
