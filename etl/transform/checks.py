"""The rule catalogue: every check, its quality dimension, quarantine category and hardness.

A check looks at whole columns of a batch and returns, per row, whether it
applied and whether it failed (``Outcome``). The engine (``etl.transform.table``)
evaluates all of them, then:

* a row failing any **hard** check is quarantined (category and rule of the
  first one, in catalogue order);
* a row failing only **soft** checks is loaded, with the rule names in its
  ``dq_flags`` column;
* every failure of every check is kept as a finding (``quality_issues``), which
  is what the scores in ``etl.quality`` are counted from.

Which rules are hard is configuration: each check has a default, and
``Settings.dq_hard_rules`` / ``dq_soft_rules`` (fnmatch patterns on the rule
name) override it. Rule names are stable: docs/data_quality.md lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatch

import numpy as np
import pandas as pd

from etl.lookups import Lookups
from etl.olist import TableSpec

MISSING = "MISSING_REQUIRED_FIELD"
RULE = "BUSINESS_RULE_VIOLATION"
FORMAT = "DATA_FORMAT_ERROR"
QUALITY = "DATA_QUALITY_ISSUE"
FK = "REFERENTIAL_INTEGRITY"
DUPLICATE = "DUPLICATE"


@dataclass(frozen=True)
class Check:
    name: str  # stable rule name, e.g. "price_positive", "format:order_id"
    dimension: str  # one of etl.quality.DIMENSIONS
    category: str  # quarantine category when hard
    hard: bool  # default; Settings may override


#: A sentence for people: constant, per row, or built only for the failing rows
#: (a function of the fail mask) so clean rows cost no string work.
Detail = "str | pd.Series | Callable[[np.ndarray], object]"


def quoted(prefix: str, values: pd.Series, suffix: str) -> Callable[[np.ndarray], np.ndarray]:
    """``prefix + value + suffix`` for the failing rows only."""
    return lambda mask: (prefix + values[mask].astype(str) + suffix).to_numpy(dtype=object)


@dataclass
class Outcome:
    check: Check
    hard: bool  # after configuration
    fail: np.ndarray  # bool per row
    applicable: np.ndarray  # bool per row: the check could be evaluated
    detail: object  # Detail

    def details(self) -> np.ndarray | str:
        """The sentence for each failing row (or one for all)."""
        if isinstance(self.detail, str):
            return self.detail
        if isinstance(self.detail, pd.Series):
            return self.detail.to_numpy(dtype=object)[self.fail]
        return np.asarray(self.detail(self.fail), dtype=object)


@dataclass(frozen=True)
class RuleConfig:
    """What the checks need besides the data: lookups, hardness overrides, windows."""

    lookups: Lookups
    hard_rules: frozenset[str] = frozenset()
    soft_rules: frozenset[str] = frozenset()
    interval_start: pd.Timestamp | None = None
    interval_end: pd.Timestamp | None = None
    freshness: timedelta = timedelta(days=30)
    payment_tolerance_cents: int = 1
    max_field_chars: int = 100_000

    def is_hard(self, check: Check) -> bool:
        if any(fnmatch(check.name, p) for p in self.soft_rules):
            return False
        if any(fnmatch(check.name, p) for p in self.hard_rules):
            return True
        return check.hard

    @classmethod
    def from_settings(cls, settings, lookups: Lookups, now: datetime | None = None) -> RuleConfig:
        def ts(text):
            return (
                None
                if not text
                else pd.Timestamp(text).tz_localize("UTC")
                if pd.Timestamp(text).tzinfo is None
                else pd.Timestamp(text).tz_convert("UTC")
            )

        end = ts(settings.data_interval_end) or pd.Timestamp(now or datetime.now(UTC))
        return cls(
            lookups=lookups,
            hard_rules=frozenset(settings.dq_hard_rules),
            soft_rules=frozenset(settings.dq_soft_rules),
            interval_start=ts(settings.data_interval_start),
            interval_end=end,
            freshness=timedelta(days=settings.freshness_days),
            payment_tolerance_cents=settings.payment_tolerance_cents,
            max_field_chars=settings.max_field_chars,
        )


# --- the catalogue ----------------------------------------------------------------------
# Generic checks are made per column (required:<col>, format:<col>, parse:<col>,
# unique:<key>, fk:<col>-><table>); the table-specific ones are listed here.


def required(column: str) -> Check:
    return Check(f"required:{column}", "completeness", MISSING, True)


def format_check(column: str) -> Check:
    return Check(f"format:{column}", "conformity", FORMAT, True)


def parse_check(column: str) -> Check:
    return Check(f"parse:{column}", "validity", FORMAT, True)


def plausible_check(column: str) -> Check:
    return Check(f"plausible:{column}", "validity", RULE, True)


#: The calendar a row's timestamps must fall in: no e-commerce order predates 1995, and
#: 1900 or 2100 would fill dim_dates with decades. Nearer futures (an order "in 2047")
#: are timeliness findings (``purchase_in_window``), not impossible dates.
EARLIEST_PLAUSIBLE = pd.Timestamp("1995-01-01", tz="UTC")
LATEST_PLAUSIBLE = pd.Timestamp("2100-01-01", tz="UTC")


def plausible_range(config: RuleConfig) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[first, last) of the timestamps a row may hold."""
    return EARLIEST_PLAUSIBLE, LATEST_PLAUSIBLE


