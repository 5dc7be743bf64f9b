"""The transform's fast paths give exactly what the general paths give.

Each fast path (byte-level timestamp reading, byte checks instead of regexes,
trimming skipped, key-set inserts, arrow-joined raw records) is only taken when
it cannot change a result; these tests compare both on the awkward cases.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from etl.transform import columns as C
from etl.transform.table import json_records

TZ = "America/Sao_Paulo"


def _strings(values: list) -> pd.Series:
    return pd.Series(pd.array(values, dtype="string[pyarrow]"))


def _exact_timestamps(values: pd.Series, monkeypatch) -> tuple:
    with monkeypatch.context() as m:
        m.setattr(C, "_iso_seconds", lambda arr, present: None)
        return C.parse_timestamps(values, TZ)


EDGE_TIMESTAMPS = [
    "2017-10-15 00:30:00",  # skipped hour (DST start)
    "2018-02-17 23:30:00",  # repeated hour (DST end)
    "2016-02-29 12:00:00",
    "2000-02-29 00:00:00",
    "2019-12-31 23:59:59",
    "1999-01-01 00:00:00",
]


@pytest.mark.parametrize(
    "extra",
    [
        [],
        [None],
        ["2017-02-30 10:00:00"],
        ["2017-02-28"],
        ["1900-02-29 00:00:00"],
        ["2017-13-01 00:00:00"],
        ["2017-01-01 24:00:00"],
        ["2017-01-01 23:59:60"],
        ["2017/01/01 10:00:00"],
        ["x"],
    ],
)
def test_timestamps_read_from_bytes_equal_strptime(extra, monkeypatch):
    values = _strings(EDGE_TIMESTAMPS + extra)
    arr = C.to_arrow(values)
    fast_taken = C._iso_seconds(arr, arr.is_valid().to_numpy(zero_copy_only=False)) is not None
    assert fast_taken == (extra in ([], [None]))
    fast, exact = C.parse_timestamps(values, TZ), _exact_timestamps(values, monkeypatch)
    assert fast[0].equals(exact[0])
    assert (fast[1] == exact[1]).all() and (fast[2] == exact[2]).all()


def test_every_quarter_hour_of_four_years_converts_like_pandas(monkeypatch):
    stamps = np.arange(
        np.datetime64("2016-01-01T00:00:00"),
        np.datetime64("2020-01-01T00:00:00"),
        np.timedelta64(15 * 60 + 7, "s"),
    )
    values = _strings([str(s).replace("T", " ") for s in stamps])
    assert C.parse_timestamps(values, TZ)[0].equals(_exact_timestamps(values, monkeypatch)[0])


def test_number_and_trim_byte_checks():
    assert C.only_number_bytes(pa.array(["12.50", "-1", None, "+3"]))
    assert not C.only_number_bytes(pa.array(["12.50", "1e5"]))
    assert not C.only_number_bytes(pa.array(["nan"]))
    assert C.parse_numbers(_strings(["1e5", "2"]))[1].tolist() == [True, False]
    assert not C.may_need_trim(pa.array(["a", None, "", "b c"]))
    for padded in ([" a"], ["a "], ["a\t"], ["\u00a0a"], ["x", "b\n"]):
        assert C.may_need_trim(pa.array(padded))
    assert not C.may_need_trim(pa.array(["xx", " a", "b"]).slice(2))


def test_key_set_inserts_keep_it_sorted_and_unique():
    keys = C.KeySet()
    rng = np.random.default_rng(0)
    reference: set[int] = set()
    for _ in range(5):
        new = rng.integers(0, 50, 40).astype(np.uint64)
        keys.add(new)
        reference |= {int(x) for x in new if x != 0}
        assert keys.hashes.tolist() == sorted(reference)
    probes = np.arange(60, dtype=np.uint64)
    assert keys.contains(probes).tolist() == [int(p) in reference for p in probes]


def test_raw_records_are_json_of_the_text_fields():
    frame = pd.DataFrame(
        {
            "a": _strings(['x"y', "back\\slash", "nl\nx\tt\r", None, "São", "ctl\x01"]),
            "b c": _strings(["1", None, "2", "3", "4", "5"]),
        }
    )
    for record, (_, row) in zip(json_records(frame), frame.iterrows()):
        assert json.loads(record) == {k: (None if pd.isna(v) else v) for k, v in row.items()}


def test_big_key_set_byte_map_and_hash_table_agree_with_isin():
    rng = np.random.default_rng(1)
    keys = C.KeySet()
    added = []
    for _ in range(6):  # grows past the byte-map threshold
        new = rng.integers(1, 2**63, 30_000, dtype=np.int64).view(np.uint64)
        new[:50] = added[-1][:50] if added else new[:50]  # some repeats of earlier keys
        probes = np.concatenate(
            [
                new[:1000],
                rng.integers(1, 2**63, 1000, dtype=np.int64).view(np.uint64),
                np.zeros(3, dtype=np.uint64),
            ]
        )
        known = np.concatenate(added) if added else np.empty(0, dtype=np.uint64)
        assert keys.contains(probes).tolist() == np.isin(probes, known).tolist()
        keys.add(new)
        added.append(new)
    everything = np.unique(np.concatenate(added))
    assert len(keys) == len(everything) and keys._filter is not None
    probes = np.concatenate(
        [
            everything[::7],
            rng.integers(1, 2**63, 5000, dtype=np.int64).view(np.uint64),
            np.array([0, 1, 2**64 - 1], dtype=np.uint64),
        ]
    )
    expected = np.isin(probes, everything).tolist()
    assert keys.contains(probes).tolist() == expected  # byte map + runs
    assert keys.contains(probes).tolist() == expected  # second look without an add: hash table
    assert keys._table is not None
    assert keys.hashes.tolist() == everything.tolist()


@pytest.mark.parametrize("size", [1, 2, 3, 100, 3_100, 33_000])
def test_small_key_set_hash_table_agrees_with_isin(size):
    """Small referenced sets get a sparse hash table too (probed without sorting)."""
    rng = np.random.default_rng(size)
    keys = C.KeySet()
    members = rng.integers(1, 2**63, size, dtype=np.int64).view(np.uint64)
    members[:1] = 2**64 - 1  # the largest key: probes walk to the end
    keys.add(members)
    probes = np.concatenate(
        [
            members[rng.integers(0, size, 5000)],
            members + np.uint64(1),
            members - np.uint64(1),
            rng.integers(0, 2**64 - 1, 5000, dtype=np.uint64),
            np.array([0, 1], dtype=np.uint64),
        ]
    )
    expected = np.isin(probes, members).tolist()
    assert keys.contains(probes).tolist() == expected  # first look: runs
    assert keys.contains(probes).tolist() == expected  # second look: hash table
    assert keys._table is not None
    assert keys.contains(np.empty(0, dtype=np.uint64)).tolist() == []


def test_key_set_add_of_known_absent_keys_equals_plain_add():
    rng = np.random.default_rng(7)
    plain, trusted = C.KeySet(), C.KeySet()
    for _ in range(8):
        new = np.unique(rng.integers(1, 2**63, 20_000, dtype=np.int64).view(np.uint64))
        new = new[~plain.contains(new)] if len(plain) else new
        rng.shuffle(new)
        plain.add(new)
        trusted.add(np.concatenate([new, np.zeros(3, dtype=np.uint64)]), absent=True)
        assert len(plain) == len(trusted)
    assert plain.hashes.tolist() == trusted.hashes.tolist()
    probes = np.concatenate([plain.hashes[::5], rng.integers(1, 2**63, 1000, dtype=np.int64).view(np.uint64)])
    assert plain.contains(probes).tolist() == trusted.contains(probes).tolist()


def test_timestamp_bytes_agree_with_numpy_over_ten_thousand_years():
    """Pair lookups + year/month tables against numpy's own ISO parser, leap days included."""
    rng = np.random.default_rng(3)
    seconds = rng.integers(
        np.datetime64("0001-01-01T00:00:00").astype(np.int64),
        np.datetime64("9999-12-31T23:59:59").astype(np.int64),
        20_000,
    )
    stamps = seconds.astype("datetime64[s]")
    leap_days = np.array(
        ["2000-02-29T23:59:59", "2016-02-29T00:00:00", "0004-02-29T12:00:00"], dtype="datetime64[s]"
    )
    stamps = np.concatenate([stamps, leap_days])
    text = [str(s).replace("T", " ") for s in stamps] + [None]
    arr = pa.array(text, pa.large_string())
    present = arr.is_valid().to_numpy(zero_copy_only=False)
    got = C._iso_seconds(arr, present)
    assert got is not None and np.isnat(got[-1])
    assert (got[:-1] == stamps).all()
    for bad in (
        "1900-02-29 00:00:00",
        "2017-04-31 00:00:00",
        "2017-00-10 00:00:00",
        "2017-01-00 00:00:00",
        "2017-01-01 1a:00:00",
        "2017-01-01T00:00:00",
        "20x7-01-01 00:00:00",
        "2017-01-01 00:00:6/",
        "2017-01-01 00:60:00",
        "2017-01-01 24:00:00",
        "2017-01-01 00:00:0\u00e9"[:19],
    ):
        with_bad = pa.array(text[:5] + [bad], pa.large_string())
        assert C._iso_seconds(with_bad, with_bad.is_valid().to_numpy(zero_copy_only=False)) is None, bad
