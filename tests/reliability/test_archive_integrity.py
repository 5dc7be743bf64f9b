"""The raw archive's copies of files: one read per file, damage found when read back, old archives kept.

A copy is zstd with a frame checksum, written in the same read that computes
the file's sha256 (the key of already-loaded files) and the payload's. Reading
it back (``etl replay``, ``etl lineage``, these tests) checks both the frame
checksum and the manifest's sha256, so a flipped byte or a cut file is one
line naming the archive file; copies written gzip by earlier versions, and
zstd by pyarrow, still read.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pytest

from etl import staging
from etl.errors import SourceError
from etl.ingest import archive, runner
from etl.settings import Settings

CONTENT = b"order_id,customer_id\n" + b"".join(b"%032x,%032x\n" % (i, i * 7) for i in range(60_000))


@pytest.fixture
def arch(tmp_path) -> archive.Archive:
    settings = Settings.from_env().with_overrides(staging_dir=tmp_path / "staging")
    return archive.Archive(settings, "olist", "run-1", day="2024-03-01")


def _read_back(arch: archive.Archive) -> list[bytes]:
    return [payload for _, payload in archive.payloads(arch.settings, "olist", arch.day)]


def test_a_plain_file_is_copied_as_zstd_with_its_checksum_from_the_same_read(arch, tmp_path, monkeypatch):
    source = tmp_path / "orders.csv"
    source.write_bytes(CONTENT)
    opened = []
    real_open = open

    def counting_open(path, *args, **kwargs):
        if str(path) == str(source):
            opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    line = arch.put_file("orders.csv", source)
    monkeypatch.undo()
    assert len(opened) == 1  # one read feeds the copy and both checksums
    assert line["file"].endswith(".csv.zst")
    assert line["sha256"] == line["file_sha256"] == hashlib.sha256(CONTENT).hexdigest()
    assert line["bytes"] == len(CONTENT)
    assert (arch.directory / line["file"]).stat().st_size < len(CONTENT) / 2
    assert _read_back(arch) == [CONTENT]


def test_a_gz_file_is_stored_decompressed_and_keyed_by_the_gz_files_checksum(arch, tmp_path):
    source = tmp_path / "orders.csv.gz"
    source.write_bytes(gzip.compress(CONTENT) + gzip.compress(b"x,y\n"))  # two members, as cat makes
    line = arch.put_file("orders.csv", source, decompress=True)
    assert line["file_sha256"] == staging.file_sha256(source)
    assert line["sha256"] == hashlib.sha256(CONTENT + b"x,y\n").hexdigest()
    assert _read_back(arch) == [CONTENT + b"x,y\n"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "the zstd archive is truncated"),
        (lambda data: data[:-4], "the zstd archive is truncated"),  # only the frame checksum cut
        (lambda data: data[:200] + bytes([data[200] ^ 0xFF]) + data[201:], "corrupt zstd data"),
    ],
    ids=["cut-in-half", "checksum-cut", "flipped-byte"],
)
def test_a_damaged_zstd_copy_is_one_line_naming_it(arch, tmp_path, damage, message):
    source = tmp_path / "orders.csv"
    source.write_bytes(CONTENT)
    line = arch.put_file("orders.csv", source)
    path = arch.directory / line["file"]
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(SourceError) as caught:
        _read_back(arch)
    text = str(caught.value)
    assert "\n" not in text and str(path) in text
    assert message in text or "does not match its manifest sha256" in text, text


def test_a_copy_replaced_by_other_valid_zstd_fails_its_manifest_sha256(arch, tmp_path):
    source = tmp_path / "orders.csv"
    source.write_bytes(CONTENT)
    line = arch.put_file("orders.csv", source)
    with pa.output_stream(str(arch.directory / line["file"]), compression="zstd") as out:
        out.write(CONTENT.replace(b"0000", b"1111", 1))
    with pytest.raises(SourceError, match="does not match its manifest sha256"):
        _read_back(arch)


def test_copies_archived_by_earlier_versions_still_read(arch, tmp_path):
    """gzip copies (``.csv.gz``, before zstd) and pyarrow-written zstd copies, beside a new one."""
    arch.directory.mkdir(parents=True)
    old_gz = arch.directory / "orders.csv_20240301T000000000000Z_00001.csv.gz"
    old_gz.write_bytes(gzip.compress(CONTENT, compresslevel=5))
    old_zst = arch.directory / "orders.csv_20240301T000000000001Z_00002.csv.zst"
    with pa.output_stream(str(old_zst), compression="zstd") as out:
        out.write(CONTENT)
    digest = hashlib.sha256(CONTENT).hexdigest()
    with open(arch.directory / archive.MANIFEST, "w", encoding="utf-8") as fh:
        for path in (old_gz, old_zst):
            line = {"source": "olist", "run_id": "old", "file": path.name, "kind": "file", "request": {}}
            fh.write(json.dumps({**line, "status": None, "records": -1, "sha256": digest}) + "\n")
    source = tmp_path / "orders.csv"
    source.write_bytes(CONTENT)
    arch.put_file("orders.csv", source)
    assert _read_back(arch) == [CONTENT] * 3


def test_a_known_name_is_checksummed_first_and_an_unchanged_file_not_copied_again(arch, tmp_path):
    source = tmp_path / "orders.csv"
    source.write_bytes(CONTENT)
    digest = runner._archive_if_new(arch, set(), source)
    assert digest == hashlib.sha256(CONTENT).hexdigest() and len(arch.written) == 1
    assert runner._archive_if_new(arch, {("orders.csv", digest)}, source) is None
    assert len(arch.written) == 1
    source.write_bytes(CONTENT + b"f,g\n")  # same name, new content: archived again
    assert runner._archive_if_new(arch, {("orders.csv", digest)}, source) == staging.file_sha256(source)
    assert len(arch.written) == 2


def test_replay_rebuilds_the_olist_files_from_zstd_and_older_gz_copies(arch, tmp_path):
    source = tmp_path / "olist_orders_dataset.csv.gz"
    source.write_bytes(gzip.compress(CONTENT))
    arch.put_file(
        "olist_orders_dataset.csv",
        source,
        decompress=True,
        request={"path": str(source)},
        extra={"table": "t"},
    )
    old = arch.directory / "olist_orders_dataset.csv_20240301T000000000000Z_00009.csv.gz"
    old.write_bytes(gzip.compress(b"a,b\n"))
    line = {"source": "olist", "run_id": "old", "file": old.name, "kind": "file", "records": -1}
    line.update(
        request={"path": "/x/olist_customers_dataset.csv"}, sha256=hashlib.sha256(b"a,b\n").hexdigest()
    )
    with open(arch.directory / archive.MANIFEST, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({**line, "table": "u"}) + "\n")
    inputs, _ = runner.replay_inputs(arch.settings, "olist", arch.day, "replay-1")
    assert [Path(p).read_bytes() for p in inputs["t"]] == [CONTENT]
    assert [Path(p).read_bytes() for p in inputs["u"]] == [b"a,b\n"]