def unique_check(key: tuple[str, ...]) -> Check:
    return Check("unique:" + "+".join(key), "uniqueness", DUPLICATE, True)


def fk_check(column: str, table: str) -> Check:
    return Check(f"fk:{column}->{table}", "integrity", FK, True)


ENCODING_REPAIRED = Check("encoding_repaired", "conformity", QUALITY, False)
# Hostile text (etl/transform/text_safety.py), before any other check sees the batch.
INVALID_UTF8 = Check("invalid_utf8", "validity", FORMAT, True)
FIELD_TOO_LARGE = Check("field_too_large", "validity", QUALITY, True)
TEXT_CLEANED = Check("text_cleaned", "conformity", QUALITY, False)
FORMULA_LIKE = Check("formula_like", "conformity", QUALITY, False)
ORDER_STATUS_KNOWN = Check("order_status_known", "validity", RULE, True)
PRICE_POSITIVE = Check("price_positive", "validity", RULE, True)
FREIGHT_NOT_NEGATIVE = Check("freight_not_negative", "validity", RULE, True)
ITEM_NUMBER_POSITIVE = Check("item_number_positive", "validity", RULE, True)
PAYMENT_NOT_NEGATIVE = Check("payment_not_negative", "validity", RULE, True)
PAYMENT_TYPE_KNOWN = Check("payment_type_known", "validity", RULE, True)
INSTALLMENTS_NOT_NEGATIVE = Check("installments_not_negative", "validity", RULE, True)
SEQUENTIAL_POSITIVE = Check("sequential_positive", "validity", RULE, True)
REVIEW_SCORE_RANGE = Check("review_score_1_to_5", "validity", RULE, True)
LATITUDE_RANGE = Check("latitude_range", "validity", RULE, True)
LONGITUDE_RANGE = Check("longitude_range", "validity", RULE, True)
APPROVED_AFTER_PURCHASE = Check("approved_after_purchase", "consistency", QUALITY, False)
DELIVERED_AFTER_PICKUP = Check("delivered_after_pickup", "consistency", QUALITY, False)
ANSWERED_AFTER_CREATED = Check("answered_after_created", "consistency", QUALITY, False)
PAYMENTS_MATCH_ITEMS = Check("payments_match_items", "consistency", QUALITY, False)
PURCHASE_TIMELY = Check("purchase_in_window", "timeliness", QUALITY, False)
REVIEW_TIMELY = Check("review_in_window", "timeliness", QUALITY, False)
CATEGORY_KNOWN = Check("category_known", "accuracy", QUALITY, False)
CATEGORY_TRANSLATED = Check("category_translated", "accuracy", QUALITY, False)
CITY_MATCHES_ZIP = Check("city_matches_zip", "accuracy", QUALITY, False)
STATE_MATCHES_ZIP = Check("state_matches_zip", "accuracy", QUALITY, False)


def catalogue() -> list[Check]:
    """The table-specific checks (for docs and for validating configuration)."""
    return [v for v in globals().values() if isinstance(v, Check)]


# --- table-specific rules -----------------------------------------------------------------

