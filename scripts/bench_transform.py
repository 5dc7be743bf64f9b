#!/usr/bin/env python
"""Benchmark: transform + quality scoring of N generated order items (default 10,000,000).

    .venv/bin/python scripts/bench_transform.py [--items 10000000] [--dir /tmp/bench_items]

1. (child process, not measured) writes an Olist-shaped items CSV with 1 %
   defects (non-positive prices, orphan orders, duplicates) and the ids of the
   orders, products and sellers it references;
2. baseline: stream the CSV through the chunk reader only (rows/s);
3. the real thing: stream, type, check all rules, hash keys for uniqueness and
   foreign keys, write clean/quarantine/findings Parquet, tally the scores.

Prints rows/s of both, their ratio, and the peak RSS of this process
(``ru_maxrss``: it includes the 64-bit key sets of the referenced tables).
The machine is shared, so it also prints the CPU seconds the transform used
(all threads) per million rows and the 1-minute load average before and after:
wall-clock rows/s swing with other people's jobs, CPU per row much less.
The generating child runs first so its memory is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_HEXCHARS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def hex_ids(rng: np.random.Generator, n: int) -> pa.Array:
    """n random 32-hex ids as an arrow string array, built from one buffer (no Python loop)."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    chars = np.empty((n, 32), dtype=np.uint8)
    chars[:, 0::2] = _HEXCHARS[raw >> 4]
    chars[:, 1::2] = _HEXCHARS[raw & 15]
    offsets = np.arange(0, 32 * (n + 1), 32, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()))


