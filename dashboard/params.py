"""Validation of the dashboards' query parameters.

Every parameter is parsed into a typed value or rejected with a one-line
message saying what was expected; queries only ever receive parsed values as
bind parameters, never text pasted into SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from etl.staging import RUN_ID

#: The 27 Brazilian federative units (customer_state in Olist).
BR_STATES = frozenset(
    "AC AL AM AP BA CE DF ES GO MA MG MS MT PA PB PE PI PR RJ RN RO RR RS SC SE SP TO".split()
)
METRICS = ("revenue", "units")
#: ASCII only: ``\\d`` alone also matches "²" or "٣", which ``int()`` and ``date`` refuse.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_CATEGORY = re.compile(r"[a-z0-9_()]{1,80}", re.ASCII)
_LIMIT = re.compile(r"[0-9]{1,3}", re.ASCII)
#: The range of days the warehouse can hold; also keeps ``end + 1 day`` computable.
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2100, 12, 31)


class BadParameter(ValueError):
    """A query parameter that cannot be used; the message is for the person who sent it."""


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "…")


def parse_date(name: str, value: str) -> date:
    if not _DATE.fullmatch(value):
        raise BadParameter(f"parameter {name!r} must be a date like 2017-06-30, got {_shown(value)}")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise BadParameter(f"parameter {name!r} is not a real calendar date: {_shown(value)}") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise BadParameter(f"parameter {name!r} must be between {FIRST_DAY} and {LAST_DAY}, got {day}")
    return day


def parse_state(name: str, value: str) -> str:
    code = value.strip().upper()
    if code not in BR_STATES:
        raise BadParameter(
            f"unknown state {_shown(value)} in {name!r}; use a Brazilian state code such as SP, RJ or MG"
        )
    return code


def parse_category(name: str, value: str) -> str:
    if not _CATEGORY.fullmatch(value):
        raise BadParameter(
            f"parameter {name!r} must be a category name like 'health_beauty' "
            f"(lowercase letters, digits, underscores), got {_shown(value)}"
        )
    return value


def parse_limit(name: str, value: str) -> int:
    if not _LIMIT.fullmatch(value) or not 1 <= int(value) <= 100:
        raise BadParameter(f"parameter {name!r} must be a whole number from 1 to 100, got {_shown(value)}")
    return int(value)


def parse_metric(name: str, value: str) -> str:
    if value not in METRICS:
        raise BadParameter(f"parameter {name!r} must be one of {', '.join(METRICS)}, got {_shown(value)}")
    return value


def parse_run_id(name: str, value: str) -> str:
    if not RUN_ID.fullmatch(value) or ".." in value:
        raise BadParameter(
            f"parameter {name!r} must be a run id (letters, digits, - _ . : +), got {_shown(value)}"
        )
    return value


PARSERS: dict[str, Callable[[str, str], object]] = {
    "start": parse_date,
    "end": parse_date,
    "state": parse_state,
    "category": parse_category,
    "limit": parse_limit,
    "metric": parse_metric,
    "run_id": parse_run_id,
}


@dataclass(frozen=True)
class Filters:
    """Parsed parameters of one request (absent ones are None)."""

    start: date | None = None
    end: date | None = None
    state: str | None = None
    category: str | None = None
    limit: int | None = None
    metric: str | None = None
    run_id: str | None = None


def parse(
    args: Mapping[str, str],
    allowed: Iterable[str],
    known_categories: Callable[[], frozenset[str]] | None = None,
) -> Filters:
    """Parse ``args`` allowing only ``allowed`` names; raise BadParameter on anything wrong."""
    allowed = tuple(allowed)
    values: dict[str, object] = {}
    for name in args:
        if name not in allowed:
            accepted = ", ".join(allowed) or "no parameters"
            raise BadParameter(f"unknown parameter {_shown(name)}; this endpoint accepts {accepted}")
        if len(getattr(args, "getlist", lambda n: [n])(name)) > 1:
            raise BadParameter(f"parameter {_shown(name)} is given more than once; give it once")
        raw = args[name]
        if raw == "":
            continue
        values[name] = PARSERS[name](name, raw)
    filters = Filters(**values)
    if filters.start and filters.end and filters.start > filters.end:
        raise BadParameter(f"'start' ({filters.start}) is after 'end' ({filters.end})")
    if filters.category and known_categories is not None and filters.category not in known_categories():
        raise BadParameter(f"unknown category {_shown(filters.category)}; see /api/categories for the list")
    return filters
