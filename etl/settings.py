"""One typed settings object, built from the environment when asked for.

Nothing reads the environment at import time: callers build ``Settings`` once
(``Settings.from_env()``) and pass it down, so tests and the DAG can construct
their own without monkeypatching globals.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from etl.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA_DIR = PROJECT_ROOT / "data" / "sample" / "olist"
SQL_DIR = PROJECT_ROOT / "sql"

#: Quality targets (etl.quality): dimension scores are minimums (0-100);
#: null_pct and duplicate_pct are maximum shares in percent. ETL_DQ_TARGET_<NAME>.
DEFAULT_QUALITY_TARGETS: dict[str, float] = {
    "completeness": 90,
    "validity": 85,
    "consistency": 95,
    "timeliness": 80,
    "uniqueness": 95,
    "accuracy": 90,
    "conformity": 85,
    "integrity": 100,
    "overall": 80,
    "null_pct": 20,
    "duplicate_pct": 5,
}


#: The targets that stop a run unless ETL_DQ_GATE says otherwise.
DEFAULT_GATE = frozenset({"overall", "null_pct", "duplicate_pct"})


def _gate(text: str | None) -> frozenset[str]:
    if not text:
        return DEFAULT_GATE
    if text.strip().lower() == "all":
        return frozenset(DEFAULT_QUALITY_TARGETS)
    names = _csv_set(text.lower())
    unknown = names - set(DEFAULT_QUALITY_TARGETS)
    if unknown:
        raise ConfigError(
            f"ETL_DQ_GATE names unknown target(s) {', '.join(sorted(unknown))}; "
            f"use 'all' or some of {', '.join(DEFAULT_QUALITY_TARGETS)}"
        )
    return names


def _csv_set(text: str | None) -> frozenset[str]:
    return frozenset(p.strip() for p in (text or "").split(",") if p.strip())


def _quality_targets(env: Mapping[str, str]) -> dict[str, float]:
    return {
        name: float(env.get(f"ETL_DQ_TARGET_{name.upper()}", default))
        for name, default in DEFAULT_QUALITY_TARGETS.items()
    }


def default_database_url(env: Mapping[str, str]) -> str:
    """The warehouse on the local server, honouring libpq's PGHOST/PGPORT/PGUSER."""
    host = env.get("PGHOST", "127.0.0.1")
    port = env.get("PGPORT", "5432")
    user = env.get("PGUSER", "postgres")
    return f"postgresql://{user}@{host}:{port}/warehouse"


def parse_bool(text: str) -> bool:
    """'true'/'false' (also 1/0, yes/no, on/off) from an env var or Airflow Variable."""
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"expected true or false, got {text!r}")