Emit = Callable[[Check, np.ndarray, np.ndarray, "pd.Series | str"], None]
#: Reference data a run hands its later tables (keys of ``references``), named by the
#: role of the table that provides it (``TableSpec.role``), never by the table's name.
TRANSLATION = "translation"  # the category translation frame
TRANSLATED_NAMES = "translation:names"  # its category names (an Index)
PLACES = "places"  # etl.transform.shape.geolocation_places of the geolocation points


def _present(s: pd.Series) -> np.ndarray:
    return s.notna().to_numpy(dtype=bool)


def _lt(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(applicable, a < b) where both are present."""
    applicable = _present(a) & _present(b)
    return applicable, applicable & (a < b).fillna(False).to_numpy(dtype=bool)


def _window(config: RuleConfig, ts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    applicable = _present(ts)
    late = (
        (ts > config.interval_end).fillna(False).to_numpy(dtype=bool)
        if config.interval_end is not None
        else np.zeros(len(ts), dtype=bool)
    )
    stale = np.zeros(len(ts), dtype=bool)
    if config.interval_start is not None:
        stale = (ts < config.interval_start - config.freshness).fillna(False).to_numpy(dtype=bool)
    return applicable, applicable & (late | stale)


def _window_sentence(column: str, config: RuleConfig) -> str:
    start = (
        f"{config.interval_start - config.freshness:%Y-%m-%d %H:%M}"
        if config.interval_start is not None
        else "the beginning"
    )
    end = f"{config.interval_end:%Y-%m-%d %H:%M}" if config.interval_end is not None else "now"
    return f"{column} is outside the freshness window ({start} .. {end} UTC)"


def _range(check: Check, values: pd.Series, bad: pd.Series, sentence: str, emit: Emit) -> None:
    applicable = _present(values)
    emit(check, applicable & bad.fillna(False).to_numpy(dtype=bool), applicable, sentence)


def _order_rules(t: pd.DataFrame, text: pd.DataFrame, config: RuleConfig, refs: dict, emit: Emit) -> None:
    status = t["order_status"]
    unknown = status.eq(config.lookups.order_statuses.unknown)
    emit(
        ORDER_STATUS_KNOWN,
        unknown.fillna(False).to_numpy(dtype=bool),
        _present(status),
        quoted(
            "order_status = '",
            text["order_status"],
            "' is not one of " + ", ".join(sorted(config.lookups.order_statuses.canonical)),
        ),
    )
    app, bad = _lt(t["approved_at"], t["purchased_at"])
    emit(APPROVED_AFTER_PURCHASE, bad, app, "order_approved_at is before order_purchase_timestamp")
    app, bad = _lt(t["delivered_customer_at"], t["delivered_carrier_at"])
    emit(
        DELIVERED_AFTER_PICKUP,
        bad,
        app,
        "order_delivered_customer_date is before order_delivered_carrier_date",
    )
    app, bad = _window(config, t["purchased_at"])
    emit(PURCHASE_TIMELY, bad, app, _window_sentence("order_purchase_timestamp", config))


def _order_item_rules(
    t: pd.DataFrame, text: pd.DataFrame, config: RuleConfig, refs: dict, emit: Emit
) -> None:
    _range(PRICE_POSITIVE, t["price_cents"], t["price_cents"] <= 0, "price must be greater than 0", emit)
    _range(
        FREIGHT_NOT_NEGATIVE,
        t["freight_cents"],
        t["freight_cents"] < 0,
        "freight_value must not be negative",
        emit,
    )
    _range(
        ITEM_NUMBER_POSITIVE,
        t["order_item_id"],
        t["order_item_id"] < 1,
        "order_item_id must be 1 or more",
        emit,
    )


def _payment_rules(t: pd.DataFrame, text: pd.DataFrame, config: RuleConfig, refs: dict, emit: Emit) -> None:
    _range(
        PAYMENT_NOT_NEGATIVE,
        t["payment_value_cents"],
        t["payment_value_cents"] < 0,
        "payment_value must not be negative",
        emit,
    )
    ptype = t["payment_type"]
    emit(
        PAYMENT_TYPE_KNOWN,
        ptype.eq(config.lookups.payment_types.unknown).fillna(False).to_numpy(dtype=bool),
        _present(ptype),
        quoted(
            "payment_type = '",
            text["payment_type"],
            "' is not one of " + ", ".join(sorted(config.lookups.payment_types.canonical)),
        ),
    )
    _range(
        INSTALLMENTS_NOT_NEGATIVE,
        t["payment_installments"],
        t["payment_installments"] < 0,
        "payment_installments must not be negative",
        emit,
    )
    _range(
        SEQUENTIAL_POSITIVE,
        t["payment_sequential"],
        t["payment_sequential"] < 1,
        "payment_sequential must be 1 or more",
        emit,
    )


def _review_rules(t: pd.DataFrame, text: pd.DataFrame, config: RuleConfig, refs: dict, emit: Emit) -> None:
    score = t["review_score"]
    _range(REVIEW_SCORE_RANGE, score, ~score.between(1, 5), "review_score must be between 1 and 5", emit)
    app, bad = _lt(t["answered_at"], t["created_at"])
    emit(ANSWERED_AFTER_CREATED, bad, app, "review_answer_timestamp is before review_creation_date")
    app, bad = _window(config, t["created_at"])
    emit(REVIEW_TIMELY, bad, app, _window_sentence("review_creation_date", config))


def _coordinate_rules(
    t: pd.DataFrame, text: pd.DataFrame, config: RuleConfig, refs: dict, emit: Emit
) -> None:
    _range(
        LATITUDE_RANGE,
        t["latitude"],
        ~t["latitude"].between(-90, 90),
        "latitude must be between -90 and 90",
        emit,
    )
    _range(
        LONGITUDE_RANGE,
        t["longitude"],
        ~t["longitude"].between(-180, 180),
        "longitude must be between -180 and 180",
        emit,
    )


def _category_rules(t: pd.DataFrame, text: pd.DataFrame, config: RuleConfig, refs: dict, emit: Emit) -> None:
    category = t["category_name"]
    raw = text["product_category_name"]
    applicable = _present(raw)
    unknown = applicable & category.eq(config.lookups.categories.unknown).fillna(False).to_numpy(dtype=bool)
    emit(
        CATEGORY_KNOWN,
        unknown,
        applicable,
        quoted("product_category_name = '", raw, "' is not in data/lookups/categories.json"),
    )
    translated = refs.get(TRANSLATED_NAMES)
    if translated is not None:
        known = applicable & ~unknown
        missing = known & ~category.isin(translated).to_numpy(dtype=bool)
        emit(
            CATEGORY_TRANSLATED,
            missing,
            known,
            quoted("category '", category, "' has no row in the category translation file"),
        )


def _location_rules(t: pd.DataFrame, text: pd.DataFrame, config: RuleConfig, refs: dict, emit: Emit) -> None:
    geo = refs.get(PLACES)
    if geo is None:
        return
    zip_known = t["zip_code_prefix"].isin(geo["zips"]).to_numpy(dtype=bool)
    for column, check, pairs in (
        ("city", CITY_MATCHES_ZIP, geo["city_pairs"]),
        ("state", STATE_MATCHES_ZIP, geo["state_pairs"]),
    ):
        applicable = zip_known & _present(t[column])
        pair = t["zip_code_prefix"].astype(str) + "|" + t[column].astype(str)
        bad = applicable & ~pair.isin(pairs).to_numpy(dtype=bool)
        emit(
            check,
            bad,
            applicable,
            lambda m, column=column: (
                column
                + " '"
                + t[column][m].astype(str)
                + "' does not match zip prefix "
                + t["zip_code_prefix"][m].astype(str)
                + " in the geolocation data"
            ).to_numpy(dtype=object),
        )


RuleFn = Callable[[pd.DataFrame, pd.DataFrame, RuleConfig, dict, Emit], None]
#: The table-specific rule sets a spec names in ``TableSpec.rules``.
RULE_SETS: dict[str, RuleFn] = {
    "order": _order_rules,
    "order_item": _order_item_rules,
    "payment": _payment_rules,
    "review": _review_rules,
    "coordinates": _coordinate_rules,
    "category": _category_rules,
    "location": _location_rules,
}


def table_rules(
    spec: TableSpec, t: pd.DataFrame, text: pd.DataFrame, config: RuleConfig, refs: dict, emit: Emit
) -> None:
    """Validity, consistency, timeliness and accuracy checks of one table (its ``rules``)."""
    for name in spec.rules:
        RULE_SETS[name](t, text, config, refs, emit)
