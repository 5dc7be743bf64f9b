"""Reading the quarantine for people: ``etl quarantine list|show|export``.

The rejected rows of a run, by table, category and rule, with their raw
records and reasons; nothing here writes. The retry (``etl quarantine retry``)
is ``etl.run.quarantine``.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pandas as pd
from psycopg2 import sql

from etl import spreadsheet
from etl.errors import ConfigError, SourceError
from etl.settings import Settings
from etl.warehouse import connection as db
from etl.warehouse import schema


def connect_current(settings: Settings):
    conn = db.connect(settings.database_url, settings.connect_timeout)
    schema.require_current(conn)
    return conn


def open_rows_where(run_id: str, table: str | None) -> tuple[sql.Composable, list]:
    """The WHERE clause of a run's rows not retried yet (what a retry takes)."""
    return _where(run_id, table, open_only=True)


def _where(run_id: str, table: str | None, open_only: bool = False) -> tuple[sql.Composable, list]:
    clauses, params = [sql.SQL("run_id = %s")], [run_id]
    if table:
        clauses.append(sql.SQL("table_name = %s"))
        params.append(table)
    if open_only:
        clauses.append(sql.SQL("retried_by_run IS NULL"))
    return sql.SQL(" AND ").join(clauses), params


def summary(settings: Settings, run_id: str, table: str | None = None) -> list[tuple]:
    """(table, category, rule, open rows, retried rows) of one run."""
    conn = connect_current(settings)
    try:
        where, params = _where(run_id, table)
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("""SELECT table_name, category, rule,
                                          count(*) FILTER (WHERE retried_by_run IS NULL),
                                          count(*) FILTER (WHERE retried_by_run IS NOT NULL)
                                     FROM quarantine WHERE {} GROUP BY 1, 2, 3 ORDER BY 1, 4 DESC, 3""").format(
                    where
                ),
                params,
            )
            return cur.fetchall()
    finally:
        conn.close()


def rows(
    settings: Settings,
    run_id: str,
    table: str | None = None,
    rule: str | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """The quarantined rows of a run, with their reasons and records as read."""
    conn = connect_current(settings)
    try:
        where, params = _where(run_id, table)
        if rule:
            where = sql.SQL("{} AND rule = %s").format(where)
            params.append(rule)
        query = sql.SQL("""SELECT quarantine_id, run_id, table_name, source_file, row_number, category, rule,
                                  detail, raw_record::text AS raw_record, retried_by_run, retry_outcome
                             FROM quarantine WHERE {} ORDER BY table_name, row_number{}""").format(
            where, sql.SQL(" LIMIT {}").format(sql.Literal(int(limit))) if limit else sql.SQL("")
        )
        with conn.cursor() as cur:
            cur.execute(query, params)
            names = [d[0] for d in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=names)
    finally:
        conn.close()


def export(settings: Settings, run_id: str, out: Path, table: str | None = None) -> int:
    """Write a run's quarantine to CSV (raw record as JSON text) or JSON Lines (``.jsonl``)."""
    frame = rows(settings, run_id, table)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".jsonl":
        with open(out, "w", encoding="utf-8") as fh:
            for rec in frame.to_dict("records"):
                rec["raw_record"] = json.loads(rec["raw_record"])
                fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
    elif out.suffix == ".csv":
        spreadsheet.escape_frame(frame).to_csv(out, index=False, quoting=csv.QUOTE_MINIMAL)  # no formula runs
    else:
        raise ConfigError(f"{out}: export writes .csv or .jsonl files")
    return len(frame)


# --- retry ------------------------------------------------------------------------------


def print_table(frame: pd.DataFrame, stream=sys.stdout) -> None:
    if frame.empty:
        print("no rows", file=stream)
        return
    print(frame.to_string(index=False, max_colwidth=80), file=stream)


def require_run(settings: Settings, run_id: str) -> None:
    conn = connect_current(settings)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT 1 FROM ingest_audit WHERE run_id = %s UNION ALL "
                "SELECT 1 FROM quarantine WHERE run_id = %s LIMIT 1",
                (run_id, run_id),
            )
            if cur.fetchone() is None:
                raise SourceError(f"run {run_id} is not in the warehouse (see ingest_audit for run ids)")
    finally:
        conn.close()
