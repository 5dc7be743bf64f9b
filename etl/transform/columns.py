"""Whole-column parsing and key hashing, fast enough for 10M rows.

Everything here works on entire columns through pyarrow compute or numpy.
Each parser returns the typed values (missing where the text was invalid)
plus two masks so the checks can tell the dimensions apart:

* ``bad_format`` — the text does not have the expected *shape* (conformity):
  ``02/10/2017``, ``12,50``, ``ab-12``, a 31-character id;
* ``bad_value`` — the shape is right but the value does not exist (validity):
  ``2017-02-30 10:00:00``.

Keys are compared as 64-bit hashes (``KeySet``) so that uniqueness and foreign
keys can be checked across chunks without keeping millions of strings in
memory. Two different 32-hex ids collide with probability 2^-64 per pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xC2B2AE3D27D4EB4F)
_HEX_BYTES = np.frombuffer(b"0123456789abcdef", np.uint8).astype(np.uint16)
#: 1 where two bytes (read as one little-endian uint16) are both lower-case hex digits.
_HEX_PAIRS = np.zeros(1 << 16, dtype=np.uint8)
_HEX_PAIRS[(_HEX_BYTES[:, None] | (_HEX_BYTES[None, :] << 8)).ravel()] = 1
_ALL_ONES = np.uint64(0x0101010101010101)

_TS_SHAPE = r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2})?$"
_NUMBER_SHAPE = r"^[+-]?(\d+(\.\d*)?|\.\d+)$"


def to_arrow(values: pd.Series) -> pa.Array:
    """The column as one contiguous arrow string array (no copy for arrow-backed strings)."""
    arr = (
        pa.array(values, from_pandas=True)
        if not hasattr(values.array, "_pa_array")
        else values.array._pa_array
    )
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.large_string())
    return arr


def _np_bool(arr: pa.Array | pa.ChunkedArray, fill: bool = False) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, fill).to_numpy(zero_copy_only=False), dtype=bool)


def string_parts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, data bytes) of a string array, zero-copy, offsets relative to the data."""
    offsets_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    buffers = arr.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offsets_type)[arr.offset : arr.offset + len(arr) + 1]
    if buffers[2] is None:
        return offsets - offsets[0], np.empty(0, dtype=np.uint8)
    data = np.frombuffer(buffers[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return (offsets - offsets[0] if offsets[0] else offsets), data


#: Bytes a plain decimal number is made of: digits, sign, point.
_NUMBER_BYTES = np.zeros(256, dtype=bool)
_NUMBER_BYTES[np.frombuffer(b"0123456789.+-", np.uint8)] = True


def only_number_bytes(arr: pa.Array) -> bool:
    """True if every byte of the column (nulls included) is a digit, sign or point."""
    return bool(_NUMBER_BYTES[string_parts(arr)[1]].all())


def may_need_trim(arr: pa.Array) -> bool:
    """False when no value starts or ends with a byte that could be whitespace.

    Checks two bytes per value instead of rewriting the column: generated and
    exported files rarely carry padding, so trimming is usually a no-op copy.
    "Could be" is generous (any byte below '!' or above 0x7f: blanks, control
    characters, any non-ASCII character), since answering yes only means
    taking the exact path: (b - 33) mod 256 >= 95 is one subtraction and a max.
    """
    offsets, data = string_parts(arr)
    if not len(data):
        return False
    # An empty value reads a neighbour's byte instead ('clip' keeps -1 and len in range):
    # harmless, it can only say "maybe".
    for edge in (offsets[:-1], offsets[1:] - 1):
        if np.subtract(np.take(data, edge, mode="clip"), np.uint8(33)).max() >= 95:
            return True
    return False


def matches(values: pd.Series, pattern: str) -> np.ndarray:
    """Regex full match per value (RE2 via pyarrow); missing values give False."""
    return _np_bool(pc.match_substring_regex(to_arrow(values), pattern))


# --- ids --------------------------------------------------------------------------------


@dataclass
class ParsedIds:
    values: pd.Series  # lower-cased text
    bad_format: np.ndarray  # present but not 32 hex digits
    hashes: np.ndarray  # uint64 per row, 0 where missing or bad


#: Rows per block of the hex check: np.take turns its uint16 indices into a
#: 64-bit copy, which for a whole 250k-row column is a fresh 32 MB (page faults
#: cost more than the lookups); per 16k rows it is 2 MB the allocator reuses.
_HEX_BLOCK = 1 << 14


def _not_hex_rows(data: np.ndarray) -> np.ndarray:
    """Per row of an (m, 32) byte block: not all 32 bytes are lower-case hex digits."""
    out = np.empty(len(data), dtype=bool)
    for start in range(0, len(data), _HEX_BLOCK):
        block = data[start : start + _HEX_BLOCK]
        pair_ok = np.take(_HEX_PAIRS, block.view(np.uint16)).view(np.uint64)  # (b, 2): 8 pairs a word
        np.not_equal(pair_ok[:, 0] & pair_ok[:, 1], _ALL_ONES, out=out[start : start + _HEX_BLOCK])
    return out


def parse_hex_ids(values: pd.Series) -> ParsedIds:
    """32-hex ids: lower-cased, checked and hashed in one pass over their bytes.

    The bytes of the 32-character values are one contiguous block: two bytes
    at a time go through a 64K lookup table (valid hex pair or not), and the
    four 8-byte words of each id are mixed into its hash.
    """
    arr = pc.ascii_lower(to_arrow(values))
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    present = _np_bool(pc.is_valid(arr))
    right_length = present & (
        np.asarray(pc.fill_null(pc.binary_length(arr), 0).to_numpy(zero_copy_only=False)) == 32
    )
    hashes = np.zeros(n, dtype=np.uint64)
    bad = present & ~right_length
    if right_length.any():
        sub = arr if right_length.all() else pc.filter(arr, pa.array(right_length))
        offsets_type = np.int64 if pa.types.is_large_string(sub.type) else np.int32
        offsets = np.frombuffer(sub.buffers()[1], dtype=offsets_type)[sub.offset : sub.offset + len(sub) + 1]
        data = np.ascontiguousarray(
            np.frombuffer(sub.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
        ).reshape(-1, 32)
        not_hex = _not_hex_rows(data)
        words = data.view(np.uint64)  # (m, 4)
        sub_hash = ((words[:, 0] * _K1 ^ words[:, 1]) * _K1 ^ words[:, 2]) * _K1 ^ words[:, 3]
        sub_hash[sub_hash == 0] = 1  # 0 is reserved for "no key"
        sub_hash[not_hex] = 0
        if len(sub_hash) == n:  # every value 32 characters: no scatter
            hashes, bad = sub_hash, not_hex
        else:
            idx = np.flatnonzero(right_length)
            bad[idx[not_hex]] = True
            hashes[idx] = sub_hash
    lowered = (
        pd.Series(pd.arrays.ArrowStringArray(arr.cast(pa.large_string())), index=values.index)
        if n
        else values
    )
    return ParsedIds(lowered, bad, hashes)


def hash_text(values: pd.Series) -> np.ndarray:
    """64-bit hashes of arbitrary text keys (small tables: category names)."""
    filled = values.astype("string").fillna("\x00<NA>").to_numpy(dtype=object)
    h = pd.util.hash_array(filled, categorize=True).astype(np.uint64)
    h[h == 0] = 1
    h[values.isna().to_numpy()] = 0
    return h


def hash_ints(values: pd.Series) -> np.ndarray:
    x = values.fillna(0).to_numpy(dtype=np.int64).view(np.uint64)
    return (x + np.uint64(1)) * _K2 ^ (x >> np.uint64(29))


def combine_hashes(parts: list[np.ndarray]) -> np.ndarray:
    """One hash per row for a composite key; 0 where any part is missing."""
    combined = parts[0].copy()
    missing = parts[0] == 0
    for part in parts[1:]:
        combined = combined * _K2 ^ part
        missing |= part == 0
    combined[combined == 0] = 1
    combined[missing] = 0
    return combined


class KeySet:
    """A set of 64-bit key hashes (0 = no key) that holds millions of keys cheaply.

    Adding: each batch of new keys becomes a sorted run; runs of equal size
    are merged (a binary counter), so adding a chunk costs sorting the chunk,
    not copying the whole set.

    Membership, the hot part of uniqueness and foreign-key checks, avoids
    binary search over tens of megabytes (one cache miss per step):

    * a byte map indexed by the top bits of the hash (4-8 bytes per key) says
      "certainly absent" with one memory access; only the few probes it
      passes are searched in the runs. This suits uniqueness, where almost
      every probe is a new key.
    * once the set stops changing (asked twice without an add in between, as
      a referenced table is for every chunk of the table pointing at it), a
      linear-probing hash table of its sorted keys answers exactly with one or
      two accesses per probe. This suits foreign keys, where almost every
      probe is present.
    """

    _SMALL = 1 << 16  # below this, no byte map: runs are searched directly (they fit in cache)
    _SPARSE_BITS = 19  # hash tables of small sets get up to 2^19 slots (4 MB)

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []
        self._size = 0
        self._filter: np.ndarray | None = None
        self._filter_shift = np.uint64(0)
        self._table: np.ndarray | None = None
        self._table_shift = np.uint64(0)
        self._probes_since_add = 0

    def __len__(self) -> int:
        return self._size

    @property
    def hashes(self) -> np.ndarray:
        """All keys, sorted (merges the runs into one)."""
        if len(self.runs) > 1:
            merged = np.concatenate(self.runs)
            merged.sort(kind="stable")
            self.runs = [merged]
        return self.runs[0] if self.runs else np.empty(0, dtype=np.uint64)

    def add(self, new: np.ndarray, absent: bool = False) -> None:
        """Add keys (0s ignored). ``absent=True`` promises they are distinct and not in
        the set yet (uniqueness has just checked exactly that): no membership search."""
        new = np.sort(new[new != 0])
        if not absent:
            if len(new) > 1 and (repeats := new[1:] == new[:-1]).any():
                new = new[np.concatenate(([True], ~repeats))]
            if self._size and len(new):
                new = new[~self._member(new)]
        if not len(new):
            return
        self.runs.append(new)
        self._size += len(new)
        while len(self.runs) > 1 and len(self.runs[-2]) <= len(self.runs[-1]):
            last, before = self.runs.pop(), self.runs.pop()
            merged = np.concatenate([before, last])
            merged.sort(kind="stable")  # two sorted runs: linear time
            self.runs.append(merged)
        self._table = None
        self._probes_since_add = 0
        self._update_filter(new)

    def contains(self, h: np.ndarray) -> np.ndarray:
        if not self._size or not len(h):
            return np.zeros(len(h), dtype=bool)
        self._probes_since_add += 1
        if self._table is None and self._probes_since_add >= 2:
            self._build_table()
        if self._table is not None:
            return self._table_lookup(h)
        return self._member(h)

    # -- byte map + runs ------------------------------------------------------------------

    def _update_filter(self, new: np.ndarray) -> None:
        """4-8 bytes per key: memory matters at 10 M keys, and a probe passed by
        mistake (at most 1 - e^-1/4, about 22 %) only costs a binary search."""
        if self._size < self._SMALL:
            return
        if self._filter is None or len(self._filter) < 4 * self._size:
            bits = int(np.ceil(np.log2(4 * self._size)))
            self._filter = None  # free the old map before the new one
            self._filter = np.zeros(1 << bits, dtype=np.bool_)
            self._filter_shift = np.uint64(64 - bits)
            for run in self.runs:
                self._filter[run >> self._filter_shift] = True
        else:
            self._filter[new >> self._filter_shift] = True

    def _member(self, h: np.ndarray) -> np.ndarray:
        found = np.zeros(len(h), dtype=bool)
        candidates = (
            np.arange(len(h))
            if self._filter is None
            else np.flatnonzero(self._filter[h >> self._filter_shift])
        )
        if not len(candidates):
            return found
        order = np.argsort(h[candidates])  # sorted probes walk each run in order
        probes = h[candidates][order]
        hit = np.zeros(len(probes), dtype=bool)
        for run in self.runs:
            pos = np.searchsorted(run, probes)
            pos[pos == len(run)] = 0
            hit |= run[pos] == probes
        found[candidates[order]] = hit
        return found

    # -- hash table of a set that stopped changing ----------------------------------------

    def _build_table(self) -> None:
        """Linear probing over the sorted keys: key i lands at i + max(slot_j - j, j <= i).

        Slots are the top bits of the hash, so sorted keys have non-decreasing
        slots and every cluster is in increasing order: a probe stops at an
        empty slot or a larger key. At most half the slots are used; a small
        set gets up to 8x more slots (at most 2^``_SPARSE_BITS``, so it stays
        in cache), which leaves almost every probe answered by its first slot.
        """
        keys = self.hashes
        bits = max(int(np.ceil(np.log2(2 * len(keys)))), 1)
        bits = max(bits, min(bits + 3, self._SPARSE_BITS))
        shift = np.uint64(64 - bits)
        i = np.arange(len(keys), dtype=np.int64)
        positions = (keys >> shift).view(np.int64)  # < 2^bits; in place from here (7 M keys: 57 MB a copy)
        positions -= i
        np.maximum.accumulate(positions, out=positions)
        positions += i
        del i
        table = np.zeros(max(int(positions[-1]) + 2, (1 << bits) + 1), dtype=np.uint64)  # ends empty
        table[positions] = keys
        self._table, self._table_shift = table, shift

    def _table_lookup(self, h: np.ndarray) -> np.ndarray:
        table = self._table
        slot = (h >> self._table_shift).astype(np.intp)
        value = table[slot]  # first slot for every probe, no index arrays
        found = (value == h) & (value != 0)
        active = np.flatnonzero((value < h) & (value != 0))
        step = 1
        while len(active):  # the few probes that must walk their cluster
            probes = h[active]
            value = table[slot[active] + step]
            found[active[(value == probes) & (value != 0)]] = True
            active = active[(value < probes) & (value != 0)]
            step += 1
        return found


# --- numbers ----------------------------------------------------------------------------


def parse_numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(float64 with NaN for missing/invalid, bad_format mask). Fast path: arrow cast."""
    arr = to_arrow(values)
    present = _np_bool(pc.is_valid(arr))
    try:  # fast path: the whole column casts and every value has only digits, sign and point
        numbers = np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        if only_number_bytes(arr):  # one table lookup over the bytes, no regex
            return numbers, np.zeros(len(numbers), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    shaped = _np_bool(pc.match_substring_regex(arr, _NUMBER_SHAPE))
    bad = present & ~shaped
    if bad.any():
        arr = pc.if_else(pa.array(shaped), arr, pa.scalar(None, arr.type))
    numbers = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(numbers, dtype=np.float64), bad


# --- timestamps -------------------------------------------------------------------------


def parse_timestamps(values: pd.Series, timezone: str) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Local wall-clock text -> UTC timestamps, plus (bad_format, bad_value) masks.

    ``YYYY-MM-DD HH:MM:SS`` or ``YYYY-MM-DD``; anything else is a format error,
    a right-shaped but impossible date (Feb 30th) a validity error. Brazil had
    daylight saving until 2019: a repeated autumn hour is read as standard
    time, a time in the skipped spring hour moves forward by that hour.
    """
    arr = to_arrow(values)
    present = _np_bool(pc.is_valid(arr))
    fast = _iso_seconds(arr, present)
    if fast is not None:  # every value a real 'YYYY-MM-DD HH:MM:SS': no strptime, nothing to flag
        nothing = np.zeros(len(arr), dtype=bool)
        return _to_utc(fast, values.index, timezone), nothing, nothing
    full = pc.strptime(arr, format="%Y-%m-%d %H:%M:%S", unit="s", error_is_null=True)
    parsed_full = _np_bool(pc.is_valid(full))
    length = np.asarray(pc.fill_null(pc.binary_length(arr), 0).to_numpy(zero_copy_only=False))
    # A 19-character value strptime accepts has exactly the ISO shape; only the
    # others need the (slower) regex to tell a format error from an impossible date.
    shaped = parsed_full & (length == 19)
    rest = present & ~shaped
    if rest.any():
        shaped |= rest & _np_bool(pc.match_substring_regex(arr, _TS_SHAPE))
    parsed = full
    if (present & ~parsed_full).any():
        date_only = pc.strptime(arr, format="%Y-%m-%d", unit="s", error_is_null=True)
        parsed = pc.coalesce(full, date_only)
    # strptime rolls impossible days over (Feb 30 -> Mar 2): the day must survive the round trip.
    day_text = pc.cast(
        pc.utf8_slice_codeunits(pc.if_else(pa.array(shaped), arr, pa.scalar("0000-00-00", arr.type)), 8, 10),
        pa.int64(),
    )
    same_day = pc.equal(pc.day(parsed), day_text)
    ok = _np_bool(pc.and_(pc.is_valid(parsed), same_day))
    if not ok.all():
        parsed = pc.if_else(pa.array(ok), parsed, pa.scalar(None, parsed.type))
    naive = np.asarray(parsed.to_numpy(zero_copy_only=False)).astype("datetime64[s]")
    return _to_utc(naive, values.index, timezone), present & ~shaped, present & shaped & ~ok


def _to_utc(naive: np.ndarray, index: pd.Index, timezone: str) -> pd.Series:
    localized = pd.Series(naive, index=index).dt.tz_localize(
        timezone, ambiguous=np.zeros(len(naive), dtype=bool), nonexistent=pd.Timedelta(hours=1)
    )
    return localized.dt.tz_convert("UTC").astype("datetime64[us, UTC]")


_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def _days_from_civil(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm), vectorised."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


#: Two ASCII digits read as one little-endian uint16 -> their value 0..99; 255 if not two digits.
_DIGIT_PAIRS = np.full(1 << 16, 255, dtype=np.uint8)
_DIGIT_PAIRS[
    (np.arange(48, 58, dtype=np.int64)[:, None] | (np.arange(48, 58, dtype=np.int64)[None, :] << 8)).ravel()
] = (np.arange(10)[:, None] * 10 + np.arange(10)[None, :]).ravel()
_YM_TABLES: tuple[np.ndarray, np.ndarray] | None = None


def _year_month_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per year*12 + month-1 (years 0-9999): days since 1970-01-01 of its first day, and its length."""
    global _YM_TABLES
    if _YM_TABLES is None:
        year = np.repeat(np.arange(10000, dtype=np.int64), 12)
        month = np.tile(np.arange(1, 13, dtype=np.int64), 10000)
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        _YM_TABLES = (
            _days_from_civil(year, month, np.ones_like(year)),
            (_MONTH_DAYS[month] + (leap & (month == 2))).astype(np.uint8),
        )
    return _YM_TABLES


def _iso_seconds(arr: pa.Array, present: np.ndarray) -> np.ndarray | None:
    """Local datetime64[s] (NaT where missing) when *every* present value is a valid
    ``YYYY-MM-DD HH:MM:SS``, read straight from the bytes; None otherwise (exact path).

    Strict: digits and separators in place, month 1-12, day within its month,
    hour < 24, minute and second < 60. Anything else (a date only, Feb 30th,
    a leap second, stray text) leaves the column to strptime and its checks.

    Each two-digit field is one strided uint16 read of the 19-byte records and
    one lookup in a 64K table (its value, or 255 if either byte is not a digit).
    """
    offsets, data = string_parts(arr)
    lengths = np.diff(offsets)
    if not present.any() or not (lengths[present] == 19).all() or (lengths[~present] != 0).any():
        return None
    data = np.ascontiguousarray(data)
    m = len(data) // 19

    def at(position: int, dtype) -> np.ndarray:
        return np.ndarray((m,), dtype=dtype, buffer=data, offset=position, strides=(19,))

    if any(
        (at(i, np.uint8) != ord(c)).any() for i, c in ((4, "-"), (7, "-"), (10, " "), (13, ":"), (16, ":"))
    ):
        return None
    century, year2, month, day, hour, minute, second = (
        np.take(_DIGIT_PAIRS, at(p, np.uint16)) for p in (0, 2, 5, 8, 11, 14, 17)
    )
    if (
        (century == 255)
        | (year2 == 255)
        | (month < 1)
        | (month > 12)
        | (day < 1)
        | (hour > 23)
        | (minute > 59)
        | (second > 59)
    ).any():  # 255 (not digits) fails these too
        return None
    first_day, length = _year_month_tables()
    ym = (century.astype(np.int64) * 100 + year2) * 12 + (month - 1)
    if (day > np.take(length, ym)).any():
        return None
    seconds = (
        (np.take(first_day, ym) + (day - 1)) * 86400
        + hour.astype(np.int64) * 3600
        + minute.astype(np.int64) * 60
        + second
    )
    out = np.full(len(arr), np.datetime64("NaT"), dtype="datetime64[s]")
    out[present] = seconds.astype("datetime64[s]")
    return out
