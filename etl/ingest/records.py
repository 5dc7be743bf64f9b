"""Mapped records: what every non-Olist source hands to the transform stage.

Connectors and database/file sources map their records onto the **Olist source
columns** of the warehouse tables (``etl.olist``: ``order_id``,
``order_purchase_timestamp``, ``payment_value``...), so the one transform that
checks Olist files checks them too, with the same quarantine rules. Three
lineage columns ride along: ``source_system``, ``source_id`` (the vendor's own
id) and ``currency``.

Conventions of the mapping (docs/sources.md):

* ids: the warehouse uses Olist's 32-hex ids, so a vendor id becomes
  ``md5("<system>:<entity>:<vendor id>")`` -- deterministic, so a record read
  twice maps to the same row and merges instead of doubling;
* timestamps: written as wall-clock time in ``settings.source_timezone``
  (``YYYY-MM-DD HH:MM:SS``), which transform converts back to UTC;
* money: a decimal string in the currency's major unit (transform makes cents);
  Stripe's integer minor units are divided by 100 (zero-decimal currencies are
  kept as they are).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from etl.olist import ALL_TABLES, LINEAGE_COLUMNS

#: Olist source columns of each table, then the lineage columns.
TABLE_COLUMNS: dict[str, list[str]] = {
    spec.name: spec.source_columns + list(LINEAGE_COLUMNS) for spec in ALL_TABLES
}

#: Stripe amounts in these currencies are already whole units.
ZERO_DECIMAL_CURRENCIES = frozenset(
    {
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
)


def vendor_id(system: str, entity: str, value: Any) -> str:
    """The warehouse's 32-hex id for a vendor record (stable across runs)."""
    return hashlib.md5(f"{system}:{entity}:{value}".encode()).hexdigest()


def local_timestamp(value: Any, tz: str) -> str | None:
    """An ISO-8601 string (with offset, or naive UTC) or epoch seconds -> local wall clock."""
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, tz=UTC)
    elif isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        text = str(value).strip().replace("Z", "+00:00")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return str(value)  # left as is: transform quarantines it with the reason
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")


def minor_to_major(amount: int | None, currency: str) -> str | None:
    if amount is None:
        return None
    if currency.lower() in ZERO_DECIMAL_CURRENCIES:
        return str(amount)
    return str(Decimal(int(amount)) / 100)


class TableWriter:
    """Appends mapped rows to ``{dir}/{table}.csv.gz`` files, one per table, streaming."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: dict[str, tuple[Any, csv.DictWriter]] = {}
        self.counts: dict[str, int] = {}

    def write(self, table: str, rows: Iterable[dict]) -> int:
        n = 0
        for row in rows:
            if table not in self._files:
                self.directory.mkdir(parents=True, exist_ok=True)
                fh = io.TextIOWrapper(
                    gzip.open(self.directory / f"{table}.csv.gz", "wb", compresslevel=3),
                    encoding="utf-8",
                    newline="",
                )
                writer = csv.DictWriter(fh, fieldnames=TABLE_COLUMNS[table], extrasaction="ignore")
                writer.writeheader()
                self._files[table] = (fh, writer)
            self._files[table][1].writerow({k: ("" if v is None else v) for k, v in row.items()})
            n += 1
        self.counts[table] = self.counts.get(table, 0) + n
        return n

    def close(self) -> dict[str, str]:
        """Close every file; the paths written, by table."""
        for fh, _ in self._files.values():
            fh.close()
        paths = {table: str(self.directory / f"{table}.csv.gz") for table in self._files}
        self._files.clear()
        return paths
