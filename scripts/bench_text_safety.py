#!/usr/bin/env python
"""Benchmark: what the hostile-text pass (etl/transform/text_safety.py) costs the transform.

    .venv/bin/python scripts/bench_text_safety.py [--items 2000000] [--dir /tmp/bench_text_safety]

Generates the items CSV of ``bench_transform.py`` (1 % defects; every column
is scanned by the pass, ids and numbers included), then runs the whole
transform of ``bench_transform.measure`` twice per round (after one warm-up run), once with the pass and once
with it replaced by a no-op (the baseline, same process), alternating which
goes first. Prints rows/s and CPU seconds per million rows of each, their
ratio, the peak RSS and the load average: the machine is shared, and CPU per
row varies far less than wall-clock rows/s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_transform  # noqa: E402  (a sibling script)

from etl.transform import table, text_safety  # noqa: E402


def _without_pass(spec, raw, max_field_chars):
    return raw, []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=2_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench_text_safety"))
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not (args.dir / "generated.json").exists():
        # a child process, so the generator's memory is not in this one's peak
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "bench_transform.py"), "--generate-only"]
            + ["--items", str(args.items), "--dir", str(args.dir)],
            check=True,
        )
    results: dict[str, list[dict]] = {"with the pass": [], "baseline (no pass)": []}
    bench_transform.measure(
        args.dir, 250_000
    )  # warm-up, not counted: the first pass pays imports and page faults
    for n in range(args.rounds):
        order = (
            ["with the pass", "baseline (no pass)"] if n % 2 == 0 else ["baseline (no pass)", "with the pass"]
        )
        for name in order:
            table.text_safety.sanitize = text_safety.sanitize if name == "with the pass" else _without_pass
            shutil.rmtree(args.dir / "out", ignore_errors=True)
            result = bench_transform.measure(args.dir, 250_000)
            results[name].append(result)
            print(
                f"round {n + 1} {name:<20} {result['rows'] / result['transform_s']:>12,.0f} rows/s  "
                f"{result['transform_cpu_s'] / result['rows'] * 1e6:6.2f} CPU s per M rows  "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    table.text_safety.sanitize = text_safety.sanitize
    cpu = {k: min(r["transform_cpu_s"] / r["rows"] for r in v) for k, v in results.items()}
    wall = {k: max(r["rows"] / r["transform_s"] for r in v) for k, v in results.items()}
    print(
        f"best of {args.rounds}: with the pass {wall['with the pass']:,.0f} rows/s, "
        f"baseline {wall['baseline (no pass)']:,.0f} rows/s; "
        f"ratio {wall['with the pass'] / wall['baseline (no pass)']:.3f} (rows/s), "
        f"{cpu['with the pass'] / cpu['baseline (no pass)']:.3f} (CPU per row); "
        f"peak RSS {bench_transform.peak_rss_mb():,.0f} MB"
    )


if __name__ == "__main__":
    main()
