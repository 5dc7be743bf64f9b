"""Transform one batch of one source table: type, check, quarantine or flag. Never drop a row.

Steps, all on whole columns:

1. trim text, empty -> missing, repair mojibake ("SÃ£o" -> "São"; soft finding);
2. type every column (ids lower-cased 32 hex, money -> integer cents, São Paulo
   wall clock -> UTC, zip prefixes zero-padded, states/statuses/payment types/
   categories mapped through ``data/lookups``, cities folded);
3. evaluate every check of the catalogue (``etl.transform.checks``) on every row;
4. uniqueness of the natural key among rows that pass the other hard checks
   (first wins; across chunks via ``TableState``), then foreign keys;
5. hard failure -> quarantine (first failing hard rule); soft only -> loaded
   with ``dq_flags``; documented imputations set a flag column.

So for every batch: rows read = rows clean + rows quarantined.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from etl import lookups as lk
from etl.olist import ROW_NUMBER, Column, ForeignKey, TableSpec
from etl.quality import Tally
from etl.transform import checks as ck
from etl.transform import shape, text_safety
from etl.transform.columns import (
    KeySet,
    _np_bool,
    combine_hashes,
    hash_ints,
    hash_text,
    matches,
    may_need_trim,
    parse_hex_ids,
    parse_numbers,
    parse_timestamps,
    to_arrow,
)

QUARANTINE_COLUMNS = ["row_number", "category", "rule", "detail", "raw_record"]
FINDING_COLUMNS = ["row_number", "rule", "dimension", "category", "hard", "detail"]


#: Looks up which of the given keys exist outside this batch (e.g. in the warehouse).
KeyLookup = Callable[[ForeignKey, pd.Series], "set[str]"]


@dataclass
class TableState:
    """What must survive from one chunk of a table to the next."""

    seen_keys: KeySet = field(default_factory=KeySet)


@dataclass
class TableResult:
    spec: TableSpec
    clean: pd.DataFrame  # typed, target column names, ready to load
    quarantined: pd.DataFrame  # QUARANTINE_COLUMNS
    rows_read: int
    findings: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FINDING_COLUMNS))
    tally: Tally = field(default_factory=Tally)
    row_numbers: np.ndarray | None = None  # source row of each clean row (before aggregation)
    #: per dimension, (applicable, failed) masks over the *clean* rows, for checks added later
    clean_masks: Mapping = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The one invariant the whole product rests on.
        assert self.rows_read == self.rows_clean + len(self.quarantined), (
            f"{self.spec.name}: {self.rows_read} read != {self.rows_clean} clean "
            f"+ {len(self.quarantined)} quarantined"
        )

    @property
    def rows_clean(self) -> int:
        """Source rows accepted (geolocation: before merging points per zip prefix)."""
        return int(self.clean.attrs.get("source_rows", len(self.clean)))


# --- typing -------------------------------------------------------------------------------


class _Batch:
    """One chunk being checked: its text, typed columns, and the outcomes so far."""

    def __init__(self, spec: TableSpec, raw: pd.DataFrame, config: ck.RuleConfig, timezone: str) -> None:
        self.spec, self.config, self.timezone = spec, config, timezone
        self.rows = np.asarray(raw[ROW_NUMBER], dtype=np.int64)
        self.index = raw.index
        self.outcomes: list[ck.Outcome] = []
        self.hashes: dict[str, np.ndarray] = {}
        self.text = pd.DataFrame(index=raw.index)
        for col in spec.columns:
            original = to_arrow(raw[col.source])
            arr = pc.utf8_trim_whitespace(original) if may_need_trim(original) else original
            if pc.any(pc.equal(pc.binary_length(arr), 0)).as_py():  # blank after trimming -> missing
                arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, arr.type), arr)
            if not pa.types.is_large_string(arr.type):
                arr = arr.cast(pa.large_string())
            self.text[col.source] = pd.Series(pd.arrays.ArrowStringArray(arr), index=raw.index)
        self.typed = pd.DataFrame(index=raw.index)

    def emit(
        self, check: ck.Check, fail: np.ndarray, applicable: np.ndarray, detail: pd.Series | str
    ) -> None:
        self.outcomes.append(
            ck.Outcome(
                check,
                self.config.is_hard(check),
                np.asarray(fail, dtype=bool),
                np.asarray(applicable, dtype=bool),
                detail,
            )
        )

    def hard_so_far(self) -> np.ndarray:
        mask = np.zeros(len(self.rows), dtype=bool)
        for o in self.outcomes:
            if o.hard:
                mask |= o.fail
        return mask


def _repair_encoding(batch: _Batch, col: Column) -> None:
    values = batch.text[col.source]
    suspicious = matches(values, "[ÃÂ]")
    if suspicious.any():
        repaired = lk.map_distinct(values, lk.repair_mojibake)
        changed = suspicious & (repaired != values).fillna(False).to_numpy(dtype=bool)
        batch.text[col.source] = repaired
        batch.emit(
            ck.ENCODING_REPAIRED,
            changed,
            batch.text[col.source].notna().to_numpy(dtype=bool),
            f"{col.source} was mis-encoded (UTF-8 read as Latin-1) and was repaired",
        )


@dataclass
class _Typed:
    """One column's parse: typed values, key hash, and the checks to emit (in order)."""

    target: str
    value: pd.Series
    hashes: np.ndarray | None = None
    emits: list = field(default_factory=list)


