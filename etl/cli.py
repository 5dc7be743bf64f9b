"""The ``etl`` command line.

Every subcommand builds ``Settings`` from the environment once, applies its
flags, and calls one function of the ``etl`` package. Errors meant for people
(``EtlError``) print as a single line on stderr with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from etl import generate, lookups_update, olist, progress
from etl.errors import ConfigError, EtlError, SourceError
from etl.ingest import lineage
from etl.publish import aggregates, analytics, export, quarantine
from etl.run import jobs, pipeline, replay, setup, stages, validate
from etl.run import quarantine as quarantine_retry
from etl.settings import Settings
from etl.warehouse import connection as db
from etl.warehouse import local_cluster, schema


def _resolve_database(settings: Settings) -> Settings:
    """The settings to use, starting a private cluster when no server answers."""
    return local_cluster.resolve(settings, announce=lambda msg: print(msg, file=sys.stderr))


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    if args.no_quality_gate or args.clean_csv:
        settings = settings.with_overrides(
            dq_enforce=settings.dq_enforce and not args.no_quality_gate,
            clean_csv=settings.clean_csv or args.clean_csv,
        )
    if args.wait is not None:
        settings = settings.with_overrides(run_lock_wait=args.wait)
    summary = stages.run_pipeline(settings, data_dir=args.data_dir, run_id=args.run_id)
    print(summary.render())
    return 0


def cmd_stage(args: argparse.Namespace, settings: Settings) -> int:
    """One declared stage for one run, as a DAG task runs it (``etl stage load --run-id R``)."""
    if args.data_dir is not None:
        settings = settings.with_overrides(data_dir=args.data_dir)
    result = stages.run_stage(stages.STAGES_BY_NAME[args.name], stages.Run(settings, args.run_id))
    print(json.dumps(result, default=str))
    return 0


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    thresholds = validate.Thresholds.from_settings(settings)
    if args.no_require_quality_scores:
        thresholds = validate.Thresholds(
            thresholds.min_quality,
            thresholds.max_null_pct,
            thresholds.max_duplicate_pct,
            require_quality_scores=False,
        )
    report = validate.validate_run(settings, args.run_id, thresholds)
    print(report.render())
    if not report.passed:
        raise validate.ValidationError(report)
    return 0


def cmd_db_init(args: argparse.Namespace, settings: Settings) -> int:
    mode = setup.init_schema(settings, use_timescaledb=not args.no_timescaledb)
    print(f"warehouse {db.describe_url(settings.database_url)} ready ({mode.name})")
    return 0


def cmd_db_status(args: argparse.Namespace, settings: Settings) -> int:
    conn = db.connect(settings.database_url, settings.connect_timeout)
    try:
        mode = schema.timescale_mode(conn)
        print(f"warehouse: {db.describe_url(settings.database_url)}")
        print(
            f"mode: {mode.name}"
            + (
                f" (timescaledb {mode.version}, license {mode.license})"
                if mode.installed
                else " (timescaledb available, not enabled)"
                if mode.available
                else ""
            )
        )
        print(f"hypertables: {', '.join(schema.hypertables(conn)) or 'none'}")

        print(f"aggregates: {aggregates.describe(conn)}")
        for table, count in schema.table_counts(conn, olist.WAREHOUSE_TABLES).items():
            print(f"  {table:<20} {count:>10,}")
    finally:
        conn.close()
    return 0


def cmd_db_refresh(args: argparse.Namespace, settings: Settings) -> int:
    timings = analytics.refresh(settings)
    print(f"refreshed {len(timings)} analytics views in {sum(timings.values()):.1f} s")
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    for item in export.export_views(settings, args.out, args.format):
        print(f"{item.view:<28} {item.rows:>10,} rows -> {item.path}")
    return 0


def cmd_db_stop_local(args: argparse.Namespace, settings: Settings) -> int:
    print(local_cluster.stop(settings))
    return 0


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    names = [args.source] if args.source else None
    result = replay.ingest_and_load(
        settings, args.run_id or pipeline.new_run_id(), names, load=not args.no_load
    )
    for s in result["sources"]:
        print(
            f"{s['source']:<20} {s['status']:<9} {s.get('records_new', 0):>9,} new records"
        )  # a failure's reason was reported once, as a warning, when the run's inputs were assembled
    failed = [s for s in result["sources"] if s["status"] == "failed"]
    return 3 if failed else 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    result = replay.replay(settings, args.source, args.date, archived_run=args.archived_run)
    print(
        f"replayed {result['source']} {result['day']} as run {result['run_id']}: "
        f"{result['payloads']} payload(s)"
    )
    for t in result["tables"]:
        print(
            f"  {t['table']:<20} read {t['rows_read']:>9,}  loaded {t['rows_loaded']:>9,}  "
            f"quarantined {t['rows_quarantined']:>7,}"
        )


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    summary = generate.generate(args.orders, args.dirty_rate, args.seed, args.out)
    print(
        f"wrote {sum(summary['rows'].values()):,} rows in 9 files to {args.out} "
        f"({summary['hard_rows']:,} rows must be quarantined; see ground_truth.csv)"
    )
    return 0


def cmd_quarantine(args: argparse.Namespace, settings: Settings) -> int:
    if args.q_command == "retry":
        print(quarantine_retry.retry(settings, args.run, args.table).render())
        return 0
    quarantine.require_run(settings, args.run)
    if args.q_command == "list":
        rows = quarantine.summary(settings, args.run, args.table)
        print(f"{'table':<20} {'category':<24} {'rule':<32} {'open':>8} {'retried':>8}")
        for table, category, rule, open_rows, retried in rows:
            print(f"{table:<20} {category:<24} {rule:<32} {open_rows:>8,} {retried:>8,}")
        print(f"{sum(r[3] for r in rows):,} open rows in run {args.run}")
    elif args.q_command == "show":
        quarantine.print_table(quarantine.rows(settings, args.run, args.table, args.rule, args.limit))
    elif args.q_command == "export":
        n = quarantine.export(settings, args.run, args.out, args.table)
        print(f"wrote {n:,} rows to {args.out}")
    return 0


def cmd_lookups(args: argparse.Namespace, settings: Settings) -> int:
    report = lookups_update.update(args.data_dir, settings.lookup_dir, apply=args.apply)
    print(report.render())
    unmapped = report.unmapped()
    if args.check and unmapped:
        raise lookups_update.UnmappedValuesError(
            f"{len(unmapped)} value(s) in {args.data_dir} are not in the lookups "
            f"(first: {unmapped[0][0]} '{unmapped[0][1].value}' in {unmapped[0][1].example}); "
            f"add aliases to {settings.lookup_dir} or leave them to be quarantined"
        )
    return 0


def cmd_lineage(args: argparse.Namespace, settings: Settings) -> int:
    system, source_id = args.system, args.id
    if args.order:
        orders = olist.ORDERS
        found = lineage.warehouse_lineage(settings, orders.name, orders.key[0], args.order)
        if found is None:
            print(f"{orders.name} {args.order}: no source_system/source_id; it came from the Olist files")
            return 0
        system, source_id = found
        print(f"{orders.name} {args.order}: source_system {system}, source_id {source_id}")
    elif not (system and source_id):
        raise ConfigError("give --order ORDER_ID, or both --system and --id")
    hits = lineage.find_raw(settings, system, source_id)
    if not hits:
        raise SourceError(
            f"no archived record {source_id} of {system} under {settings.staging_dir / 'raw'} "
            "(archives are kept per day; was it pruned?)"
        )
    for hit in hits:
        print(f"  {hit.location}  run {hit.run_id}  received {hit.received_at}")
    print("record:")
    print(json.dumps(hits[-1].record, indent=2, ensure_ascii=False))
    return 0


def cmd_jobs_worker(args: argparse.Namespace, settings: Settings) -> int:
    done = jobs.work(
        settings, once=args.once, poll_seconds=args.poll, announce=lambda m: print(m, flush=True)
    )
    print(f"worker stopped after {done} job(s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etl", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="ingest, transform and load the Olist files")
    run.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with the Olist CSV files (.csv or .csv.gz); "
        "default: the sample shipped in data/sample/olist",
    )
    run.add_argument("--run-id", default=None, help="identifier for the audit trail (default: new)")
    run.add_argument(
        "--no-quality-gate",
        action="store_true",
        help="load even when a quality score misses its target (scores are still stored)",
    )
    run.add_argument("--clean-csv", action="store_true", help="also write the clean batches as CSV")
    run.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="when another run is running on the warehouse, wait for it (default) or exit (--no-wait, exit 4)",
    )
    run.set_defaults(func=cmd_run, needs_db=True)

    stg = sub.add_parser("stage", help="run one declared stage of a run, as an Airflow task does")
    stg.add_argument("name", choices=[stage.name for stage in stages.STAGES])
    stg.add_argument("--run-id", required=True, help="the run the stage works for")
    stg.add_argument("--data-dir", type=Path, default=None, help="the Olist folder (ingest stage)")
    stg.set_defaults(func=cmd_stage, needs_db=True)

    ing = sub.add_parser("ingest", help="ingest the sources of sources.yml, then transform and load")
    ing.add_argument("--source", default=None, help="only this source (default: every enabled one)")
    ing.add_argument("--run-id", default=None, help="identifier for the audit trail (default: new)")
    ing.add_argument("--no-load", action="store_true", help="stage and archive only; load nothing")
    ing.set_defaults(func=cmd_ingest, needs_db=True)
    rep = sub.add_parser("replay", help="rebuild a source's day from the raw archive alone and load it")
    rep.add_argument("--source", required=True, help="source name (or 'olist' for the data folder)")
    rep.add_argument("--date", required=True, help="archive day, YYYY-MM-DD (UTC)")
    rep.add_argument("--archived-run", default=None, help="only payloads of this run id")
    rep.set_defaults(func=cmd_replay, needs_db=True)
    val = sub.add_parser("validate", help="the validation gate for one run (exit 3 when it fails)")
    val.add_argument("--run-id", required=True, help="the run to check (e.g. daily-2018-08-01)")
    val.add_argument(
        "--no-require-quality-scores",
        action="store_true",
        help="pass the quality check when the run has no quality_scores rows",
    )
    val.set_defaults(func=cmd_validate, needs_db=True)

    dbp = sub.add_parser("db", help="warehouse set-up and status").add_subparsers(
        dest="db_command", required=True
    )
    init = dbp.add_parser("init", help="create the database and apply the schema (idempotent)")
    init.add_argument(
        "--no-timescaledb",
        action="store_true",
        help="do not create the timescaledb extension even if available",
    )
    init.set_defaults(func=cmd_db_init, needs_db=True)
    dbp.add_parser("status", help="mode (PostgreSQL / TimescaleDB) and row counts").set_defaults(
        func=cmd_db_status, needs_db=True
    )
    dbp.add_parser("refresh", help="refresh the analytics views (after loads)").set_defaults(
        func=cmd_db_refresh, needs_db=True
    )
    export = sub.add_parser("export", help="write every analytical view as CSV or Parquet files")
    export.add_argument("--format", choices=["csv", "parquet"], default="csv")
    export.add_argument("--out", type=Path, required=True, help="folder to write the files into")
    export.set_defaults(func=cmd_export, needs_db=True)
    dbp.add_parser("stop-local", help="stop the private cluster under .local/ if running").set_defaults(
        func=cmd_db_stop_local, needs_db=False
    )

    gen = sub.add_parser("generate", help="write Olist-shaped dirty CSVs and their ground truth")
    gen.add_argument("--orders", type=int, required=True, help="number of orders (items, payments... follow)")
    gen.add_argument("--dirty-rate", type=float, default=0.05, help="share of rows per table given a defect")
    gen.add_argument("--seed", type=int, default=0, help="random seed: same seed, same files")
    gen.add_argument("--out", type=Path, required=True, help="folder to write the CSVs into")
    gen.set_defaults(func=cmd_generate, needs_db=False)

    lkp = sub.add_parser("lookups", help="canonical lists from the data").add_subparsers(
        dest="lookups_command", required=True
    )
    lku = lkp.add_parser("update", help="map the data's values; list the unknown ones (diff unless --apply)")
    lku.add_argument("data_dir", type=Path, help="folder with the Olist CSV files (.csv or .csv.gz)")
    lku.add_argument("--apply", action="store_true", help="write the lookup files (default: print the diff)")
    lku.add_argument("--check", action="store_true", help="exit 3 when the data holds unmapped values (CI)")
    lku.set_defaults(func=cmd_lookups, needs_db=False)

    jp = sub.add_parser("jobs", help="uploaded files (docs/jobs.md)").add_subparsers(
        dest="jobs_command", required=True
    )
    jw = jp.add_parser("worker", help="take queued jobs from the warehouse and load them, one at a time")
    jw.add_argument("--once", action="store_true", help="stop when the queue is empty")
    jw.add_argument("--poll", type=float, default=2.0, help="seconds between looks at an empty queue")
    jw.set_defaults(func=cmd_jobs_worker, needs_db=True)

    lin = sub.add_parser("lineage", help="the archived raw payload of a warehouse row")
    lin.add_argument("--order", default=None, help="a fact_orders order_id (its source_system/source_id)")
    lin.add_argument("--system", default=None, help="source_system, e.g. shopify")
    lin.add_argument("--id", default=None, help="source_id: the vendor's own id")
    lin.set_defaults(func=cmd_lineage, needs_db=True)

    qp = sub.add_parser("quarantine", help="see, export and retry rejected rows").add_subparsers(
        dest="q_command", required=True
    )
    for name, text in (
        ("list", "counts per table, category and rule"),
        ("show", "the rows, with reasons"),
        ("export", "write the rows to .csv or .jsonl"),
        ("retry", "re-run open rows after a lookup fix; load those that pass"),
    ):
        q = qp.add_parser(name, help=text)
        q.add_argument("--run", required=True, help="run id (see ingest_audit)")
        q.add_argument("--table", default=None, help="only this warehouse table")
        if name == "show":
            q.add_argument("--rule", default=None, help="only this rule, e.g. price_positive")
            q.add_argument("--limit", type=int, default=50)
        if name == "export":
            q.add_argument("--out", type=Path, required=True, help="file.csv or file.jsonl")
        q.set_defaults(func=cmd_quarantine, needs_db=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = Settings.from_env()
        if getattr(args, "needs_db", False):
            settings = _resolve_database(settings)
        # Bars on a terminal, a line every ETL_PROGRESS_SECONDS otherwise (etl/progress.py).
        with progress.installed(progress.for_stream(sys.stderr)):
            return args.func(args, settings)
    except EtlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; nothing was committed by the interrupted step", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
