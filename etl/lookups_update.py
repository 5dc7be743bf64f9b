"""``etl lookups update``: build the canonical lists from the data a person is about to load.

The lookup files (``data/lookups/*.json``) are edited by people; this module
does the tedious half. It scans the Olist files of a folder for every value of
a looked-up column (categories, states, cities, order statuses, payment types),
maps each distinct value the way the transform will (exact, folded, alias) and
collects what does not map: each unmatched value goes into the file's
``unknown`` section with its count, an example (file and row) and the closest
canonical value as a suggestion. A person resolves it by adding an alias, or
leaves it there, and the transform keeps quarantining those rows.

Categories also get *proposed*: the translation file is Olist's authority on
category names, so a category it lists that the canonical list lacks is added
with its English name. Cities have no closed list (thousands of towns, and the
geolocation file is partial), so for them only likely typos are listed: a rare
spelling that is one or two edits away from a far more common spelling in the
same state. They never fail ``--check``; a wrong merge of two real towns would
be worse than a typo.

Nothing is written without ``apply``; the report carries the unified diff of
every file that would change.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from etl import lookups as lk
from etl.errors import EtlError, SourceError
from etl.ingest.olist_files import locate
from etl.olist import ALL_TABLES, Column, TableSpec

#: The closed lists: values outside them are quarantined, so unmatched ones fail ``--check``.
CLOSED_LISTS = ("categories", "states", "order_statuses", "payment_types")
#: A city spelling seen at most this often is a typo candidate ...
CITY_RARE_MAX = 2
#: ... when a spelling of the same state this many times more frequent is close to it.
CITY_RATIO = 20
CITY_SIMILARITY = 0.88


class UnmappedValuesError(EtlError):
    """``--check`` found values the lookups do not map (exit 3, like a failed quality gate)."""

    exit_code = 3


@dataclass(frozen=True)
class Seen:
    """One distinct raw value of one list, how often it occurs and where first."""

    value: str
    count: int
    example: str  # "olist_orders_dataset.csv row 17"


@dataclass
class ListReport:
    """What the data says about one lookup file."""

    name: str
    path: Path
    values_seen: int = 0
    rows_seen: int = 0
    mapped: dict[str, int] = field(
        default_factory=dict
    )  # how ("exact", "folded", "alias") -> distinct values
    unknown: list[tuple[Seen, str | None]] = field(default_factory=list)  # value, suggestion
    proposed_canonical: dict[str, str] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)  # canonical values the data never uses
    before: str = ""
    after: str = ""

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"{self.path} (now)",
                tofile=f"{self.path} (proposed)",
            )
        )


@dataclass
class UpdateReport:
    lists: list[ListReport]
    applied: bool = False

    def unmapped(self) -> list[tuple[str, Seen]]:
        """Unmatched values of the closed lists (the ones the transform would quarantine)."""
        return [(r.name, s) for r in self.lists if r.name in CLOSED_LISTS for s, _ in r.unknown]

    def render(self, with_diff: bool = True) -> str:
        lines = []
        for r in self.lists:
            how = ", ".join(f"{n} {k}" for k, n in sorted(r.mapped.items()) if n) or "none"
            lines.append(
                f"{r.name:<15} {r.values_seen:>6,} distinct values in {r.rows_seen:>9,} rows; "
                f"mapped: {how}; unknown: {len(r.unknown)}"
                + (f"; new canonical: {len(r.proposed_canonical)}" if r.proposed_canonical else "")
            )
            for seen, suggestion in r.unknown:
                hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
                lines.append(f"  unknown '{seen.value}' x{seen.count:,} e.g. {seen.example}{hint}")
        changed = [r for r in self.lists if r.changed]
        if with_diff and not self.applied:
            lines.extend(r.diff().rstrip("\n") for r in changed)
        if self.applied:
            lines.append(
                "wrote " + (", ".join(str(r.path) for r in changed) if changed else "nothing (no change)")
            )
        elif changed:
            lines.append(f"{len(changed)} file(s) would change; run again with --apply to write them")
        else:
            lines.append("the lookup files already match the data")
        return "\n".join(lines)


def _lookup_of(spec: TableSpec, col: Column) -> str | None:
    """Which list a column is resolved against (the same rule the transform applies)."""
    if col.kind == "state":
        return "states"
    if col.kind == "category" or (spec.role == "translation" and col.target == "category_name"):
        return "categories"
    if col.target in ("order_status", "payment_type", "city"):
        return {"order_status": "order_statuses", "payment_type": "payment_types", "city": "cities"}[
            col.target
        ]
    return None


def scan(data_dir: Path) -> tuple[dict[str, list[Seen]], dict[str, str]]:
    """Distinct values per list (with counts and a first example) and the translation file's pairs.

    Files that are absent are skipped (a folder may hold only orders, say); a
    folder with none of the Olist files is an error.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise SourceError(f"{data_dir}: the data folder does not exist")
    counts: dict[str, dict[str, list]] = {}
    translation: dict[str, str] = {}
    found = 0
    for spec in ALL_TABLES:
        columns = [(c, _lookup_of(spec, c)) for c in spec.columns]
        columns = [(c, name) for c, name in columns if name]
        if not columns:
            continue
        try:
            source = locate(spec, data_dir)
        except SourceError:
            continue
        found += 1
        usecols = [c.source for c, _ in columns]
        english = next((c.source for c in spec.columns if c.target == "category_name_english"), None)
        if spec.role == "translation" and english:
            usecols.append(english)
        try:
            frame = pd.read_csv(
                source.path,
                dtype=str,
                keep_default_na=False,
                usecols=usecols,
                encoding="utf-8-sig",
            )
        except ValueError as exc:
            raise SourceError(f"{source.path}: {exc} (is the header the Olist one?)") from exc
        if spec.role == "translation" and english:
            translation.update(zip(frame[columns[0][0].source], frame[english]))
        for col, name in columns:
            values = frame[col.source].str.strip()
            if name == "cities":  # a city is only a typo of a city of the same state
                values = values.where(values == "", values + "|" + frame[_state_column(spec)].str.upper())
            present = values[values != ""]
            if present.empty:
                continue
            tally = present.value_counts(sort=False)
            first = present.index.to_series().groupby(present.to_numpy()).min()
            bucket = counts.setdefault(name, {})
            for value, n in tally.items():
                if value in bucket:
                    bucket[value][0] += int(n)
                else:
                    bucket[value] = [int(n), f"{source.name} row {int(first[value]) + 2} ({col.source})"]
    if not found:
        raise SourceError(f"{data_dir}: none of the Olist files are here (e.g. olist_orders_dataset.csv)")
    seen = {
        name: [Seen(v, n, ex) for v, (n, ex) in sorted(bucket.items())] for name, bucket in counts.items()
    }
    return seen, translation


