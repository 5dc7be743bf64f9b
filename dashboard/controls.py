"""The controls views' queries: exceptions, audit trail, controls summary, per-record results.

They read the pipeline's own records, not the sales views: ``quarantine``
(every rejected row, its sentence and raw record), ``quarantine_run_counts``,
``ingest_audit`` and ``run_events`` (what each run did, table by table and
stage by stage), ``quality_scores`` / ``quality_metrics`` (the gate's figures)
and ``quality_issues`` (every failed check of every row, hard or soft). The
raw records are source data, so the ``bi_reader`` role cannot read them; the
dashboard's login needs ``controls_reader`` (sql/roles.sql) for these views.

Every figure is a plain aggregate of those tables with the filters as bind
parameters, so a person (or a test) can check it with one SELECT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from psycopg2 import sql

from dashboard.params import BadParameter, parse_limit, parse_run_id
from etl.transform.checks import catalogue

#: quarantine / quality_issues category -> the kind of control people name it by.
CONTROL_KINDS = {
    "MISSING_REQUIRED_FIELD": "schema (required field)",
    "DATA_FORMAT_ERROR": "format",
    "BUSINESS_RULE_VIOLATION": "business rule",
    "REFERENTIAL_INTEGRITY": "reference",
    "DUPLICATE": "duplicate",
    "DATA_QUALITY_ISSUE": "quality (soft)",
}
STAGES = ("transform", "retry")
#: A retry run of `etl quarantine retry` is named R-retry-<time> (etl.run.quarantine).
RETRY_RUN = "%-retry-%"
_NAME = re.compile(r"^[A-Za-z0-9_:+>.-]{1,120}$")
PAGE_SIZE = 50


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def _rows(conn, statement: sql.Composable | str, params: dict | tuple = ()) -> list[dict]:
    with conn.cursor() as cur:
        cur.execute(statement, params)
        names = [d.name for d in cur.description]
        return [{n: _jsonable(v) for n, v in zip(names, row)} for row in cur.fetchall()]


def _where(conditions: list[sql.Composable]) -> sql.Composable:
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")


@dataclass(frozen=True)
class ControlFilters:
    """Parsed parameters of a controls page (absent ones are None)."""

    run_id: str | None = None
    table: str | None = None
    category: str | None = None
    rule: str | None = None
    stage: str | None = None
    page: int = 0
    limit: int | None = None


def _name(param: str, value: str) -> str:
    if not _NAME.match(value):
        raise BadParameter(f"parameter {param!r} must be a name like fact_orders or fk:order_id->fact_orders")
    return value


def parse_controls(args, allowed: tuple[str, ...]) -> ControlFilters:
    """The controls pages' parameters; anything else is a 400 with a sentence."""
    values: dict[str, Any] = {}
    for name, raw in args.items():
        if name not in allowed:
            raise BadParameter(f"unknown parameter {name!r}; this page accepts {', '.join(allowed)}")
        if raw == "":
            continue
        if name == "run_id":
            values[name] = parse_run_id(name, raw)
        elif name in ("table", "rule"):
            values[name] = _name(name, raw)
        elif name == "category":
            if raw not in CONTROL_KINDS:
                raise BadParameter(f"parameter 'category' must be one of {', '.join(CONTROL_KINDS)}")
            values[name] = raw
        elif name == "stage":
            if raw not in STAGES:
                raise BadParameter(f"parameter 'stage' must be one of {', '.join(STAGES)}")
            values[name] = raw
        elif name == "page":
            if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
                raise BadParameter("parameter 'page' must be a whole number from 1")
            values[name] = int(raw) - 1
        elif name == "limit":
            values[name] = parse_limit(name, raw)
    return ControlFilters(**values)


# --- Exceptions -------------------------------------------------------------------------


def _quarantine_filters(f: ControlFilters) -> tuple[list[sql.Composable], dict]:
    conditions: list[sql.Composable] = []
    params: dict[str, Any] = {}
    for column in ("run_id", "table", "category", "rule"):
        value = getattr(f, column)
        if value is not None:
            field = "table_name" if column == "table" else column
            conditions.append(sql.SQL("{} = %({})s").format(sql.Identifier(field), sql.SQL(column)))
            params[column] = value
    if f.stage == "retry":
        conditions.append(sql.SQL("run_id LIKE %(retry)s"))
        params["retry"] = RETRY_RUN
    elif f.stage == "transform":
        conditions.append(sql.SQL("run_id NOT LIKE %(retry)s"))
        params["retry"] = RETRY_RUN
    return conditions, params


_STAGE = sql.SQL("CASE WHEN run_id LIKE %(retry_stage)s THEN 'retry' ELSE 'transform' END")


