"""Sources as configuration: ``config/sources.yml`` (docs/sources.md).

The file holds no secrets. Any value may instead be a reference resolved when
the source runs: ``{env: NAME}`` (an environment variable) or
``{airflow_conn: ID, field: password}`` (an Airflow Connection: the
``AIRFLOW_CONN_<ID>`` URI variable if set, else Airflow's own lookup).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from etl.errors import ConfigError

KINDS = frozenset(
    {
        "shopify",
        "stripe",
        "stripe_charges",
        "stripe_payment_intents",
        "woocommerce",
        "postgres",
        "sqlite",
        "mysql",
        "mssql",
        "mongodb",
        "files",
    }
)
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class SourceConfig:
    name: str
    kind: str
    enabled: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)

    def option(self, key: str, default: Any = None, env: Mapping[str, str] | None = None) -> Any:
        """An option with its secret reference (if any) resolved."""
        return resolve(self.options.get(key, default), self.name, key, env)


def resolve(value: Any, source: str, key: str, env: Mapping[str, str] | None = None) -> Any:
    env = os.environ if env is None else env
    if isinstance(value, Mapping) and "env" in value and len(value) <= 2:
        name = value["env"]
        if name in env and env[name] != "":
            return env[name]
        if "default" in value:
            return value["default"]
        raise ConfigError(
            f"source {source}: {key} comes from environment variable {name}, "
            "which is not set (export it, or disable the source in sources.yml)"
        )
    if isinstance(value, Mapping) and "airflow_conn" in value:
        return _airflow_field(value["airflow_conn"], value.get("field", "password"), source, key, env)
    if isinstance(value, Mapping):
        return {k: resolve(v, source, f"{key}.{k}", env) for k, v in value.items()}
    return value


def _airflow_field(conn_id: str, field_name: str, source: str, key: str, env: Mapping[str, str]) -> str:
    uri = env.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if uri:
        parts = urlsplit(uri)
        values = {
            "login": unquote(parts.username or ""),
            "password": unquote(parts.password or ""),
            "host": parts.hostname or "",
            "port": str(parts.port or ""),
            "uri": uri,
            "schema": parts.path.lstrip("/"),
        }
    else:
        try:
            from airflow.hooks.base import BaseHook  # noqa: PLC0415 (optional at runtime)

            conn = BaseHook.get_connection(conn_id)
        except Exception as exc:  # Airflow missing, no metadata DB, unknown id
            raise ConfigError(
                f"source {source}: {key} comes from Airflow Connection {conn_id!r}, "
                f"which cannot be read ({type(exc).__name__}: {exc}); define it or set "
                f"AIRFLOW_CONN_{conn_id.upper()}"
            ) from exc
        values = {
            "login": conn.login or "",
            "password": conn.password or "",
            "host": conn.host or "",
            "port": str(conn.port or ""),
            "uri": conn.get_uri(),
            "schema": conn.schema or "",
        }
    if field_name not in values:
        raise ConfigError(
            f"source {source}: {key}: unknown Airflow Connection field {field_name!r} "
            f"(use one of {', '.join(values)})"
        )
    return values[field_name]


def load(path: Path) -> list[SourceConfig]:
    """Every source in the file, checked; a missing file means no configured sources."""
    if not path.exists():
        return []
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from exc
    entries = document.get("sources") or []
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: 'sources' must be a list of sources")
    defaults = document.get("defaults") or {}
    sources, names = [], set()
    for n, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping) or "name" not in entry or "kind" not in entry:
            raise ConfigError(f"{path}: source #{n} needs at least 'name' and 'kind'")
        name, kind = str(entry["name"]), str(entry["kind"])
        if not _NAME.match(name):
            raise ConfigError(f"{path}: source name {name!r} must be lower-case letters, digits, _ or -")
        if name in names:
            raise ConfigError(f"{path}: source {name!r} is listed twice")
        if kind not in KINDS:
            raise ConfigError(
                f"{path}: source {name}: unknown kind {kind!r} (one of {', '.join(sorted(KINDS))})"
            )
        names.add(name)
        options = {k: v for k, v in entry.items() if k not in ("name", "kind", "enabled")}
        if "http" in defaults or "http" in options:
            options["http"] = {**(defaults.get("http") or {}), **(options.get("http") or {})}
        sources.append(SourceConfig(name, kind, bool(entry.get("enabled", True)), options))
    return sources


def find(sources: list[SourceConfig], name: str) -> SourceConfig:
    for source in sources:
        if source.name == name:
            return source
    raise ConfigError(
        f"no source named {name!r} in the sources file "
        f"(configured: {', '.join(s.name for s in sources) or 'none'})"
    )
