"""From a warehouse row back to the raw payload it came from: ``source_system`` + ``source_id``.

Rows from vendors carry their system (``shopify``, ``stripe``, ``woocommerce``,
or a database source's name) and the vendor's own id. The raw archive keeps
every page as received under ``raw/{source}/{day}/`` with a manifest; this
module finds, for a (system, id) pair, every archived record with that id in
the archives of the configured sources of that system: which file, which
request, when it was received, and the record exactly as the vendor sent it.

It reads the archive only (each payload checked against its manifest sha256),
never the vendor, so it works for rows loaded long ago and with no credentials.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from psycopg2 import sql

from etl import staging
from etl.errors import SourceError
from etl.ingest import archive, config, databases
from etl.ingest.runner import API_KINDS, build_connector, configured_sources
from etl.settings import Settings
from etl.warehouse import connection as db


@dataclass(frozen=True)
class RawRecord:
    """One archived copy of a vendor record."""

    source: str  # the source's name in sources.yml (the archive folder)
    day: str
    file: str  # the payload's file under raw/{source}/{day}/
    run_id: str
    received_at: str
    request: dict
    record: dict

    @property
    def location(self) -> str:
        return f"raw/{self.source}/{self.day}/{self.file}"


def _system_of(source: config.SourceConfig) -> str:
    """The ``source_system`` a source's rows carry (a connector's vendor, a database source's name)."""
    if source.kind in API_KINDS:
        return build_connector(source, with_secrets=False).system
    return source.name


def _records(source: config.SourceConfig, line: dict, payload: bytes) -> Iterator[tuple[str, dict]]:
    """(vendor id, record) of one archived payload, as the source's reader saw them."""
    if source.kind in API_KINDS:
        connector = build_connector(source, with_secrets=False)
        for record in connector.records(json.loads(payload)):
            yield connector.record_id(record), record
        return
    if line.get("kind") == "file":  # a copied file: its rows are not JSON records
        return
    mapping = databases.TableMapping.from_options(source.name, dict(source.options))
    for record in json.loads(payload):
        yield str(record.get(mapping.id_field)), record


def archived_days(settings: Settings, source: str) -> list[str]:
    base = staging.raw_dir(settings, source, "")
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / archive.MANIFEST).is_file())


def find_raw(settings: Settings, source_system: str, source_id: Any) -> list[RawRecord]:
    """Every archived copy of the record ``source_id`` of ``source_system``, oldest first."""
    sources = [s for s in configured_sources(settings) if _system_of(s) == source_system]
    if not sources:
        raise SourceError(
            f"no source in {settings.sources_file} has source_system '{source_system}' "
            "(a connector kind such as shopify, or a database source's name)"
        )
    wanted = str(source_id)
    found = []
    for source in sources:
        for day in archived_days(settings, source.name):
            for line, payload in archive.payloads(settings, source.name, day):
                for record_id, record in _records(source, line, payload):
                    if record_id == wanted:
                        found.append(
                            RawRecord(
                                source.name,
                                day,
                                line["file"],
                                line["run_id"],
                                line["received_at"],
                                line.get("request", {}),
                                record,
                            )
                        )
    return sorted(found, key=lambda r: r.received_at)


def warehouse_lineage(settings: Settings, table: str, key_column: str, key: str) -> tuple[str, str] | None:
    """(source_system, source_id) of one warehouse row, or None when the row has none (Olist files)."""
    statement = sql.SQL("SELECT source_system, source_id FROM {} WHERE {} = %s LIMIT 1").format(
        sql.Identifier(table), sql.Identifier(key_column)
    )
    conn = db.connect(settings.database_url, settings.connect_timeout)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, (key,))
            row = cur.fetchone()
    finally:
        conn.close()
    if row is None:
        raise SourceError(f"{table} has no row with {key_column} = {key}")
    return (row[0], row[1]) if row[0] and row[1] else None