#: The largest magnitude a float64 holds as an exact integer.
_EXACT_FLOAT_LIMIT = float(2**53)


def _type_column(batch: _Batch, col: Column) -> _Typed:
    """Parse one column; reads the batch, changes nothing (columns can run in parallel)."""
    emits: list = []
    hashes = None
    text = batch.text[col.source]
    present = text.notna().to_numpy(dtype=bool)
    lookups = batch.config.lookups
    bad_format = np.zeros(len(text), dtype=bool)
    expected = "text"
    if col.kind == "id":
        ids = parse_hex_ids(text)
        value, bad_format, expected = ids.values, ids.bad_format, "32 hex digits"
        hashes = ids.hashes
    elif col.kind in ("int", "float", "money"):
        numbers, bad_format = parse_numbers(text)
        # Past 2**53 a float is no longer a whole number of cents (1e308 cannot be an int64):
        # such a value is a format error of its row, not a crash of the run.
        scale = 100 if col.kind == "money" else 1
        huge = ~np.isnan(numbers) & ~(np.abs(numbers * scale) < _EXACT_FLOAT_LIMIT)
        bad_format = bad_format | huge
        numbers = np.where(huge, np.nan, numbers)
        if col.kind == "int":
            fractional = ~np.isnan(numbers) & (np.mod(numbers, 1) != 0)
            bad_format = bad_format | fractional
            numbers = np.where(fractional, np.nan, numbers)
            value, expected = pd.Series(numbers, index=text.index).astype("Int64"), "a whole number"
            hashes = hash_ints(value)
        elif col.kind == "money":
            value = pd.Series(np.rint(numbers * 100), index=text.index).astype("Int64")
            expected = "an amount like 12.34"
        else:
            value, expected = pd.Series(numbers, index=text.index, dtype="float64"), "a number"
    elif col.kind == "timestamp":
        value, bad_format, bad_value = parse_timestamps(text, batch.timezone)
        expected = "a timestamp YYYY-MM-DD HH:MM:SS"
        emits.append(
            (
                ck.parse_check(col.target),
                bad_value,
                present & ~bad_format,
                ck.quoted(f"{col.source} = '", text, "' is not a real date and time"),
            )
        )
        first, last = ck.plausible_range(batch.config)
        valid = present & ~bad_format & ~bad_value
        implausible = valid & ((value < first) | (value >= last)).fillna(False).to_numpy(dtype=bool)
        emits.append(
            (
                ck.plausible_check(col.target),
                implausible,
                valid,
                ck.quoted(
                    f"{col.source} = '",
                    text,
                    f"' is outside {first:%Y-%m-%d} .. {last:%Y-%m-%d}: not a plausible date for an order",
                ),
            )
        )
    elif col.kind == "zip":
        ok = matches(text, r"^\d{1,5}$")
        bad_format = present & ~ok
        value, expected = text.str.zfill(5).where(ok, pd.NA), "a zip prefix of up to 5 digits"
    elif col.kind == "state":
        value = lookups.states.resolve(text)
        bad_format = present & value.eq(lookups.states.unknown).fillna(False).to_numpy(dtype=bool)
        value = value.where(~bad_format, pd.NA)
        expected = "a Brazilian state code (e.g. SP)"
    elif col.kind == "category":
        value = lookups.categories.resolve(text)
    elif col.target == "order_status":
        value = lookups.order_statuses.resolve(text)
    elif col.target == "payment_type":
        value = lookups.payment_types.resolve(text)
    elif col.target == "city":
        value = lookups.cities.resolve(text)
    else:
        value = text
    if col.kind not in ("text", "category"):
        emits.insert(
            0,
            (
                ck.format_check(col.target),
                bad_format,
                present,
                ck.quoted(f"{col.source} = '", text, f"' is not {expected}"),
            ),
        )
    return _Typed(col.target, value, hashes, emits)