def exceptions_summary(conn, f: ControlFilters) -> list[dict]:
    """Quarantined rows per run, stage, table, category and rule: open (not retried) and retried."""
    conditions, params = _quarantine_filters(f)
    params["retry_stage"] = RETRY_RUN
    return _rows(
        conn,
        sql.SQL(
            "SELECT run_id, {stage} AS stage, table_name, category, rule, count(*)::bigint AS rows, "
            "count(*) FILTER (WHERE retried_by_run IS NULL)::bigint AS open, "
            "count(*) FILTER (WHERE retried_by_run IS NOT NULL)::bigint AS retried "
            "FROM quarantine{where} GROUP BY 1, 2, 3, 4, 5 ORDER BY rows DESC, run_id, table_name, rule"
        ).format(stage=_STAGE, where=_where(conditions)),
        params,
    )


def exceptions_rows(conn, f: ControlFilters, page_size: int = PAGE_SIZE) -> list[dict]:
    """One page of quarantined rows with their sentence and the raw record as read."""
    conditions, params = _quarantine_filters(f)
    params.update(retry_stage=RETRY_RUN, limit=page_size, offset=f.page * page_size)
    return _rows(
        conn,
        sql.SQL(
            "SELECT quarantine_id, run_id, {stage} AS stage, table_name, source_file, row_number, "
            "category, rule, detail, raw_record, retried_by_run, retry_outcome FROM quarantine{where} "
            "ORDER BY quarantine_id LIMIT %(limit)s OFFSET %(offset)s"
        ).format(stage=_STAGE, where=_where(conditions)),
        params,
    )


def exceptions_export(conn, f: ControlFilters, limit: int = 1_000_000) -> list[dict]:
    """Every quarantined row matching the filters (the CSV export), capped at ``limit``."""
    return exceptions_rows(conn, ControlFilters(**{**f.__dict__, "page": 0}), page_size=limit)


def exceptions_trend(conn, f: ControlFilters | None = None) -> list[dict]:
    """Quarantined rows per run and category, runs in the order they started (the trend chart)."""
    return _rows(
        conn,
        "SELECT c.run_id, c.category, sum(c.rows)::bigint AS rows, min(r.started_at) AS started_at "
        "FROM quarantine_run_counts c LEFT JOIN pipeline_runs r USING (run_id) "
        "GROUP BY c.run_id, c.category ORDER BY min(r.started_at) NULLS LAST, c.run_id, c.category",
    )


# --- Audit trail ------------------------------------------------------------------------


def runs(conn, f: ControlFilters | None = None) -> list[dict]:
    """Every run, newest first (the run picker)."""
    return _rows(conn, "SELECT * FROM pipeline_runs ORDER BY started_at DESC NULLS LAST, run_id")


def latest_run(conn) -> str | None:
    found = _rows(conn, "SELECT run_id FROM pipeline_runs ORDER BY started_at DESC NULLS LAST LIMIT 1")
    return found[0]["run_id"] if found else None


def audit_trail(conn, f: ControlFilters) -> list[dict]:
    """A run's timeline: its stage events and each table's load, in the order they started."""
    run_id = f.run_id or latest_run(conn)
    if run_id is None:
        return []
    events = _rows(
        conn,
        "SELECT 'stage' AS kind, stage AS step, detail ->> 'source' AS source, status, started_at, finished_at, "
        "seconds, rows, NULL::bigint AS rows_loaded, NULL::bigint AS rows_quarantined, "
        "(detail ->> 'bytes')::bigint AS bytes, detail, error "
        "FROM run_events WHERE run_id = %(run)s",
        {"run": run_id},
    )
    tables = _rows(
        conn,
        "SELECT 'table' AS kind, table_name AS step, source, status, started_at, finished_at, seconds, "
        "rows_read AS rows, rows_loaded, rows_quarantined, bytes, "
        "jsonb_build_object('inserted', rows_inserted, 'updated', rows_updated, "
        "'unchanged', rows_unchanged, 'method', method, 'attempts', attempts) AS detail, error "
        "FROM ingest_audit WHERE run_id = %(run)s",
        {"run": run_id},
    )
    timeline = sorted(events + tables, key=lambda e: (e["started_at"] or "", e["kind"] != "stage"))
    for entry in timeline:
        entry["run_id"] = run_id
    return timeline


# --- Controls summary -------------------------------------------------------------------


def controls_summary(conn, f: ControlFilters) -> list[dict]:
    """Every control with rows checked and failed in the chosen (default: latest scored) run.

    Rows failed = distinct rows the rule flagged in ``quality_issues``; rows
    checked = the rows its table x dimension score was taken over
    (``quality_scores.rows_checked``). Controls of the catalogue that flagged
    nothing in the run are listed with 0 failed.
    """
    run_id = f.run_id or latest_scored_run(conn)
    if run_id is None:
        return []
    found = _rows(
        conn,
        "SELECT i.table_name, i.rule, i.dimension, i.category, bool_or(i.hard) AS hard, "
        "count(DISTINCT i.row_number)::bigint AS rows_failed, max(s.rows_checked)::bigint AS rows_checked "
        "FROM quality_issues i LEFT JOIN quality_scores s "
        "  ON s.run_id = i.run_id AND s.table_name = i.table_name AND s.dimension = i.dimension "
        "WHERE i.run_id = %(run)s AND (%(table)s::text IS NULL OR i.table_name = %(table)s) "
        "GROUP BY 1, 2, 3, 4 ORDER BY rows_failed DESC, 1, 2",
        {"run": run_id, "table": f.table},
    )
    seen = {r["rule"] for r in found}
    for check in sorted(catalogue(), key=lambda c: c.name):
        if check.name not in seen and f.table is None:
            found.append(
                {
                    "table_name": None,
                    "rule": check.name,
                    "dimension": check.dimension,
                    "category": check.category,
                    "hard": check.hard,
                    "rows_failed": 0,
                    "rows_checked": None,
                }
            )
    for row in found:
        row["run_id"] = run_id
        row["kind"] = CONTROL_KINDS.get(row["category"], row["category"])
        checked = row["rows_checked"]
        row["failed_pct"] = round(100.0 * row["rows_failed"] / checked, 3) if checked else None
    return found


