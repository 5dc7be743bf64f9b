"""The controls tabs of the Flask dashboard: Exceptions, Audit trail, Controls summary, Per-record results.

A blueprint, registered by ``dashboard.app.create_app``: four pages under
``/controls/`` and their JSON under ``/api/controls/<name>``, plus a CSV /
JSON Lines export of the exceptions. Queries are in ``dashboard.controls``.
They read the warehouse directly (no fallback export: quarantine and audit
rows are not exported), through the same read-only connection pool.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

import psycopg2.errors
from flask import Blueprint, Response, abort, render_template, request

from dashboard import controls
from dashboard.params import BadParameter
from dashboard.warehouse import ReadOnlyWarehouse

PAGES = [
    ("controls-exceptions", "/controls/exceptions", "Exceptions"),
    ("controls-audit", "/controls/audit", "Audit trail"),
    ("controls-summary", "/controls/summary", "Controls"),
    ("controls-validation", "/controls/validation", "Record results"),
]
EXCEPTION_PARAMS = ("run_id", "table", "category", "rule", "stage", "page")

#: /api/controls/<name>: (query, accepted parameters)
API: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "exceptions": (controls.exceptions_summary, EXCEPTION_PARAMS[:-1]),
    "exceptions-rows": (controls.exceptions_rows, EXCEPTION_PARAMS),
    "exceptions-trend": (controls.exceptions_trend, ()),
    "runs": (controls.runs, ()),
    "audit": (controls.audit_trail, ("run_id",)),
    "controls": (controls.controls_summary, ("run_id", "table")),
    "controls-trend": (controls.controls_trend, ()),
    "gate": (controls.gate, ("run_id",)),
    "records": (controls.record_results, ("run_id", "table", "rule", "page")),
}


def blueprint(warehouse: ReadOnlyWarehouse, pages: list[tuple[str, str, str]]) -> Blueprint:
    bp = Blueprint("controls", __name__)

    def ask(load: dict[str, Callable], f: controls.ControlFilters) -> dict:
        with warehouse.connection() as conn:
            return {name: fn(conn, f) for name, fn in load.items()}

    def page(template: str, allowed: tuple[str, ...], **load: Callable):
        f = controls.parse_controls(request.args, allowed)
        context = ask({"runs": controls.runs, **load}, f)
        return render_template(
            template,
            pages=pages,
            filters=f,
            allowed=(),
            fallback=None,
            kinds=controls.CONTROL_KINDS,
            **context,
        )

    @bp.get("/controls/exceptions")
    def exceptions():
        return page(
            "controls_exceptions.html",
            EXCEPTION_PARAMS,
            summary=controls.exceptions_summary,
            rows=controls.exceptions_rows,
        )

    @bp.get("/controls/exceptions.<fmt>")
    def exceptions_export(fmt: str):
        if fmt not in ("csv", "jsonl"):
            abort(404)
        f = controls.parse_controls(request.args, EXCEPTION_PARAMS[:-1])
        rows = ask({"rows": controls.exceptions_export}, f)["rows"]
        if fmt == "jsonl":
            body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            mimetype = "application/x-ndjson"
        else:
            out = io.StringIO()
            names = list(rows[0]) if rows else ["quarantine_id", "run_id", "table_name", "rule", "detail"]
            writer = csv.DictWriter(out, fieldnames=names)
            writer.writeheader()
            for r in rows:
                writer.writerow({**r, "raw_record": json.dumps(r.get("raw_record"), ensure_ascii=False)})
            body, mimetype = out.getvalue(), "text/csv"
        return Response(
            body, mimetype=mimetype, headers={"Content-Disposition": f"attachment; filename=exceptions.{fmt}"}
        )

    @bp.get("/controls/audit")
    def audit():
        return page("controls_audit.html", ("run_id",), timeline=controls.audit_trail)

    @bp.get("/controls/summary")
    def summary():
        return page(
            "controls_summary.html", ("run_id",), controls_rows=controls.controls_summary, gate=controls.gate
        )

    @bp.get("/controls/validation")
    def validation():
        return page(
            "controls_validation.html",
            ("run_id", "table", "rule", "page"),
            records=controls.record_results,
            tables=controls.tables_with_issues,
        )

    @bp.get("/api/controls/<name>")
    def api(name: str):
        if name not in API:
            abort(404)
        query, allowed = API[name]
        f = controls.parse_controls(request.args, allowed)
        data = ask({"data": query}, f)["data"]
        return {"endpoint": f"controls/{name}", "params": dict(request.args), "data": data}

    @bp.errorhandler(psycopg2.errors.InsufficientPrivilege)
    def not_allowed(exc):
        message = (
            "the dashboard's login may not read the pipeline's records "
            f"({str(exc).splitlines()[0]}); grant it the controls_reader role (sql/roles.sql)"
        )
        if request.path.startswith("/api/"):
            return {"error": message}, 403
        return render_template(
            "error.html", pages=pages, status=403, title="Not allowed", message=message
        ), 403

    @bp.errorhandler(BadParameter)
    def bad(exc):
        if request.path.startswith("/api/"):
            return {"error": str(exc)}, 400
        return render_template(
            "error.html", pages=pages, status=400, title="Bad request", message=str(exc)
        ), 400

    return bp