#: Columns of big chunks are parsed on two threads: pyarrow and numpy release the GIL.
_PARALLEL_ROWS = 50_000
_POOL: ThreadPoolExecutor | None = None


def _type_columns(batch: _Batch) -> None:
    global _POOL
    columns = list(batch.spec.columns)
    if len(batch.rows) >= _PARALLEL_ROWS and len(columns) > 1:
        _POOL = _POOL or ThreadPoolExecutor(max_workers=2, thread_name_prefix="parse")
        results = list(_POOL.map(lambda c: _type_column(batch, c), columns))
    else:
        results = [_type_column(batch, c) for c in columns]
    for typed in results:  # emitted in column order: results never depend on threads
        for emit in typed.emits:
            batch.emit(*emit)
        if typed.hashes is not None:
            batch.hashes[typed.target] = typed.hashes
        batch.typed[typed.target] = typed.value


# --- keys ---------------------------------------------------------------------------------


def _key_hash(batch: _Batch, columns: tuple[str, ...]) -> np.ndarray:
    parts = []
    for column in columns:
        if column not in batch.hashes:
            batch.hashes[column] = hash_text(batch.typed[column])
        parts.append(batch.hashes[column])
    return combine_hashes(parts)


def _check_unique(batch: _Batch, state: TableState) -> None:
    key = batch.spec.key
    if not key:
        return
    h = _key_hash(batch, key)
    applicable = (h != 0) & ~batch.hard_so_far()
    candidates = np.where(applicable, h, np.uint64(0))
    dup_here = pd.Series(candidates).duplicated(keep="first").to_numpy() & applicable
    dup_before = applicable & state.seen_keys.contains(h)
    fail = dup_here | dup_before
    detail: ck.Detail = "the same " + ", ".join(key) + " appeared in an earlier chunk of this file"
    if fail.any():  # sentences for the failing rows only (pandas 3 would box 250k strings)
        detail = _duplicate_sentences(batch.rows, candidates, applicable, dup_here, dup_before, key, detail)
    batch.emit(ck.unique_check(key), fail, applicable, detail)
    # distinct (first of each key) and not seen before (else they failed): no search needed
    state.seen_keys.add(h[applicable & ~fail], absent=True)


def _duplicate_sentences(
    rows: np.ndarray,
    candidates: np.ndarray,
    applicable: np.ndarray,
    dup_here: np.ndarray,
    dup_before: np.ndarray,
    key: tuple[str, ...],
    earlier: str,
) -> Callable[[np.ndarray], np.ndarray]:
    """Name the first row of each repeated key (looked up for the repeated keys only)."""
    repeated_here = dup_here & ~dup_before
    involved = np.isin(candidates, candidates[dup_here]) & applicable
    first = pd.Series(rows[involved], index=candidates[involved]).groupby(level=0).first()
    firsts = first.reindex(candidates[repeated_here]).to_numpy()
    same = " (same " + ", ".join(key) + ")"

    def sentences(fail: np.ndarray) -> np.ndarray:
        text = np.full(int(fail.sum()), earlier, dtype=object)
        text[repeated_here[fail]] = [f"duplicate of row {r}{same}" for r in firsts]
        return text

    return sentences


