#!/usr/bin/env python3
"""Benchmark: the raw archive of an Olist folder, before (sha256 pass + gzip 5) and now (one zstd pass).

``etl run`` first archives every input under data/staging/raw/olist/{day}/.
This times exactly that step of ``etl.ingest.runner.ingest_olist`` over a
folder (default: the 9 files of ``etl generate --orders 1000000``), in child
processes so that each peak RSS is its own, alternating the two versions
ROUNDS times in one run of this script:

* ``before`` -- ``etl/ingest/archive.py`` as it is at git revision BEFORE
  (default ``main``), driven as ingest_olist drove it there: a sha256 pass over
  the file, then ``put_file`` (streamed gzip level 5);
* ``now``    -- this checkout: ``runner._archive_if_new`` (one read: zstd level 1,
  the payload's and the file's sha256).

Prints, per run: seconds, input MB/s, peak RSS, archive size and ratio
(input / archived); then the median ratio before/now and the load average.
Figures go to docs/performance.md ("Ingest: the raw archive").

    .venv/bin/python scripts/bench_archive.py [--data-dir /work/perfdata/1m] [--rounds 3] [--before main]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from etl import staging  # noqa: E402
from etl.ingest import archive, runner  # noqa: E402
from etl.ingest.olist_files import locate_all  # noqa: E402
from etl.settings import Settings  # noqa: E402


def old_archive_module(revision: str) -> types.ModuleType:
    """``etl/ingest/archive.py`` at ``revision``, imported beside today's (same package imports)."""
    text = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{revision}:etl/ingest/archive.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("etl_archive_before")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(text, f"{revision}:etl/ingest/archive.py", "exec"), module.__dict__)
    return module


def child(args) -> dict:
    settings = Settings.from_env().with_overrides(staging_dir=Path(args.staging))
    located = locate_all(Path(args.data_dir))
    started = time.perf_counter()
    if args.child == "before":
        old = old_archive_module(args.before)
        arch = old.Archive(settings, "olist", "bench-before")
        for source in located:
            digest = staging.file_sha256(source.path)
            arch.put_file(
                source.path.name.removesuffix(".gz"),
                source.path,
                decompress=source.path.suffix == ".gz",
                request={"path": str(source.path)},
                extra={"table": source.spec.name, "file_sha256": digest},
            )
    else:
        arch = archive.Archive(settings, "olist", "bench-now")
        for source in located:
            runner._archive_if_new(
                arch,
                set(),
                source.path,
                name=source.path.name.removesuffix(".gz"),
                decompress=source.path.suffix == ".gz",
                request={"path": str(source.path)},
                extra={"table": source.spec.name},
            )
    seconds = time.perf_counter() - started
    written = [p for p in arch.directory.iterdir() if p.name != archive.MANIFEST]
    return {
        "seconds": seconds,
        "input_bytes": sum(line["bytes"] for line in arch.written),
        "archived_bytes": sum(p.stat().st_size for p in written),
        "files": len(arch.written),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(mode: str, args) -> dict:
    staging_dir = tempfile.mkdtemp(prefix=f"etl-bench-archive-{mode}-")
    try:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                mode,
                "--staging",
                staging_dir,
                "--data-dir",
                args.data_dir,
                "--before",
                args.before,
            ],  # fmt: skip
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} child failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--data-dir", default="/work/perfdata/1m")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", default="main", help="git revision of the archive to compare with")
    parser.add_argument("--child", default=None)
    parser.add_argument("--staging")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    for path in Path(args.data_dir).iterdir():  # both sides read from the page cache
        staging.file_sha256(path)
    print(f"load average: {load()}")
    print(
        f"{'run':<14} {'seconds':>8} {'MB/s':>7} {'peak RSS MB':>12} {'archived MB':>12} {'ratio':>6}  load"
    )
    results: dict[str, list[dict]] = {"before": [], "now": []}
    for n in range(args.rounds):
        order = ("before", "now") if n % 2 == 0 else ("now", "before")
        for mode in order:
            r = run_child(mode, args)
            results[mode].append(r)
            print(
                f"{mode + f' #{n + 1}':<14} {r['seconds']:>8.2f} {r['input_bytes'] / 1e6 / r['seconds']:>7.0f} "
                f"{r['peak_rss_mb']:>12.0f} {r['archived_bytes'] / 1e6:>12.1f} "
                f"{r['input_bytes'] / r['archived_bytes']:>6.2f}  {load()}",
                flush=True,
            )
    before = statistics.median(r["seconds"] for r in results["before"])
    now = statistics.median(r["seconds"] for r in results["now"])
    print(f"median seconds: before {before:.2f}, now {now:.2f}; before/now {before / now:.2f}x")
    print(f"load average: {load()}")


if __name__ == "__main__":
    main()