def _state_column(spec: TableSpec) -> str:
    return next(c.source for c in spec.columns if c.kind == "state")


def _how(lookup: lk.Lookup, value: str) -> str | None:
    """'exact', 'folded' or 'alias' as the transform would map ``value``; None when it would not."""
    key = value.strip()
    key = key.upper() if lookup.fold_case == "upper" else key
    if key in lookup.canonical:
        return "exact"
    resolved = lookup._resolve_one(value)
    if resolved == lookup.unknown:
        return None
    folded = lk.fold(value)
    return "alias" if folded in lookup.aliases else "folded"


def _suggest(value: str, choices: Iterable[str], fold: Callable[[str], str] = lk.fold) -> str | None:
    close = difflib.get_close_matches(fold(value), list(choices), n=1, cutoff=0.75)
    return close[0] if close else None


def _unknown_section(doc: dict) -> dict:
    """The file's ``unknown`` as the object form, whichever form the file holds."""
    current = doc.get("unknown", "UNKNOWN")
    if isinstance(current, dict):
        return {"bucket": current.get("bucket", "UNKNOWN"), "values": dict(current.get("values", {}))}
    return {"bucket": current, "values": {}}


def _write_unknown(doc: dict, section: dict) -> None:
    doc["unknown"] = section if section["values"] else section["bucket"]