def _check_foreign_keys(batch: _Batch, references: dict, lookup_keys: KeyLookup | None) -> None:
    for fk in batch.spec.foreign_keys:
        (column,), (ref_column,) = fk.columns, fk.ref_columns
        h = batch.hashes.get(column)
        if h is None:
            h = batch.hashes[column] = hash_text(batch.typed[column])
        applicable = h != 0
        ref = references.get(fk.table)
        known = np.zeros(len(h), dtype=bool)
        if isinstance(ref, KeySet):
            known = ref.contains(h)
        elif isinstance(ref, pd.DataFrame):
            known = batch.typed[column].isin(ref[ref_column]).to_numpy(dtype=bool)
        unknown = applicable & ~known
        if lookup_keys is not None and unknown.any():
            values = batch.typed[column]
            found = lookup_keys(fk, values[unknown].drop_duplicates())
            if found:
                known |= values.isin(list(found)).to_numpy(dtype=bool)
        batch.emit(
            ck.fk_check(column, fk.table),
            applicable & ~known,
            applicable,
            ck.quoted(f"{column} = '", batch.typed[column], f"' is not in {fk.table}"),
        )


# --- imputation ---------------------------------------------------------------------------


def _impute_category(batch: _Batch, references: dict) -> dict[str, np.ndarray]:
    """A product without a category gets the lookups' "unknown" one, flagged."""
    t = batch.typed
    missing = t["category_name"].isna().to_numpy(dtype=bool)
    t["category_name"] = t["category_name"].fillna(batch.config.lookups.categories.unknown)
    return {"category_imputed": missing}


def _impute_location(batch: _Batch, references: dict) -> dict[str, np.ndarray]:
    """A missing city or state is the most frequent one of its zip prefix, flagged."""
    t = batch.typed
    geo = references.get(ck.PLACES)
    imputed = np.zeros(len(t), dtype=bool)
    if geo is not None:
        for column in ("city", "state"):
            missing = t[column].isna() & t["zip_code_prefix"].notna()
            fill = t.loc[missing, "zip_code_prefix"].map(geo["mode_" + column])
            t.loc[fill.dropna().index, column] = fill.dropna()
            imputed |= t.index.isin(fill.dropna().index)
    return {"location_imputed": imputed}


#: The imputations a spec names in ``TableSpec.imputation``: each returns flag columns to add.
IMPUTATIONS: dict[str, Callable[[_Batch, dict], dict[str, np.ndarray]]] = {
    "category": _impute_category,
    "location": _impute_location,
}


def _impute(batch: _Batch, references: dict) -> dict[str, np.ndarray]:
    """Documented imputations (docs/data_quality.md); returns flag columns to add."""
    imputation = batch.spec.imputation
    return {} if imputation is None else IMPUTATIONS[imputation](batch, references)


# --- the batch ------------------------------------------------------------------------------


def transform_table(
    spec: TableSpec,
    raw: pd.DataFrame,
    timezone: str = "America/Sao_Paulo",
    reference_keys: dict | None = None,
    lookup_keys: KeyLookup | None = None,
    config: ck.RuleConfig | None = None,
    state: TableState | None = None,
    finish: bool = True,
) -> TableResult:
    """Clean one table (or one chunk of it) read by ``ingest.read``.

    ``reference_keys`` maps a referenced table to its keys from this run (a
    ``KeySet`` or a frame with the key column) plus reference data for the
    accuracy checks; ``lookup_keys`` asks the warehouse for keys not in this run.
    ``state`` carries the keys seen in earlier chunks of the same table.
    """
    config = config or ck.RuleConfig(lookups=lk.load_lookups(), interval_end=pd.Timestamp.now(tz="UTC"))
    state = state or TableState()
    references = reference_keys or {}
    raw, hostile = text_safety.sanitize(spec, raw, config.max_field_chars)
    batch = _Batch(spec, raw, config, timezone)
    for found in hostile:  # first: a NUL or a 10 MB field must not reach any other check
        batch.emit(*found)

    for col in spec.columns:
        if col.kind in ("text", "category"):
            _repair_encoding(batch, col)
    for col in spec.columns:
        if col.required:
            present = batch.text[col.source].notna().to_numpy(dtype=bool)
            batch.emit(
                ck.required(col.target), ~present, np.ones(len(present), dtype=bool), f"{col.source} is empty"
            )
    _type_columns(batch)
    flags = _impute(batch, references)
    ck.table_rules(spec, batch.typed, batch.text, config, references, batch.emit)
    _check_unique(batch, state)
    _check_foreign_keys(batch, references, lookup_keys)
    result = _assemble(batch, raw, flags)
    if finish:
        result.clean = finish_clean(spec, result.clean, references, config)
    return result


