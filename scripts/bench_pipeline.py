#!/usr/bin/env python
"""A whole run side by side with a peer: `etl run`, the DAG's stages as processes, and dlt.

    .venv/bin/pip install -r requirements-bench.txt   # dlt 1.31 + ADBC (the peer)
    .venv/bin/python scripts/bench_pipeline.py --orders 1000000 [--data-dir DIR] [--only cli dlt]

1. ``etl generate --orders N --dirty-rate 0.05 --seed 0`` into ``--data-dir`` (a
   temporary folder by default; reused when it already holds the files);
2. ``etl run`` (the CLI, one process), into a new database;
3. the same stages as separate processes, one after the other, as the Airflow
   DAG's tasks run them (``etl stage NAME`` for each entry of ``etl.run.plan.PLAN``,
   each a fresh Python handing over through staging), into another new database;
4. dlt 1.31 loading the same nine CSV files into a third new database on the
   same server: pyarrow record batches (every column as text: no typing, no
   checks) -> parquet -> ADBC, ``write_disposition="replace"``.

Each measurement runs in its own child process, so its peak RSS is its own
(the largest process of that measurement: for the staged run, the largest
stage). Prints wall time, source rows/s and peak RSS of each, the ratios to
dlt, and for the two project runs the warehouse's row count and the sum of
every numeric column per table (they must agree). Databases are dropped at the
end (``--keep`` leaves them). Give the machine's load with the figures: it is
printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from etl.run.plan import PLAN  # noqa: E402
from etl.settings import Settings  # noqa: E402
from etl.warehouse import connection as db  # noqa: E402

ETL = [sys.executable, "-m", "etl.cli"]
#: The DAG's tasks, in order: ``etl stage NAME`` for each entry of the declared plan.
STAGE_NAMES = tuple(stage.name for stage in PLAN)
#: Tables whose counts and numeric sums show two runs made the same warehouse.
FINGERPRINT_TABLES = (
    "dim_customers",
    "dim_products",
    "dim_sellers",
    "dim_geolocation",
    "category_translation",
    "fact_orders",
    "fact_order_items",
    "fact_payments",
    "fact_reviews",
    "quarantine",
)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def as_url(dsn: str) -> str:
    """A postgresql:// URL for dlt and ADBC (they take no libpq key=value strings)."""
    import psycopg2.extensions

    p = psycopg2.extensions.parse_dsn(dsn)
    password = f":{p['password']}" if p.get("password") else ":unused"  # dlt insists on one
    return f"postgresql://{p.get('user', 'postgres')}{password}@{p.get('host', '127.0.0.1')}:{p.get('port', '5432')}/{p['dbname']}"


def environment(database_url: str, staging: str) -> dict:
    # The generated data misses the integrity target on purpose: score it, do not stop on it.
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        ETL_STAGING_DIR=staging,
        PYTHONPATH=str(ROOT),
        ETL_DQ_ENFORCE="0",
    )
    env.pop("ETL_DATA_DIR", None)
    return env


# --- children: each prints one JSON line ---------------------------------------------------


def child_cli(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-pipe-") as staging:
        started = time.perf_counter()
        proc = subprocess.run(
            [*ETL, "run", "--data-dir", args.data_dir, "--no-quality-gate"],
            env=environment(args.database_url, staging),
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"etl run failed:\n{proc.stderr[-3000:]}")
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "stdout": proc.stdout[-4000:]}


def child_stages(args) -> dict:
    stages = {}
    with tempfile.TemporaryDirectory(prefix="bench-pipe-") as staging:
        env = environment(args.database_url, staging)
        run_id = f"bench-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        for name in STAGE_NAMES:
            t = time.perf_counter()
            proc = subprocess.run(
                [*ETL, "stage", name, "--run-id", run_id, "--data-dir", args.data_dir],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise SystemExit(f"stage {name} failed:\n{proc.stderr[-3000:]}")
            stages[name] = round(time.perf_counter() - t, 1)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "stages": stages}


def child_dlt(args) -> dict:
    import dlt
    import pyarrow as pa
    import pyarrow.csv as pacsv

    def csv_batches(path: Path):
        names = pacsv.open_csv(path, parse_options=pacsv.ParseOptions(newlines_in_values=True)).schema.names
        yield from pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=32 << 20),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),  # review texts span lines
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}),
        )

    files = sorted(Path(args.data_dir).glob("olist_*.csv")) + sorted(
        Path(args.data_dir).glob("product_category_name_translation.csv")
    )
    resources = [
        dlt.resource(csv_batches(path), name=path.stem.removesuffix("_dataset"), write_disposition="replace")
        for path in files
    ]
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{uuid.uuid4().hex[:6]}",
        dataset_name="dlt_olist",
        destination=dlt.destinations.postgres(credentials=as_url(args.database_url)),
        pipelines_dir=tempfile.mkdtemp(prefix="dlt-"),
    )
    started = time.perf_counter()
    pipeline.run(resources, loader_file_format="parquet")
    seconds = time.perf_counter() - started
    counts = pipeline.last_trace.last_normalize_info.row_counts
    rows = sum(n for table, n in counts.items() if not table.startswith("_dlt"))
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "rows": rows, "files": len(files)}