def _closed_list(name: str, lookup: lk.Lookup, doc: dict, seen: list[Seen], translation: dict) -> ListReport:
    report = ListReport(name, Path())
    report.values_seen, report.rows_seen = len(seen), sum(s.count for s in seen)
    new = copy.deepcopy(doc)
    if name == "categories":
        for pt, en in sorted(translation.items()):
            folded = lk.fold(pt)
            if folded and folded not in lookup.canonical and folded not in lookup.aliases:
                report.proposed_canonical[folded] = en
        new["canonical"] = {**new["canonical"], **report.proposed_canonical}
        lookup = lk.Lookup(
            lookup.name, dict(new["canonical"]), lookup.aliases, lookup.unknown, lookup.fold_case
        )
    used = set()
    section = _unknown_section(new)
    section["values"] = {}
    for s in seen:
        how = _how(lookup, s.value)
        if how:
            report.mapped[how] = report.mapped.get(how, 0) + 1
            used.add(lookup._resolve_one(s.value))
            continue
        suggestion = _suggest(s.value, list(lookup.canonical) + list(lookup.aliases))
        suggestion = lookup.aliases.get(suggestion, suggestion) if suggestion else None
        report.unknown.append((s, suggestion))
        section["values"][s.value] = {"count": s.count, "example": s.example, "suggestion": suggestion}
    report.unused = sorted(set(lookup.canonical) - used)
    _write_unknown(new, section)
    report.before, report.after = _dump(doc), _dump(new)
    return report


def _cities(lookup: lk.Lookup, doc: dict, seen: list[Seen]) -> ListReport:
    """Likely typos: rare spellings close to a far more common one of the same state."""
    report = ListReport("cities", Path())
    by_state: dict[str, dict[str, list]] = {}
    for s in seen:
        raw, _, state = s.value.rpartition("|")
        city = lookup._resolve_one(raw)
        entry = by_state.setdefault(state, {}).setdefault(city, [0, s.example, raw])
        entry[0] += s.count
    report.values_seen = sum(len(c) for c in by_state.values())
    report.rows_seen = sum(s.count for s in seen)
    new = copy.deepcopy(doc)
    section = _unknown_section(new)
    section["values"] = {}
    for _state, cities in sorted(by_state.items()):
        common = [c for c, (n, _, _) in cities.items() if n > CITY_RARE_MAX * CITY_RATIO]
        for city, (n, example, _raw) in sorted(cities.items()):
            if n > CITY_RARE_MAX:
                continue
            close = difflib.get_close_matches(city, common, n=1, cutoff=CITY_SIMILARITY)
            if close and cities[close[0]][0] >= n * CITY_RATIO:
                report.unknown.append((Seen(city, n, example), close[0]))
                section["values"][city] = {"count": n, "example": example, "suggestion": close[0]}
    report.mapped["folded"] = report.values_seen - len(report.unknown)
    _write_unknown(new, section)
    report.before, report.after = _dump(doc) if doc.get("_exists", True) else "", _dump(new)
    return report


CITIES_TEMPLATE = {
    "_about": (
        "City spellings (folded: lower case, no accents, single spaces). Cities are an open list: "
        "anything not under 'aliases' passes through folded. 'etl lookups update' lists likely typos "
        "under 'unknown' with a suggestion; move the ones you agree with to 'aliases' (typo -> city)."
    ),
    "aliases": {},
    "unknown": "UNKNOWN",
}


def _dump(doc: dict) -> str:
    return json.dumps({k: v for k, v in doc.items() if k != "_exists"}, indent=2, ensure_ascii=False) + "\n"


def update(data_dir: Path, lookup_dir: Path, apply: bool = False) -> UpdateReport:
    """Compare the data of ``data_dir`` with the lookup files of ``lookup_dir``; write them if ``apply``."""
    lookup_dir = Path(lookup_dir)
    lookups = lk.load_lookups(lookup_dir)
    seen, translation = scan(data_dir)
    reports = []
    for name in CLOSED_LISTS:
        path = lookup_dir / f"{name}.json"
        doc = json.loads(path.read_text(encoding="utf-8"))
        report = _closed_list(name, getattr(lookups, name), doc, seen.get(name, []), translation)
        report.path = path
        reports.append(report)
    city_path = lookup_dir / "cities.json"
    city_doc = (
        json.loads(city_path.read_text(encoding="utf-8"))
        if city_path.is_file()
        else {**CITIES_TEMPLATE, "_exists": False}
    )
    city_report = _cities(lookups.cities, city_doc, seen.get("cities", []))
    city_report.path = city_path
    if not city_report.unknown and not city_path.is_file():
        city_report.after = city_report.before  # nothing to say: do not create the file
    reports.append(city_report)
    if apply:
        for r in reports:
            if r.changed:
                tmp = r.path.with_suffix(".json.tmp")
                tmp.write_text(r.after, encoding="utf-8")
                tmp.replace(r.path)
    return UpdateReport(reports, applied=apply)