def latest_scored_run(conn) -> str | None:
    found = _rows(
        conn,
        "SELECT run_id FROM quality_scores GROUP BY run_id ORDER BY max(computed_at) DESC LIMIT 1",
    )
    return found[0]["run_id"] if found else None


def controls_trend(conn, f: ControlFilters | None = None) -> list[dict]:
    """Effectiveness over runs: rows each kind of control caught per run (soft and hard)."""
    return _rows(
        conn,
        "SELECT i.run_id, i.category, count(DISTINCT (i.table_name, i.row_number))::bigint AS rows_failed, "
        "min(s.computed_at) AS computed_at FROM quality_issues i "
        "JOIN (SELECT run_id, min(computed_at) AS computed_at FROM quality_scores GROUP BY run_id) s "
        "USING (run_id) GROUP BY i.run_id, i.category ORDER BY min(s.computed_at), i.run_id, i.category",
    )


def gate(conn, f: ControlFilters) -> list[dict]:
    """The gate's thresholds against the run's figures: score >= target, metric <= limit."""
    run_id = f.run_id or latest_scored_run(conn)
    if run_id is None:
        return []
    rows = _rows(
        conn,
        "SELECT table_name, dimension AS measure, score AS value, target AS threshold, '>=' AS rule, "
        "rows_checked, rows_failed FROM quality_scores WHERE run_id = %(run)s AND target IS NOT NULL "
        "UNION ALL "
        "SELECT table_name, metric, value, limit_value, '<=', units_checked, units_failed "
        "FROM quality_metrics WHERE run_id = %(run)s AND limit_value IS NOT NULL "
        "ORDER BY 1, 2",
        {"run": run_id},
    )
    for row in rows:
        value, threshold = row["value"], row["threshold"]
        row["run_id"] = run_id
        row["passed"] = value >= threshold if row["rule"] == ">=" else value <= threshold
    return rows


# --- Per-record validation results -----------------------------------------------------


def tables_with_issues(conn, f: ControlFilters) -> list[str]:
    run_id = f.run_id or latest_scored_run(conn)
    found = _rows(
        conn,
        "SELECT DISTINCT table_name FROM quality_issues WHERE run_id = %(run)s ORDER BY 1",
        {"run": run_id},
    )
    return [r["table_name"] for r in found]


def record_results(conn, f: ControlFilters, page_size: int = PAGE_SIZE) -> list[dict]:
    """For a run and table: each failing record with every control it broke, and its quarantine row.

    One row per record (source file x row number): the rules (hard ones first),
    their sentences, whether the record was quarantined, and its raw record
    when it was (loaded records are in the warehouse table, flagged in dq_flags).
    """
    run_id = f.run_id or latest_scored_run(conn)
    if run_id is None:
        return []
    conditions = [sql.SQL("i.run_id = %(run)s")]
    params: dict[str, Any] = {"run": run_id, "limit": page_size, "offset": f.page * page_size}
    if f.table:
        conditions.append(sql.SQL("i.table_name = %(table)s"))
        params["table"] = f.table
    if f.rule:  # records that broke this rule, with every rule they broke
        conditions.append(
            sql.SQL(
                "EXISTS (SELECT 1 FROM quality_issues r WHERE r.run_id = i.run_id AND r.table_name = i.table_name "
                "AND r.source_file = i.source_file AND r.row_number = i.row_number AND r.rule = %(rule)s)"
            )
        )
        params["rule"] = f.rule
    rows = _rows(
        conn,
        sql.SQL(
            "SELECT i.run_id, i.table_name, i.source_file, i.row_number, bool_or(i.hard) AS quarantined, "
            "array_agg(i.rule ORDER BY i.hard DESC, i.rule) AS rules, "
            "array_agg(i.detail ORDER BY i.hard DESC, i.rule) AS details, "
            "array_agg(DISTINCT i.dimension) AS dimensions, "
            "(SELECT q.raw_record FROM quarantine q WHERE q.run_id = i.run_id AND q.table_name = i.table_name "
            "   AND q.source_file = i.source_file AND q.row_number = i.row_number LIMIT 1) AS raw_record "
            "FROM quality_issues i{} GROUP BY 1, 2, 3, 4 ORDER BY 2, 4 LIMIT %(limit)s OFFSET %(offset)s"
        ).format(_where(conditions)),
        params,
    )
    return rows
