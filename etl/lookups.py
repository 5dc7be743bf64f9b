"""Human-editable canonical lists (``data/lookups/*.json``) and how values are mapped to them.

Each file holds ``canonical`` (the allowed values, each with a description or
translation), ``aliases`` (other spellings -> a canonical value) and the name of
the ``unknown`` bucket. People fix data by editing these files: add an alias,
then ``etl quarantine retry --run R`` re-applies them to the rows that failed.

Mapping is vectorised: the folding work is done once per *distinct* value
(a few hundred categories, a few thousand cities), then broadcast with
``Series.map`` — never a Python loop per row.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from etl.errors import ConfigError
from etl.settings import PROJECT_ROOT

DEFAULT_LOOKUP_DIR = PROJECT_ROOT / "data" / "lookups"
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def fold(text: str) -> str:
    """Lower case, accents removed, runs of other characters -> '_' ("Cama, Mesa & Banho" -> cama_mesa_banho)."""
    ascii_text = unicodedata.normalize("NFKD", repair_mojibake(text)).encode("ascii", "ignore").decode()
    return _NON_ALNUM.sub("_", ascii_text.lower()).strip("_")


def fold_city(text: str) -> str:
    """Cities as Olist spells them: lower case, no accents, single spaces ("São  Paulo" -> "sao paulo")."""
    ascii_text = unicodedata.normalize("NFKD", repair_mojibake(text)).encode("ascii", "ignore").decode()
    return " ".join(ascii_text.lower().replace("'", " ").split())


def repair_mojibake(text: str) -> str:
    """UTF-8 text that was once decoded as Latin-1 ("SÃ£o Paulo") back to what was meant."""
    if "Ã" not in text and "Â" not in text:
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def map_distinct(values: pd.Series, func) -> pd.Series:
    """Apply ``func`` to each distinct non-missing value once and broadcast the answers."""
    distinct = values.dropna().unique()
    mapping = {v: func(v) for v in distinct}
    return values.map(mapping).astype(values.dtype if values.dtype != object else "string")


@dataclass(frozen=True)
class Lookup:
    """One canonical list: ``resolve`` maps raw values to canonical ones or the unknown bucket."""

    name: str
    canonical: dict[str, str]
    aliases: dict[str, str]
    unknown: str = "UNKNOWN"
    fold_case: str = "lower"  # "upper" for state codes; "city" for the open list of cities

    def _resolve_one(self, value: str) -> str:
        if self.fold_case == "city":  # open list: folded, then a person's typo fixes
            city = fold_city(value)
            return self.aliases.get(city, city)
        key = value.strip()
        key = key.upper() if self.fold_case == "upper" else key
        if key in self.canonical:
            return key
        folded = fold(value)
        if self.fold_case == "upper" and folded.upper() in self.canonical:
            return folded.upper()
        if folded in self.canonical:
            return folded
        return self.aliases.get(folded, self.unknown)

    def resolve(self, values: pd.Series) -> pd.Series:
        """Canonical value per row; missing stays missing; anything unmapped -> ``unknown``."""
        return map_distinct(values, self._resolve_one)

    def describe(self, values: pd.Series) -> pd.Series:
        """The description/translation of canonical values (e.g. the English category)."""
        return values.map(self.canonical)


@dataclass(frozen=True)
class Lookups:
    categories: Lookup
    states: Lookup
    order_statuses: Lookup
    payment_types: Lookup
    cities: Lookup = Lookup("cities", {}, {}, fold_case="city")


def _load_one(path: Path, fold_case: str = "lower") -> Lookup:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        unknown = doc.get("unknown", "UNKNOWN")
        # "unknown" is the bucket's name, or (once `etl lookups update` listed unmatched
        # values for a person to resolve) {"bucket": name, "values": {...}}.
        bucket = unknown["bucket"] if isinstance(unknown, dict) else unknown
        return Lookup(
            path.stem,
            dict(doc["canonical"] if fold_case != "city" else doc.get("canonical", {})),
            dict(doc.get("aliases", {})),
            str(bucket),
            fold_case,
        )
    except FileNotFoundError as exc:
        raise ConfigError(
            f"lookup file {path} is missing (set ETL_LOOKUP_DIR or restore it from git)"
        ) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"lookup file {path} is not valid: {exc} "
            "(it needs a 'canonical' object and optional 'aliases' and 'unknown')"
        ) from exc


def load_lookups(directory: Path | None = None) -> Lookups:
    """Read the lookup files (cities.json is optional); cached per directory and modification time."""
    directory = Path(directory or DEFAULT_LOOKUP_DIR)
    stamp = (
        tuple(p.stat().st_mtime_ns for p in sorted(directory.glob("*.json"))) if directory.is_dir() else ()
    )
    return _load_cached(str(directory), stamp)


@lru_cache(maxsize=8)
def _load_cached(directory: str, _stamp: tuple) -> Lookups:
    d = Path(directory)
    return Lookups(
        categories=_load_one(d / "categories.json"),
        states=_load_one(d / "states.json", "upper"),
        order_statuses=_load_one(d / "order_statuses.json"),
        payment_types=_load_one(d / "payment_types.json"),
        cities=_load_one(d / "cities.json", "city")
        if (d / "cities.json").is_file()
        else Lookup("cities", {}, {}, fold_case="city"),
    )