def _aggregate_points(clean: pd.DataFrame, references: dict, config: ck.RuleConfig) -> pd.DataFrame:
    return shape.aggregate_geolocation(clean)


def _translate_category(clean: pd.DataFrame, references: dict, config: ck.RuleConfig) -> pd.DataFrame:
    """Add the English category name: the translation file's, else the lookups'."""
    categories = config.lookups.categories
    english = clean["category_name"].map(categories.canonical).astype("string")
    translation = references.get(ck.TRANSLATION)
    if isinstance(translation, pd.DataFrame) and "category_name_english" in translation:
        from_file = clean["category_name"].map(
            translation.drop_duplicates("category_name").set_index("category_name")["category_name_english"]
        )
        # astype: a batch whose categories all miss the file maps to float NaN
        english = from_file.astype("string").fillna(english)
    english = english.where(clean["category_name"] != categories.unknown, categories.unknown)
    position = clean.columns.get_loc("category_name") + 1
    clean.insert(position, "category_name_english", english.astype("string"))
    return clean


#: The shaping a spec names in ``TableSpec.shaping``, applied after the checks.
SHAPINGS: dict[str, Callable[[pd.DataFrame, dict, ck.RuleConfig], pd.DataFrame]] = {
    "aggregate_points": _aggregate_points,
    "translate_category": _translate_category,
}


def finish_clean(
    spec: TableSpec, clean: pd.DataFrame, references: dict, config: ck.RuleConfig
) -> pd.DataFrame:
    """Table-specific shaping after the checks (``TableSpec.shaping``: aggregation, translation)."""
    return clean if spec.shaping is None else SHAPINGS[spec.shaping](clean, references, config)


def _assemble(batch: _Batch, raw: pd.DataFrame, flags: dict[str, np.ndarray]) -> TableResult:
    n = len(batch.rows)
    hard = np.zeros(n, dtype=bool)
    firsts = []  # per failing hard check: the rows it quarantines (first hard failure)
    soft = []
    findings = []
    for o in batch.outcomes:
        if not o.fail.any():
            continue
        o_detail = o.details()  # one per failing row
        if o.hard:
            take = o.fail & ~hard
            firsts.append((o, take, o_detail))
            hard |= o.fail
        else:
            soft.append(o)
        findings.append(
            pd.DataFrame(
                {
                    "row_number": batch.rows[o.fail],
                    "rule": o.check.name,
                    "dimension": o.check.dimension,
                    "category": o.check.category,
                    "hard": o.hard,
                    "detail": o_detail,
                }
            )
        )

    keep = ~hard
    masks = _row_masks(batch)
    clean = batch.typed.loc[keep].reset_index(drop=True)
    if batch.spec.flagged:
        if soft:
            soft_flags = np.full(n, "", dtype=object)
            for o in soft:
                soft_flags = np.where(o.fail, soft_flags + ("," + o.check.name), soft_flags)
            dq = pd.Series(soft_flags[keep], dtype="string").str.lstrip(",").replace("", pd.NA)
            clean["dq_flags"] = dq.array
        else:  # the common case: nothing to flag, no string work
            clean["dq_flags"] = pd.arrays.ArrowStringArray(pa.nulls(int(keep.sum()), pa.large_string()))
    for name, mask in flags.items():
        clean[name] = mask[keep]
    for name in batch.spec.lineage:  # vendor lineage rides along unchecked (absent for Olist files)
        if name in raw.columns:
            clean[name] = raw[name].astype("string").array[keep]
    quarantined = _quarantine_frame(raw, batch, hard, firsts)
    return TableResult(
        batch.spec,
        clean,
        quarantined,
        rows_read=n,
        findings=(
            pd.concat(findings, ignore_index=True) if findings else pd.DataFrame(columns=FINDING_COLUMNS)
        ),
        tally=_tally(batch, masks),
        row_numbers=batch.rows[keep],
        clean_masks=_CleanMasks(masks, keep),
    )


class _CleanMasks(Mapping):
    """Per dimension, (applicable, failed) over the clean rows; filtered when asked for
    (the stage reads one dimension of one table: 16 filters per chunk saved)."""

    def __init__(self, masks: dict[str, tuple[np.ndarray, np.ndarray]], keep: np.ndarray) -> None:
        self._masks, self._keep, self._done = masks, keep, {}

    def __getitem__(self, dimension: str) -> tuple[np.ndarray, np.ndarray]:
        if dimension not in self._done:
            app, fail = self._masks[dimension]
            self._done[dimension] = (app[self._keep], fail[self._keep])
        return self._done[dimension]

    def __iter__(self):
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)


