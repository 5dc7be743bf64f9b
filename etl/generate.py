"""``etl generate``: Olist-shaped dirty data with a ground-truth list of every defect.

Clean rows are drawn from the real sample shipped in ``data/sample/olist``
(categories, prices and freight, customer and seller places, status with its
delivery timeline, payment types, review scores and comments), so their
distributions follow the real data. Then known defects are injected at known
rates into disjoint rows, and ``ground_truth.csv`` lists each one:

    file, table, row_number, defect, column, hard, expected_category

``hard`` rows must be quarantined; soft ones loaded and flagged. Rows that
become orphans because their parent was quarantined (an item of a broken
order) are listed too, as ``orphan_cascade``. ``evaluate`` scores a run's
quarantine against the file (precision and recall).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from etl.errors import ConfigError
from etl.olist import (
    CATEGORY_TRANSLATION,
    CUSTOMERS,
    GEOLOCATION,
    ORDER_ITEMS,
    ORDERS,
    PAYMENTS,
    PRODUCTS,
    REVIEWS,
    SELLERS,
)
from etl.settings import SAMPLE_DATA_DIR

TS = "%Y-%m-%d %H:%M:%S"
TRUTH_COLUMNS = ["file", "table", "row_number", "defect", "column", "hard", "expected_category"]

#: defect -> (hard?, quarantine category if hard)
DEFECTS = {
    "missing_required": (True, "MISSING_REQUIRED_FIELD"),
    "bad_zip": (True, "DATA_FORMAT_ERROR"),
    "bad_date_format": (True, "DATA_FORMAT_ERROR"),
    "impossible_date": (True, "DATA_FORMAT_ERROR"),
    "bad_number_format": (True, "DATA_FORMAT_ERROR"),
    "unknown_status": (True, "BUSINESS_RULE_VIOLATION"),
    "unknown_payment_type": (True, "BUSINESS_RULE_VIOLATION"),
    "non_positive_price": (True, "BUSINESS_RULE_VIOLATION"),
    "negative_payment": (True, "BUSINESS_RULE_VIOLATION"),
    "review_score_out_of_range": (True, "BUSINESS_RULE_VIOLATION"),
    "latitude_out_of_range": (True, "BUSINESS_RULE_VIOLATION"),
    "duplicate": (True, "DUPLICATE"),
    "orphan": (True, "REFERENTIAL_INTEGRITY"),
    "orphan_cascade": (True, "REFERENTIAL_INTEGRITY"),
    "category_typo": (False, None),
    "city_typo": (False, None),
    "out_of_order_dates": (False, None),
    "future_date": (False, None),
    "mixed_encoding": (False, None),
    "payment_mismatch": (False, None),
}

#: Which defects each table gets (the dirty rate is split evenly between them).
TABLE_DEFECTS = {
    "dim_customers": ["missing_required", "bad_zip", "city_typo", "mixed_encoding"],
    "dim_sellers": ["bad_zip", "city_typo"],
    "dim_products": ["missing_required", "category_typo", "bad_number_format"],
    "fact_orders": [
        "missing_required",
        "unknown_status",
        "bad_date_format",
        "impossible_date",
        "out_of_order_dates",
        "future_date",
        "duplicate",
    ],
    "fact_order_items": [
        "non_positive_price",
        "orphan",
        "duplicate",
        "missing_required",
        "bad_number_format",
    ],
    "fact_payments": ["negative_payment", "unknown_payment_type", "payment_mismatch", "duplicate"],
    "fact_reviews": ["review_score_out_of_range", "missing_required", "duplicate", "mixed_encoding"],
    "dim_geolocation": ["latitude_out_of_range"],
}


@dataclass
class _Truth:
    rows: list[dict] = field(default_factory=list)

    def add(self, spec, index: np.ndarray, defect: str, column: str) -> None:
        hard, category = DEFECTS[defect]
        for i in np.asarray(index, dtype=np.int64):
            self.rows.append(
                {
                    "file": spec.file_stem + ".csv",
                    "table": spec.name,
                    "row_number": int(i) + 2,
                    "defect": defect,
                    "column": column,
                    "hard": hard,
                    "expected_category": category or "",
                }
            )


def _hex_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    text = rng.bytes(16 * n).hex()
    return np.array([text[i : i + 32] for i in range(0, 32 * n, 32)], dtype=object)


def _read_sample(directory: Path, spec) -> pd.DataFrame:
    return pd.read_csv(
        directory / f"{spec.file_stem}.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig"
    )


def _mojibake(text: str) -> str:
    return text.encode("utf-8").decode("latin-1")


def _typo(values: pd.Series, rng: np.random.Generator) -> pd.Series:
    """Swap two neighbouring letters or double one: 'sao paulo' -> 'sao pualo'."""
    out = []
    for text in values:
        if len(text) < 4:
            out.append(text + "x")
            continue
        i = int(rng.integers(1, len(text) - 2))
        out.append(
            text[:i] + text[i + 1] + text[i] + text[i + 2 :]
            if text[i] != text[i + 1]
            else text[:i] + "qz" + text[i + 1 :]
        )
    return pd.Series(out, index=values.index)


def _fmt_cents(cents: np.ndarray) -> np.ndarray:
    return np.array([f"{c / 100:.2f}" for c in cents], dtype=object)


def generate(
    orders: int, dirty_rate: float, seed: int, out: Path, sample_dir: Path = SAMPLE_DATA_DIR
) -> dict:
    """Write the nine CSVs and ground_truth.csv into ``out``; return a summary."""
    if orders < 10:
        raise ConfigError("--orders must be at least 10")
    if not 0 <= dirty_rate <= 0.5:
        raise ConfigError("--dirty-rate must be between 0 and 0.5 (a share of rows, e.g. 0.05)")
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    real = {
        spec.name: _read_sample(sample_dir, spec)
        for spec in (
            CUSTOMERS,
            SELLERS,
            PRODUCTS,
            ORDERS,
            ORDER_ITEMS,
            PAYMENTS,
            REVIEWS,
            CATEGORY_TRANSLATION,
        )
    }
    frames = _clean_frames(orders, rng, real)
    truth = _Truth()
    _inject(frames, dirty_rate, rng, truth)
    for spec, frame in frames.items():
        frame.to_csv(out / f"{spec.file_stem}.csv", index=False)
    truth_frame = pd.DataFrame(truth.rows, columns=TRUTH_COLUMNS).sort_values(["table", "row_number"])
    truth_frame.to_csv(out / "ground_truth.csv", index=False)
    summary = {
        "orders": orders,
        "dirty_rate": dirty_rate,
        "seed": seed,
        "rows": {spec.name: len(frame) for spec, frame in frames.items()},
        "defects": truth_frame.groupby(["table", "defect"])
        .size()
        .rename("n")
        .reset_index()
        .to_dict("records"),
        "hard_rows": int(
            truth_frame.loc[truth_frame["hard"]].drop_duplicates(["table", "row_number"]).shape[0]
        ),
    }
    (out / "ground_truth.json").write_text(json.dumps(summary, indent=2))
    return summary


# --- clean data ---------------------------------------------------------------------------


def _clean_frames(n_orders: int, rng: np.random.Generator, real: dict) -> dict:
    pick = lambda frame, n: frame.iloc[rng.integers(0, len(frame), n)].reset_index(drop=True)  # noqa: E731

    places = pick(real["dim_customers"], n_orders)
    customers = pd.DataFrame(
        {
            "customer_id": _hex_ids(rng, n_orders),
            "customer_unique_id": _hex_ids(rng, n_orders),
            "customer_zip_code_prefix": places["customer_zip_code_prefix"],
            "customer_city": places["customer_city"],
            "customer_state": places["customer_state"],
        }
    )
    n_sellers = max(20, n_orders // 35)
    seller_places = pick(real["dim_sellers"], n_sellers)
    sellers = pd.DataFrame(
        {
            "seller_id": _hex_ids(rng, n_sellers),
            "seller_zip_code_prefix": seller_places["seller_zip_code_prefix"],
            "seller_city": seller_places["seller_city"],
            "seller_state": seller_places["seller_state"],
        }
    )
    n_products = max(50, n_orders // 3)
    products = pick(real["dim_products"], n_products)
    products["product_id"] = _hex_ids(rng, n_products)

    # Order timelines: real status + real offsets from the purchase time, on new purchase times.
    ro = real["fact_orders"]
    cols = [
        "order_approved_at",
        "order_delivered_carrier_date",
        "order_delivered_customer_date",
        "order_estimated_delivery_date",
    ]
    base = pd.to_datetime(ro["order_purchase_timestamp"])
    offsets = pd.DataFrame({c: pd.to_datetime(ro[c].replace("", None)) - base for c in cols})
    consistent = (offsets["order_approved_at"].fillna(pd.Timedelta(0)) >= pd.Timedelta(0)) & ~(
        offsets["order_delivered_customer_date"] < offsets["order_delivered_carrier_date"]
    )
    profiles = pd.concat([ro[["order_status"]], offsets], axis=1)[consistent.to_numpy()]
    prof = pick(profiles, n_orders)
    start, end = base.min().value // 10**9, base.max().value // 10**9
    purchased = pd.to_datetime(rng.integers(start, end, n_orders), unit="s")
    orders = pd.DataFrame(
        {
            "order_id": _hex_ids(rng, n_orders),
            "customer_id": customers["customer_id"],
            "order_status": prof["order_status"],
            "order_purchase_timestamp": purchased.strftime(TS),
        }
    )
    for c in cols:
        ts = purchased + pd.to_timedelta(prof[c].to_numpy())
        if c == "order_estimated_delivery_date":
            ts = ts.normalize()
        orders[c] = pd.Series(ts.strftime(TS)).where(prof[c].notna().to_numpy(), "")

    # Items: the real number of items per order, real price/freight pairs.
    counts = real["fact_order_items"].groupby("order_id").size().to_numpy()
    per_order = counts[rng.integers(0, len(counts), n_orders)]
    order_idx = np.repeat(np.arange(n_orders), per_order)
    item_no = np.concatenate([np.arange(1, k + 1) for k in per_order])
    money = pick(real["fact_order_items"][["price", "freight_value"]], len(order_idx))
    items = pd.DataFrame(
        {
            "order_id": orders["order_id"].to_numpy()[order_idx],
            "order_item_id": item_no.astype(str),
            "product_id": products["product_id"].to_numpy()[rng.integers(0, n_products, len(order_idx))],
            "seller_id": sellers["seller_id"].to_numpy()[rng.integers(0, n_sellers, len(order_idx))],
            "shipping_limit_date": (
                purchased[order_idx]
                + pd.to_timedelta(rng.integers(2 * 86400, 9 * 86400, len(order_idx)), unit="s")
            ).strftime(TS),
            "price": money["price"],
            "freight_value": money["freight_value"],
        }
    )
    cents = np.rint(items["price"].astype(float) * 100) + np.rint(items["freight_value"].astype(float) * 100)
    order_cents = np.bincount(order_idx, weights=cents, minlength=n_orders).astype(np.int64)

    rp = pick(real["fact_payments"][["payment_type", "payment_installments"]], n_orders)
    payments = pd.DataFrame(
        {
            "order_id": orders["order_id"],
            "payment_sequential": "1",
            "payment_type": rp["payment_type"].replace("not_defined", "voucher"),
            "payment_installments": rp["payment_installments"],
            "payment_value": _fmt_cents(order_cents),
        }
    )

    rr = pick(real["fact_reviews"], n_orders)
    created = (purchased + pd.to_timedelta(rng.integers(5, 25, n_orders), unit="D")).normalize()
    reviews = pd.DataFrame(
        {
            "review_id": _hex_ids(rng, n_orders),
            "order_id": orders["order_id"],
            "review_score": rr["review_score"],
            "review_comment_title": rr["review_comment_title"],
            "review_comment_message": rr["review_comment_message"],
            "review_creation_date": created.strftime(TS),
            "review_answer_timestamp": (
                created + pd.to_timedelta(rng.integers(3600, 5 * 86400, n_orders), unit="s")
            ).strftime(TS),
        }
    )

    # Geolocation: a point or two for every place used, so places agree with it.
    used = pd.concat(
        [
            customers.set_axis(["a", "b", "zip", "city", "state"], axis=1)[["zip", "city", "state"]],
            sellers.set_axis(["a", "zip", "city", "state"], axis=1)[["zip", "city", "state"]],
        ]
    ).drop_duplicates("zip")
    points = used.loc[used.index.repeat(rng.integers(1, 3, len(used)))].reset_index(drop=True)
    geo = pd.DataFrame(
        {
            "geolocation_zip_code_prefix": points["zip"],
            "geolocation_lat": np.round(rng.uniform(-33, 5, len(points)), 6).astype(str),
            "geolocation_lng": np.round(rng.uniform(-73, -35, len(points)), 6).astype(str),
            "geolocation_city": points["city"],
            "geolocation_state": points["state"],
        }
    )
    return {
        CATEGORY_TRANSLATION: real["category_translation"],
        GEOLOCATION: geo,
        CUSTOMERS: customers,
        PRODUCTS: products[real["dim_products"].columns],
        SELLERS: sellers,
        ORDERS: orders,
        ORDER_ITEMS: items,
        PAYMENTS: payments,
        REVIEWS: reviews,
    }


# --- defects ------------------------------------------------------------------------------


def _choose(rng: np.random.Generator, eligible: np.ndarray, n: int) -> np.ndarray:
    n = min(n, len(eligible))
    return np.sort(rng.choice(eligible, n, replace=False)) if n else np.empty(0, dtype=np.int64)


def _inject(frames: dict, rate: float, rng: np.random.Generator, truth: _Truth) -> None:
    """Parents first, so the orphans they cause can be listed as cascades."""
    by_name = {spec.name: spec for spec in frames}
    broken_keys: dict[str, set] = {}
    for name in (
        "dim_geolocation",
        "dim_customers",
        "dim_sellers",
        "dim_products",
        "fact_orders",
        "fact_order_items",
        "fact_payments",
        "fact_reviews",
    ):
        spec = by_name[name]
        frame = frames[spec]
        victims = _cascade(spec, frame, broken_keys)
        if victims.any():
            truth.add(spec, np.flatnonzero(victims), "orphan_cascade", "")
        kinds = TABLE_DEFECTS[name]
        per_kind = int(round(rate * len(frame) / len(kinds)))
        eligible = np.flatnonzero(~victims)
        chosen = _choose(rng, eligible, per_kind * len(kinds))
        rng.shuffle(chosen)
        groups = np.array_split(chosen, len(kinds))
        extra = []
        broken = np.zeros(len(frame), dtype=bool)
        for kind, rows in zip(kinds, groups):
            rows = np.sort(rows)
            if kind == "duplicate":
                extra.append(frame.iloc[rows])
                continue
            column = _apply(kind, spec, frame, rows, rng, frames)
            truth.add(spec, rows, kind, column)
            if DEFECTS[kind][0]:
                broken[rows] = True
        key_col = {
            "dim_customers": "customer_id",
            "dim_products": "product_id",
            "dim_sellers": "seller_id",
            "fact_orders": "order_id",
        }.get(name)
        if key_col:
            broken |= victims  # an orphaned order breaks its items, payments and reviews too
            originals = frames.setdefault("_originals", {}).get(name)
            broken_keys[name] = (
                set(originals[broken]) if originals is not None else set(frame[key_col][broken])
            )
        if extra:
            dups = pd.concat(extra)
            start = len(frame)
            frames[spec] = pd.concat([frame, dups], ignore_index=True)
            truth.add(spec, np.arange(start, start + len(dups)), "duplicate", "")
    frames.pop("_originals", None)


def _cascade(spec, frame: pd.DataFrame, broken_keys: dict[str, set]) -> np.ndarray:
    """Rows whose parent row was broken by a hard defect (they will be orphans)."""
    victims = np.zeros(len(frame), dtype=bool)
    for fk in spec.foreign_keys:
        (column,) = fk.columns
        source_col = next(c.source for c in spec.columns if c.target == column)
        bad = broken_keys.get(fk.table)
        if bad:
            victims |= frame[source_col].isin(bad).to_numpy()
    return victims


def _apply(
    kind: str, spec, frame: pd.DataFrame, rows: np.ndarray, rng: np.random.Generator, frames: dict
) -> str:
    """Inject one defect into ``rows`` of ``frame`` (in place); return the column touched."""
    name = spec.name
    key_col = {
        "dim_customers": "customer_id",
        "dim_products": "product_id",
        "dim_sellers": "seller_id",
        "fact_orders": "order_id",
    }.get(name)
    if key_col:  # remember the ids as generated: children still point at them
        frames.setdefault("_originals", {}).setdefault(name, frame[key_col].copy())
    if kind == "missing_required":
        column = {
            "dim_customers": "customer_id",
            "dim_products": "product_id",
            "fact_orders": "order_id",
            "fact_order_items": "product_id",
            "fact_reviews": "review_id",
        }[name]
        frame.loc[rows, column] = ""
    elif kind == "bad_zip":
        column = next(c.source for c in spec.columns if c.kind == "zip")
        frame.loc[rows, column] = np.where(rng.random(len(rows)) < 0.5, "12a45", "1234567")
    elif kind == "city_typo":
        column = next(c.source for c in spec.columns if c.target == "city")
        frame.loc[rows, column] = _typo(frame.loc[rows, column], rng).to_numpy()
    elif kind == "mixed_encoding":
        column = "customer_city" if name == "dim_customers" else "review_comment_message"
        text = frame.loc[rows, column]
        if name == "dim_customers":  # an accented spelling of the same city, mis-encoded
            for plain, accented in (("a", "á"), ("o", "ó"), ("e", "é")):
                text = text.where(
                    text.str.contains("[áóé]"), text.str.replace(plain, accented, n=1, regex=False)
                )
        else:
            text = text.where(text != "", "ótimo")
        frame.loc[rows, column] = text.map(_mojibake).to_numpy()
    elif kind == "category_typo":
        column = "product_category_name"
        cats = frame.loc[rows, column].where(frame.loc[rows, column] != "", "beleza_saude")
        frame.loc[rows, column] = _typo(cats, rng).map(lambda s: s + "zq").to_numpy()
    elif kind == "bad_number_format":
        column = "product_weight_g" if name == "dim_products" else "price"
        values = frame.loc[rows, column].where(frame.loc[rows, column] != "", "100")
        frame.loc[rows, column] = (
            values.str.replace(".", ",", regex=False).where(values.str.contains(r"\."), values + ",5")
        ).to_numpy()
    elif kind == "unknown_status":
        column = "order_status"
        frame.loc[rows, column] = "teleported"
    elif kind == "bad_date_format":
        column = "order_purchase_timestamp"
        ts = pd.to_datetime(frame.loc[rows, column])
        frame.loc[rows, column] = ts.dt.strftime("%d/%m/%Y %H:%M").to_numpy()
    elif kind == "impossible_date":
        column = "order_purchase_timestamp"
        frame.loc[rows, column] = (
            frame.loc[rows, column].str.slice(0, 5) + "02-30" + frame.loc[rows, column].str.slice(10)
        )
    elif kind == "out_of_order_dates":
        column = "order_approved_at"
        purchased = pd.to_datetime(frame.loc[rows, "order_purchase_timestamp"])
        frame.loc[rows, column] = (purchased - pd.Timedelta(days=2)).dt.strftime(TS).to_numpy()
    elif kind == "future_date":
        column = "order_purchase_timestamp"
        purchased = pd.to_datetime(frame.loc[rows, column])
        frame.loc[rows, column] = (purchased + pd.DateOffset(years=30)).dt.strftime(TS).to_numpy()
        for c in (
            "order_approved_at",
            "order_delivered_carrier_date",
            "order_delivered_customer_date",
            "order_estimated_delivery_date",
        ):
            frame.loc[rows, c] = ""
    elif kind == "non_positive_price":
        column = "price"
        frame.loc[rows, column] = np.where(rng.random(len(rows)) < 0.5, "0.00", "-" + frame.loc[rows, column])
    elif kind == "orphan":
        column = "order_id"
        frame.loc[rows, column] = _hex_ids(rng, len(rows))
    elif kind == "negative_payment":
        column = "payment_value"
        frame.loc[rows, column] = "-" + frame.loc[rows, column].str.lstrip("-")
        frame.loc[rows[frame.loc[rows, column].to_numpy() == "-0.00"], column] = "-1.00"
    elif kind == "unknown_payment_type":
        column = "payment_type"
        frame.loc[rows, column] = "barter"
    elif kind == "payment_mismatch":
        column = "payment_value"
        frame.loc[rows, column] = _fmt_cents(
            np.rint(frame.loc[rows, column].astype(float) * 100 + 500).astype(int)
        )
    elif kind == "review_score_out_of_range":
        column = "review_score"
        frame.loc[rows, column] = np.where(rng.random(len(rows)) < 0.5, "0", "6")
    elif kind == "latitude_out_of_range":
        column = "geolocation_lat"
        frame.loc[rows, column] = "123.456"
    else:  # pragma: no cover - the table above and this function are kept in step
        raise ValueError(kind)
    return column


# --- evaluation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    expected: int
    quarantined: int
    true_positives: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.quarantined if self.quarantined else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.expected if self.expected else 1.0


def evaluate(truth: pd.DataFrame, quarantined: pd.DataFrame) -> Evaluation:
    """Compare quarantined (table, row_number) pairs with the hard rows of the ground truth."""
    expected = set(
        map(
            tuple,
            truth.loc[truth["hard"].astype(bool), ["table", "row_number"]]
            .drop_duplicates()
            .itertuples(index=False),
        )
    )
    got = set(map(tuple, quarantined[["table", "row_number"]].drop_duplicates().itertuples(index=False)))
    return Evaluation(len(expected), len(got), len(expected & got))