def generate(n_items: int, directory: Path, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    products, sellers = hex_ids(rng, 33_000), hex_ids(rng, 3_100)
    pq.write_table(pa.table({"product_id": products}), directory / "products.parquet")
    pq.write_table(pa.table({"seller_id": sellers}), directory / "sellers.parquet")
    order_writer = pq.ParquetWriter(directory / "orders.parquet", pa.schema([("order_id", pa.string())]))
    schema = pa.schema(
        [
            (c, pa.string())
            for c in (
                "order_id",
                "order_item_id",
                "product_id",
                "seller_id",
                "shipping_limit_date",
                "price",
                "freight_value",
            )
        ]
    )
    writer = pacsv.CSVWriter(
        str(directory / "olist_order_items_dataset.csv"),
        schema,
        write_options=pacsv.WriteOptions(quoting_style="none"),
    )
    written, block = 0, 1_000_000
    while written < n_items:
        m_orders = max(1, int(min(block, n_items - written) / 1.14))
        orders = hex_ids(rng, m_orders)
        order_writer.write_table(pa.table({"order_id": orders}))
        counts = rng.choice([1, 1, 1, 1, 1, 1, 1, 2, 2, 3], size=m_orders)
        idx = np.repeat(np.arange(m_orders), counts)
        item_no = np.arange(len(idx)) - np.repeat(np.cumsum(counts) - counts, counts) + 1
        idx, item_no = idx[: n_items - written], item_no[: n_items - written]
        k = len(idx)
        order_col = orders.take(pa.array(idx))
        defects = rng.random(k)
        orphan = defects < 0.005
        if orphan.any():
            as_obj = np.asarray(order_col.to_numpy(zero_copy_only=False), dtype=object)
            as_obj[orphan] = np.asarray(
                hex_ids(rng, int(orphan.sum())).to_numpy(zero_copy_only=False), dtype=object
            )
            order_col = pa.array(as_obj, type=pa.string())
        price = np.round(rng.lognormal(4.2, 0.9, k), 2)
        price[(defects >= 0.005) & (defects < 0.01)] *= -1
        base = np.datetime64("2017-01-01T00:00:00") + rng.integers(0, 600 * 86400, k).astype("timedelta64[s]")
        table = pa.table(
            {
                "order_id": order_col,
                "order_item_id": pa.array(item_no.astype(str)),
                "product_id": products.take(pa.array(rng.integers(0, len(products), k))),
                "seller_id": sellers.take(pa.array(rng.integers(0, len(sellers), k))),
                "shipping_limit_date": pa.array(np.datetime_as_string(base, unit="s")).cast(pa.string()),
                "price": pa.array(np.char.mod("%.2f", price)),
                "freight_value": pa.array(np.char.mod("%.2f", np.round(rng.gamma(2.0, 10.0, k), 2))),
            },
            schema=schema,
        )
        # 'T' separator -> space, as Olist writes timestamps
        table = table.set_column(
            4, "shipping_limit_date", pa.compute.replace_substring(table["shipping_limit_date"], "T", " ")
        )
        dup = defects >= 0.995
        writer.write_table(table)
        if dup.any():
            writer.write_table(table.filter(pa.array(dup)))
            written += int(dup.sum())
        written += k
    writer.close()
    order_writer.close()
    (directory / "generated.json").write_text(json.dumps({"items": n_items, "rows_written": written}))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(directory: Path, chunk_rows: int) -> dict:
    import pandas as pd

    from etl.lookups import load_lookups
    from etl.olist import ORDER_ITEMS
    from etl.quality import QualityReport, Tally
    from etl.settings import DEFAULT_QUALITY_TARGETS, Settings
    from etl.transform import checks as ck
    from etl.transform.columns import KeySet, parse_hex_ids
    from etl.transform.reader import read_chunks
    from etl.transform.sink import Sink
    from etl.transform.table import TableState, transform_table

    path = directory / "olist_order_items_dataset.csv"
    settings = Settings.from_env()

    started = time.perf_counter()
    baseline_rows = 0
    for chunk in read_chunks(path, ORDER_ITEMS, chunk_rows):
        baseline_rows += len(chunk)
    baseline_s = time.perf_counter() - started
    rss_after_baseline = peak_rss_mb()

    started = time.perf_counter()
    refs = {}
    for table, _column in (
        ("fact_orders", "order_id"),
        ("dim_products", "product_id"),
        ("dim_sellers", "seller_id"),
    ):
        keys = KeySet()
        source = {"fact_orders": "orders", "dim_products": "products", "dim_sellers": "sellers"}[table]
        for batch in pq.ParquetFile(directory / f"{source}.parquet").iter_batches(batch_size=1_000_000):
            keys.add(
                parse_hex_ids(
                    pd.Series(batch.column(0).to_pandas(types_mapper=pd.ArrowDtype).astype("string"))
                ).hashes
            )
        refs[table] = keys
    refs_s = time.perf_counter() - started

    out = directory / "out"
    out.mkdir(exist_ok=True)
    config = ck.RuleConfig.from_settings(settings, load_lookups(settings.lookup_dir))
    state, tally = TableState(), Tally()
    sinks = {k: Sink(out / f"fact_order_items{k}.parquet") for k in ("", ".quarantine", ".findings")}
    counts = {"read": 0, "loaded": 0, "quarantined": 0}
    load_before = os.getloadavg()[0]
    started, cpu_started = time.perf_counter(), time.process_time()
    for chunk in read_chunks(path, ORDER_ITEMS, chunk_rows):
        result = transform_table(ORDER_ITEMS, chunk, settings.source_timezone, refs, None, config, state)
        counts["read"] += result.rows_read
        counts["loaded"] += result.rows_clean
        counts["quarantined"] += len(result.quarantined)
        tally.add(result.tally)
        sinks[""].write(result.clean)
        if len(result.quarantined):
            sinks[".quarantine"].write(result.quarantined)
        if len(result.findings):
            sinks[".findings"].write(result.findings)
    for sink in sinks.values():
        sink.close()
    report = QualityReport.from_tallies("bench", {"fact_order_items": tally}, DEFAULT_QUALITY_TARGETS)
    transform_s = time.perf_counter() - started
    transform_cpu_s = time.process_time() - cpu_started  # every thread of this process
    assert counts["read"] == counts["loaded"] + counts["quarantined"]
    return {
        "rows": counts["read"],
        "loaded": counts["loaded"],
        "quarantined": counts["quarantined"],
        "chunk_rows": chunk_rows,
        "baseline_read_s": round(baseline_s, 1),
        "baseline_rows_per_s": int(baseline_rows / baseline_s),
        "reference_keys_s": round(refs_s, 1),
        "reference_keys": {k: len(v) for k, v in refs.items()},
        "transform_s": round(transform_s, 1),
        "transform_rows_per_s": int(counts["read"] / transform_s),
        # CPU seconds (all threads) per million rows: what the work costs, whatever the load
        "transform_cpu_s": round(transform_cpu_s, 1),
        "cpu_s_per_million_rows": round(transform_cpu_s / counts["read"] * 1e6, 2),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "ratio_to_baseline": round((counts["read"] / transform_s) / (baseline_rows / baseline_s), 3),
        "peak_rss_mb_after_baseline": round(rss_after_baseline),
        "peak_rss_mb": round(peak_rss_mb()),
        "scores": {s.dimension: s.score for s in report.scores if s.table == "fact_order_items"},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench_items"))
    parser.add_argument("--chunk-rows", type=int, default=250_000)
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    marker = args.dir / "generated.json"
    if args.generate_only:
        generate(args.items, args.dir)
        return 0
    if not marker.exists() or json.loads(marker.read_text())["items"] != args.items:
        print(f"generating {args.items:,} items in {args.dir} (child process, not measured) ...", flush=True)
        subprocess.run(
            [sys.executable, __file__, "--generate-only", "--items", str(args.items), "--dir", str(args.dir)],
            check=True,
        )
    result = measure(args.dir, args.chunk_rows)
    print(json.dumps(result, indent=2))
    ok = result["peak_rss_mb"] < 1536 and result["transform_rows_per_s"] >= 500_000
    print(
        f"\n{result['rows']:,} rows: transform {result['transform_rows_per_s']:,} rows/s "
        f"(baseline read {result['baseline_rows_per_s']:,} rows/s, ratio {result['ratio_to_baseline']}), "
        f"peak RSS {result['peak_rss_mb']:,} MB -> {'meets' if ok else 'MISSES'} "
        "the target (< 1536 MB, >= 500,000 rows/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