def parse_list(text: str) -> tuple[str, ...]:
    """Comma- or semicolon-separated addresses, blanks dropped."""
    return tuple(p.strip() for p in str(text).replace(";", ",").split(",") if p.strip())


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
    # --- validation and notifications (etl/run/validate.py, etl/run/notify.py, the DAG) ---
    # Validation judges the run by the same ``quality_targets`` as the quality gate
    # (overall, null_pct, duplicate_pct): one set of thresholds, ETL_DQ_TARGET_*.
    #: A run without quality_scores rows fails validation unless this is False.
    validate_require_quality_scores: bool = True
    #: Who gets the success summary (none: it is logged) and the failure/deadline alerts.
    notify_emails: tuple[str, ...] = ()
    alert_emails: tuple[str, ...] = ("etl-alerts@localhost",)
    #: Incoming-webhook URLs for failure alerts (secrets; the Airflow Connections
    #: ``slack_alerts`` / ``teams_alerts`` take precedence in the DAG). Empty: email only.
    slack_webhook_url: str = field(default="", repr=False)
    teams_webhook_url: str = field(default="", repr=False)
    #: Tries after the first and the wait between them, for every task of the DAG.
    #: Tests and operators lower them (retries really wait: 2 x 5 min per failing task).
    airflow_retries: int = 2
    airflow_retry_delay_seconds: float = 300.0
    #: A run still unfinished this long after it was queued emails the alert list.
    airflow_deadline_seconds: float = 7200.0
    # --- transform and quality (etl.transform, etl.quality; docs/data_quality.md) ---
    #: Canonical lists (categories, states, statuses, payment types) people edit.
    lookup_dir: Path = PROJECT_ROOT / "data" / "lookups"
    quality_targets: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_QUALITY_TARGETS))
    #: Rule names (fnmatch patterns) made hard (quarantine) or soft (load and flag),
    #: overriding each rule's default; soft wins when both match.
    dq_hard_rules: frozenset[str] = frozenset()
    dq_soft_rules: frozenset[str] = frozenset()
    #: The run's data interval (Airflow's data_interval_start/end); records whose
    #: event time is after the end, or older than start - freshness, are not timely.
    data_interval_start: str | None = None
    data_interval_end: str | None = None
    freshness_days: float = 30.0
    #: |payments - (items + freight)| above this many cents is inconsistent.
    payment_tolerance_cents: int = 1
    #: A field longer than this (characters) quarantines its row (etl/transform/text_safety.py).
    max_field_chars: int = 100_000
    #: Rows per chunk when transforming: memory stays flat whatever the file size.
    chunk_rows: int = 250_000
    #: Also write the clean batches as CSV beside the Parquet files.
    clean_csv: bool = False
    #: `etl run` stops before loading when a score misses its target.
    dq_enforce: bool = True
    #: Which targets stop a run (ETL_DQ_GATE, comma-separated; "all" = every target): by
    #: default seed 001's -- overall score >= 80, nulls <= 20 %, duplicates <= 5 % for the run
    #: as a whole. Below that, good rows load and bad rows are quarantined.
    dq_gate: frozenset[str] = DEFAULT_GATE
    #: A run that finds another one running on the warehouse waits for it (else exits, code 4).
    run_lock_wait: bool = True
    #: work_mem of the analytics refresh's transaction (PostgreSQL units; empty: the
    #: server's). Its sorts and hashes span every order and customer (etl.publish.analytics).
    refresh_work_mem: str = "256MB"
    # --- jobs (etl/jobs, docs/jobs.md) ---
    #: Where accepted uploads are kept, one folder per job, with their checksums.
    jobs_drop_dir: Path = PROJECT_ROOT / "data" / "staging" / "drop"
    #: The largest upload accepted, compressed or not (zip members count expanded).
    jobs_max_bytes: int = 300_000_000
    # --- logins `etl db init` creates (etl/warehouse/access.py, docs/warehouse.md "Roles") ---
    #: (login, password) per part; no password = that login is not created or changed.
    #: Never a default password: they come from the environment (.env, render.yaml).
    pipeline_login: str = "etl_pipeline"
    pipeline_password: str | None = field(default=None, repr=False)
    dashboard_login: str = "etl_dashboard"
    dashboard_password: str | None = field(default=None, repr=False)
    bi_login: str = "etl_bi"
    bi_password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
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
            validate_require_quality_scores=parse_bool(
                env.get("ETL_VALIDATE_REQUIRE_QUALITY_SCORES", "true")
            ),
            notify_emails=parse_list(env.get("ETL_NOTIFY_EMAILS", "")),
            alert_emails=parse_list(env.get("ETL_ALERT_EMAILS", "etl-alerts@localhost")),
            slack_webhook_url=env.get("ETL_SLACK_WEBHOOK_URL", "").strip(),
            teams_webhook_url=env.get("ETL_TEAMS_WEBHOOK_URL", "").strip(),
            airflow_retries=int(env.get("ETL_AIRFLOW_RETRIES", "2")),
            airflow_retry_delay_seconds=float(env.get("ETL_AIRFLOW_RETRY_DELAY_SECONDS", "300")),
            airflow_deadline_seconds=float(env.get("ETL_AIRFLOW_DEADLINE_SECONDS", "7200")),
            lookup_dir=Path(env.get("ETL_LOOKUP_DIR", PROJECT_ROOT / "data" / "lookups")),
            quality_targets=_quality_targets(env),
            dq_hard_rules=_csv_set(env.get("ETL_DQ_HARD_RULES")),
            dq_soft_rules=_csv_set(env.get("ETL_DQ_SOFT_RULES")),
            data_interval_start=env.get("ETL_DATA_INTERVAL_START") or None,
            data_interval_end=env.get("ETL_DATA_INTERVAL_END") or None,
            freshness_days=float(env.get("ETL_DQ_FRESHNESS_DAYS", "30")),
            payment_tolerance_cents=int(env.get("ETL_DQ_PAYMENT_TOLERANCE_CENTS", "1")),
            max_field_chars=int(env.get("ETL_MAX_FIELD_CHARS", "100000")),
            chunk_rows=int(env.get("ETL_CHUNK_ROWS", "250000")),
            clean_csv=env.get("ETL_CLEAN_CSV", "0").lower() in ("1", "true", "yes"),
            dq_enforce=env.get("ETL_DQ_ENFORCE", "1").lower() not in ("0", "false", "no"),
            dq_gate=_gate(env.get("ETL_DQ_GATE")),
            run_lock_wait=env.get("ETL_RUN_LOCK_WAIT", "1").lower() not in ("0", "false", "no"),
            refresh_work_mem=env.get("ETL_REFRESH_WORK_MEM", "256MB"),
            jobs_drop_dir=Path(
                env.get("ETL_JOBS_DROP_DIR")
                or Path(env.get("ETL_STAGING_DIR", PROJECT_ROOT / "data" / "staging")) / "drop"
            ),
            jobs_max_bytes=int(env.get("ETL_JOBS_MAX_BYTES", "300000000")),
            pipeline_login=env.get("ETL_PIPELINE_USER") or "etl_pipeline",
            pipeline_password=env.get("ETL_PIPELINE_PASSWORD") or None,
            dashboard_login=env.get("ETL_DASHBOARD_USER") or "etl_dashboard",
            dashboard_password=env.get("ETL_DASHBOARD_PASSWORD") or None,
            bi_login=env.get("ETL_BI_USER") or "etl_bi",
            bi_password=env.get("ETL_BI_PASSWORD") or None,
        )

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields changed (CLI flags, tests)."""
        return replace(self, **changes)
