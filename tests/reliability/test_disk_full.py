"""The disk fills up while the raw archive is written: one clear line, nothing archived lost.

The staging folder is a real small filesystem: a tmpfs mount (root can mount
one on these machines), else an ext4 image on a loop device; only where
neither can be had is ENOSPC simulated, and the test says so in its output.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from pathlib import Path

import pytest

from etl.errors import SourceError
from etl.ingest import archive
from etl.settings import Settings
from tests.reliability.test_damaged_files import run_etl

#: The sample's archive (zstd level 1) takes ~900 kB: this fills up part-way through it.
SIZE_KB = 400


@contextlib.contextmanager
def small_disk(where: Path, size_kb: int):
    """A mounted filesystem of ``size_kb`` at ``where``; yields how it was made."""
    where.mkdir(parents=True)
    made = None
    if (
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)]).returncode
        == 0
    ):
        made = "tmpfs"
    else:
        image = where.with_suffix(".img")
        with open(image, "wb") as fh:
            fh.truncate(max(size_kb, 1024) * 1024)
        ok = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True).returncode == 0
        if ok and subprocess.run(["mount", "-o", "loop", str(image), str(where)]).returncode == 0:
            made = "loop"
    try:
        yield made
    finally:
        if made:
            subprocess.run(["umount", "-l", str(where)], check=False)


def _check_archive(staging: Path) -> int:
    """Every manifest line parses and its payload matches its sha256; no payload is unlisted."""
    days = list((staging / "raw" / "olist").iterdir())
    assert len(days) == 1
    day = days[0].name
    settings = Settings.from_env().with_overrides(staging_dir=staging)
    lines = (days[0] / archive.MANIFEST).read_text(encoding="utf-8").splitlines()
    for line in lines:
        json.loads(line)
    checked = sum(1 for _ in archive.payloads(settings, "olist", day))
    files = {p.name for p in days[0].iterdir() if p.name != archive.MANIFEST}
    assert files == {json.loads(line)["file"] for line in lines}
    return checked


def test_disk_full_while_archiving_is_one_line_and_keeps_what_was_archived(fresh_db, tmp_path, sample_dir):
    staging = tmp_path / "staging"
    with small_disk(staging, SIZE_KB) as made:
        if made is None:
            pytest.fail("neither a tmpfs nor a loop device could be mounted (this test runs as root)")
        print(f"staging on a {SIZE_KB} kB {made}")
        settings = fresh_db.with_overrides(staging_dir=staging)
        proc = run_etl(settings, sample_dir)
        assert proc.returncode != 0
        assert "Traceback" not in proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("error: cannot archive ")
        assert "the disk is full; what was archived before is kept" in lines[0]
        assert str(staging / "raw" / "olist") in lines[0]
        archived = _check_archive(staging)
        assert 1 <= archived < 9  # it filled part-way, and every payload before is intact


def test_a_short_manifest_write_leaves_the_manifest_as_it_was(tmp_path, monkeypatch):
    """The one case no small disk reproduces on demand: the manifest line itself hits ENOSPC."""
    settings = Settings.from_env().with_overrides(staging_dir=tmp_path)
    arch = archive.Archive(settings, "olist", "run-1", day="2024-03-01")
    arch.put("first", b"one", records=1)
    manifest = arch.directory / archive.MANIFEST
    before = manifest.read_bytes()
    real_write = os.write

    def full(fd, data):
        real_write(fd, data[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive.os, "write", full)
    with pytest.raises(SourceError, match="the disk is full"):
        arch.put("second", b"two", records=1)
    monkeypatch.undo()
    assert manifest.read_bytes() == before
    assert [line["file"] for line, _ in archive.payloads(settings, "olist", "2024-03-01")] == [
        p.name for p in arch.directory.iterdir() if p.name != archive.MANIFEST
    ]