def _quarantine_frame(raw: pd.DataFrame, batch: _Batch, hard: np.ndarray, firsts: list) -> pd.DataFrame:
    """Category, rule and sentence of each quarantined row's first hard failure (built
    for those rows only), with its raw record."""
    if not hard.any():
        return pd.DataFrame(columns=QUARANTINE_COLUMNS)
    m = int(np.count_nonzero(hard))
    category, rule, detail = (np.empty(m, dtype=object) for _ in range(3))
    for o, take, o_detail in firsts:
        at = take[hard]
        category[at], rule[at] = o.check.category, o.check.name
        detail[at] = o_detail if isinstance(o_detail, str) else o_detail[take[o.fail]]
    rows = batch.rows[hard]
    frame = pd.DataFrame(
        {
            "row_number": rows,
            "category": category,
            "rule": rule,
            "detail": pd.Series(detail).astype(str).to_numpy(),
            "raw_record": json_records(raw.loc[hard, batch.spec.source_columns]),
        }
    )
    if len(rows) > 1 and not (rows[1:] > rows[:-1]).all():  # chunks come in row order: usually sorted
        frame = frame.sort_values("row_number")
    return frame.reset_index(drop=True)


_CONTROL = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f]"


def _text(value: str) -> pa.Scalar:
    return pa.scalar(value, pa.large_string())


def json_records(frame: pd.DataFrame) -> np.ndarray:
    """Each row as a JSON object of its text fields (missing -> null), built column-wise.

    Straight on the arrow arrays (one element-wise join for the whole record):
    pandas string operators cost a few milliseconds each even on small frames.
    """
    if frame.empty:
        return np.empty(0, dtype=object)
    parts: list = []
    for i, column in enumerate(frame.columns):
        values = to_arrow(frame[column].astype("string")).cast(pa.large_string())
        if pc.any(pc.match_substring_regex(values, '["\\\\\n\r\t]')).as_py():
            for plain, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
                values = pc.replace_substring(values, plain, escaped)
        piece = pc.fill_null(
            pc.binary_join_element_wise(_text('"'), values, _text('"'), _text("")), _text("null")
        )
        parts += [_text(("{" if i == 0 else ", ") + json.dumps(column, ensure_ascii=False) + ": "), piece]
    joined = pc.binary_join_element_wise(*parts, _text("}"), _text(""))
    records = np.asarray(joined.to_numpy(zero_copy_only=False), dtype=object)
    # Names are json.dumps'ed and \t \n \r escaped above, so a control character left in
    # the record is one of a value: one search over the records instead of one per column.
    rare = _np_bool(pc.match_substring_regex(joined, _CONTROL))
    if rare.any():  # other control characters: let json do the escaping, for these few rows
        sub = frame.loc[rare].astype(object).where(frame.loc[rare].notna(), None)
        records[rare] = [json.dumps(r, ensure_ascii=False) for r in sub.to_dict("records")]
    return records


def _row_masks(batch: _Batch) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per row-counted dimension: did any of its checks apply / fail on the row."""
    n = len(batch.rows)
    by_dim: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for o in batch.outcomes:
        d = o.check.dimension
        if d == "completeness":
            continue
        app, fail = by_dim.get(d, (np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)))
        by_dim[d] = (app | o.applicable, fail | o.fail)
    return by_dim


def _tally(batch: _Batch, masks: dict[str, tuple[np.ndarray, np.ndarray]]) -> Tally:
    tally = Tally()
    for o in batch.outcomes:
        if o.check.dimension == "completeness":  # cells, not rows
            tally.checked["completeness"] += int(np.count_nonzero(o.applicable))
            tally.failed["completeness"] += int(np.count_nonzero(o.fail))
    for d, (app, fail) in masks.items():
        tally.checked[d] += int(np.count_nonzero(app))
        tally.failed[d] += int(np.count_nonzero(fail & app))
    counted = [c.source for c in batch.spec.columns if not c.free_text]
    tally.cells = len(batch.rows) * len(counted)
    tally.null_cells = int(batch.text[counted].isna().to_numpy().sum())
    return tally