def run_child(mode: str, args, database_url: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--data-dir",
        args.data_dir,
        "--database-url",
        database_url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the parent -------------------------------------------------------------------------------


def source_rows(data_dir: Path) -> int:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    total = 0
    for path in sorted(data_dir.glob("*.csv")):
        if path.name == "ground_truth.csv":
            continue
        names = pacsv.open_csv(path, parse_options=pacsv.ParseOptions(newlines_in_values=True)).schema.names
        reader = pacsv.open_csv(
            path,
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}),
        )
        total += sum(batch.num_rows for batch in reader)
    return total


def fingerprint(url: str) -> dict[str, tuple]:
    """Per table: row count and the sum of each numeric column (surrogate keys left out)."""
    import psycopg2
    from psycopg2 import sql

    out = {}
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            for table in FINGERPRINT_TABLES:
                cur.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                    "AND table_name = %s AND data_type IN ('integer', 'bigint', 'smallint', 'numeric', "
                    "'double precision', 'real') AND column_name NOT LIKE '%%\\_key' ORDER BY column_name",
                    (table,),
                )
                columns = [c for (c,) in cur.fetchall() if c not in ("id", "row_number")]
                sums = [sql.SQL("sum({})").format(sql.Identifier(c)) for c in columns]
                cur.execute(
                    sql.SQL("SELECT {} FROM {}").format(
                        sql.SQL(", ").join([sql.SQL("count(*)"), *sums]), sql.Identifier(table)
                    )
                )
                out[table] = tuple(float(v) if v is not None else None for v in cur.fetchone())
    finally:
        conn.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--dirty-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", help="where the generated files go (reused when present)")
    parser.add_argument(
        "--only", nargs="*", default=["cli", "stages", "dlt"], choices=["cli", "stages", "dlt"]
    )
    parser.add_argument("--keep", action="store_true", help="leave the databases for a look")
    parser.add_argument("--child")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    if args.child:
        fn = {"cli": child_cli, "stages": child_stages, "dlt": child_dlt}[args.child]
        print(json.dumps(fn(args)))
        return 0

    print(f"load average before: {load_average()}")
    temp = None
    if not args.data_dir:
        temp = tempfile.TemporaryDirectory(prefix="bench-pipe-data-")
        args.data_dir = temp.name
    data_dir = Path(args.data_dir)
    if not (data_dir / "olist_orders_dataset.csv").exists():
        t = time.perf_counter()
        subprocess.run(
            [*ETL, "generate", "--orders", str(args.orders), "--dirty-rate", str(args.dirty_rate),
             "--seed", str(args.seed), "--out", str(data_dir)],
            check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )  # fmt: skip
        print(f"generated {args.orders:,} orders in {time.perf_counter() - t:.1f} s into {data_dir}")
    rows = source_rows(data_dir)
    size = sum(p.stat().st_size for p in data_dir.glob("*.csv") if p.name != "ground_truth.csv")
    print(f"{rows:,} source rows in 9 files, {size / 1e6:,.0f} MB")

    server = Settings.from_env().database_url
    tag = uuid.uuid4().hex[:6]
    urls = {mode: db.server_url(server, f"etl_bench_pipe_{mode}_{tag}") for mode in args.only}
    results: dict[str, dict] = {}
    try:
        for mode in args.only:
            db.ensure_database(urls[mode])
            print(f"{mode}: running (load {load_average()})", flush=True)
            results[mode] = run_child(mode, args, urls[mode])
        print(f"\nload average after: {load_average()}")
        labels = {
            "cli": "etl run (CLI)",
            "stages": "stages as processes (DAG)",
            "dlt": "dlt 1.31 parquet/ADBC",
        }
        print(f"{'run':<28} {'seconds':>8} {'rows/s':>10} {'peak RSS MB':>12} {'× dlt':>7}")
        base = results.get("dlt", {}).get("seconds")
        for mode, r in results.items():
            ratio = f"{r['seconds'] / base:7.2f}" if base else "      -"
            print(
                f"{labels[mode]:<28} {r['seconds']:>8.1f} {rows / r['seconds']:>10,.0f} {r['peak_rss_mb']:>12,.0f} {ratio}"
            )
        if "stages" in results:
            print("stages:", ", ".join(f"{k} {v} s" for k, v in results["stages"]["stages"].items()))
        if "dlt" in results:
            print(f"dlt loaded {results['dlt']['rows']:,} rows from {results['dlt']['files']} files")
        if "cli" in results:
            print("\n" + results["cli"]["stdout"].strip())
        prints = {mode: fingerprint(urls[mode]) for mode in ("cli", "stages") if mode in results}
        for mode, fp in prints.items():
            print(f"\n{mode} warehouse (rows, sums of numeric columns):")
            for table, values in fp.items():
                print(
                    f"  {table:<22} {int(values[0]):>10,}  {' '.join(f'{v:.6g}' for v in values[1:] if v is not None)}"
                )
        if len(prints) == 2:
            same = prints["cli"] == prints["stages"]
            print("\nCLI and staged warehouses identical (counts and sums):", "yes" if same else "NO")
    finally:
        if not args.keep:
            for url in urls.values():
                db.drop_database(url)
        if temp:
            temp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
