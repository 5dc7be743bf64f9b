"""The Flask dashboard: pages for people, a JSON API for every chart.

Pages render their tables and KPI cards on the server and draw charts in the
browser with Plotly, whose ``plotly.min.js`` is served from the installed
``plotly`` package (``/vendor/plotly.min.js``): no CDN, works offline.
Everything is read from the analytics views through a read-only connection;
when the warehouse is unreachable and ``DASHBOARD_FALLBACK_DIR`` names an
``etl export`` folder, from those files instead (``dashboard/fallback.py``),
with a notice saying how old they are. ``/healthz`` tells a load balancer which.

Run: ``gunicorn wsgi:app`` (see docs/dashboards.md), or ``create_app(config)`` in tests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import plotly
from flask import Flask, Response, abort, render_template, request, send_file
from werkzeug.exceptions import HTTPException

from dashboard import controls_web, fallback, jobs_web, queries
from dashboard.config import DashboardConfig
from dashboard.params import BR_STATES, BadParameter, Filters, parse
from dashboard.sources import sales_by_source
from dashboard.warehouse import ReadOnlyWarehouse, SuperuserRefused, WarehouseUnavailable

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

#: On every response. Scripts and styles come only from this app (Plotly is served
#: from /vendor); Plotly adds its own <style> element and inline styles, hence
#: 'unsafe-inline' for styles only. Nothing may frame the dashboards.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Endpoint:
    """One JSON API route: the query it answers with and the parameters it accepts."""

    def __init__(self, query: Callable, params: tuple[str, ...], doc: str) -> None:
        self.query, self.params, self.doc = query, params, doc


API: dict[str, Endpoint] = {
    "kpis": Endpoint(
        queries.kpis, ("start", "end", "state"), "orders, items, revenue, average order value, customers"
    ),
    "monthly-sales": Endpoint(
        queries.monthly_sales,
        ("start", "end", "state", "category"),
        "per month: orders, items, revenue, freight, AOV, freight share",
    ),
    "top-products": Endpoint(
        queries.top_products,
        ("limit", "metric", "category"),
        "best products by revenue (or metric=units), with English category",
    ),
    "regions": Endpoint(
        queries.regions,
        ("start", "end", "state"),
        "per customer state: orders, revenue, AOV, delivery days, late share, customers",
    ),
    "categories": Endpoint(
        queries.category_map, (), "per category: price, freight ratio, instalments, voucher share"
    ),
    "segments": Endpoint(queries.segments, (), "RFM segments of customer lifetime value"),
    "anomalies": Endpoint(
        queries.anomalies,
        ("start", "end", "category", "limit"),
        "orders with |z| > 3 in value or items within category and month",
    ),
    "quality": Endpoint(queries.quality_scores, (), "run-wide quality score per dimension per run"),
    "quarantine": Endpoint(queries.quarantine_counts, ("run_id",), "quarantined rows per category and table"),
    "runs": Endpoint(queries.pipeline_runs, ("limit",), "pipeline runs from ingest_audit"),
    "sources": Endpoint(
        sales_by_source, ("start", "end"), "per source system (olist, shopify...): orders, revenue"
    ),
}

PAGES = [
    ("overview", "/", "Overview"),
    ("sales", "/sales", "Sales trend"),
    ("products", "/products", "Top products"),
    ("regions", "/regions", "Regions"),
    ("quality", "/quality", "Data quality"),
    ("runs", "/runs", "Pipeline runs"),
]
#: The navigation: the pages above (each answerable from a fallback export), then the
#: controls tabs (dashboard/controls_web.py: the pipeline's own records, never exported).
NAV = PAGES + controls_web.PAGES


class _Cache:
    """API answers reused for a few seconds: the views change only when refreshed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._items: dict[tuple, tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        if self.seconds <= 0:
            return None
        with self._lock:
            hit = self._items.get(key)
        return hit[1] if hit and hit[0] > time.monotonic() else None

    def put(self, key: tuple, body: bytes) -> None:
        if self.seconds > 0:
            with self._lock:
                if len(self._items) > 5000:
                    self._items.clear()
                self._items[key] = (time.monotonic() + self.seconds, body)


def _money(cents) -> str:
    """R$ 1.234.567,89 as Brazilians write it."""
    if cents is None:
        return "–"
    text = f"{abs(cents) / 100:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")
    return ("-" if cents < 0 else "") + "R$ " + text


class _Sources:
    """The warehouse first; the exported files while it is unreachable (if configured).

    After a failure the warehouse is left alone for ``retry_seconds`` (an
    unreachable host would otherwise cost a connect timeout per request).
    """

    def __init__(
        self, warehouse: ReadOnlyWarehouse, exports: fallback.ExportedAggregates | None, retry_seconds: float
    ) -> None:
        self.warehouse, self.exports, self.retry_seconds = warehouse, exports, retry_seconds
        self._down: tuple[float, str] | None = None  # (retry after, reason)

    def answer(self, load: dict[str, Callable], filters: Filters | None) -> tuple[dict, dict | None]:
        """Each query's answer, and the fallback description when they come from the export."""
        down = self._down
        if down is None or self.exports is None or time.monotonic() >= down[0]:
            try:
                with self.warehouse.connection() as conn:
                    result = {name: fn(conn, filters) for name, fn in load.items()}
                self._down = None
                return result, None
            except WarehouseUnavailable as exc:
                if self.exports is None or isinstance(exc, SuperuserRefused):
                    raise
                down = self._down = (time.monotonic() + self.retry_seconds, str(exc))
        snapshot = self.export_snapshot(down[1])
        try:
            return (
                {name: fallback.answer(snapshot, fn, filters) for name, fn in load.items()},
                snapshot.describe(down[1]),
            )
        except fallback.FallbackUnavailable as exc:
            raise WarehouseUnavailable(f"{down[1]}; the fallback export cannot answer: {exc}") from exc

    def export_snapshot(self, reason: str) -> fallback.Snapshot:
        try:
            return self.exports.snapshot()
        except fallback.FallbackUnavailable as exc:
            raise WarehouseUnavailable(f"{reason}; the fallback export cannot be used either: {exc}") from exc


def create_app(config: DashboardConfig | None = None) -> Flask:
    config = config or DashboardConfig.from_env()
    settings = config.settings
    app = Flask(__name__)
    app.json.sort_keys = False
    warehouse = ReadOnlyWarehouse(
        settings.database_url,
        pool_size=config.pool_size,
        connect_timeout=settings.connect_timeout,
        statement_timeout_ms=config.statement_timeout_ms,
        allow_superuser=config.allow_superuser,
    )
    try:  # refuse to start as a superuser; an unreachable warehouse is the fallback's business
        warehouse.check_role()
    except SuperuserRefused:
        raise
    except WarehouseUnavailable:
        pass
    cache = _Cache(config.cache_seconds)
    exports = fallback.ExportedAggregates(config.fallback_dir) if config.fallback_dir else None
    sources = _Sources(warehouse, exports, config.fallback_retry_seconds)
    app.extensions["warehouse"] = warehouse
    app.jinja_env.filters["money"] = _money
    app.jinja_env.filters["num"] = lambda n: "–" if n is None else f"{n:,}"
    app.jinja_env.filters["pct"] = lambda x: "–" if x is None else f"{float(x) * 100:.1f}%"

    def known_categories() -> frozenset[str]:
        key = ("__categories__",)
        cached = cache.get(key)
        if cached is not None:
            return frozenset(json.loads(cached))
        answers, served_from = sources.answer({"names": queries.categories}, None)
        if served_from is None:
            cache.put(key, json.dumps(answers["names"]).encode())
        return frozenset(answers["names"])

    app.register_blueprint(controls_web.blueprint(warehouse, NAV))
    if config.jobs_enabled:  # the upload part writes: only when explicitly enabled
        app.register_blueprint(jobs_web.blueprint(config, NAV))

    # --- JSON API ---------------------------------------------------------------------
    @app.get("/api/")
    def api_index():
        return {
            "endpoints": [
                {"path": f"/api/{name}", "params": list(ep.params), "returns": ep.doc}
                for name, ep in API.items()
            ],
            "conventions": {
                "money": "integer cents (BRL), fields *_cents",
                "dates": "São Paulo calendar days, YYYY-MM-DD; start/end inclusive",
                "state": "Brazilian state code, e.g. SP",
                "errors": "400 with {'error': message} for a bad parameter; "
                "503 when the warehouse is unreachable",
                "fallback": "answers from an `etl export` (warehouse unreachable, "
                "DASHBOARD_FALLBACK_DIR set) carry a 'fallback' field "
                "with exported_at",
            },
        }

    @app.get("/api/<name>")
    def api(name: str):
        endpoint = API.get(name)
        if endpoint is None:
            abort(404)
        key = (name, tuple(sorted(request.args.items(multi=True))))
        body = cache.get(key)
        if body is None:
            filters = parse(request.args, endpoint.params, known_categories)
            answers, served_from = sources.answer({"data": endpoint.query}, filters)
            params = {
                k: (v.isoformat() if hasattr(v, "isoformat") else v)
                for k, v in asdict(filters).items()
                if v is not None
            }
            answer = {"endpoint": name, "params": params, "data": answers["data"]}
            if served_from is not None:
                answer["fallback"] = served_from
            body = json.dumps(answer).encode()
            if served_from is None:  # export answers are not cached: recovery shows at once
                cache.put(key, body)
        return Response(body, mimetype="application/json")

    # --- pages ------------------------------------------------------------------------
    def page(template: str, allowed: tuple[str, ...], **load: Callable):
        filters = parse(request.args, allowed, known_categories)
        context, served_from = sources.answer(load, filters)
        return render_template(
            template,
            pages=NAV,
            filters=filters,
            states=sorted(BR_STATES),
            allowed=allowed,
            fallback=served_from,
            **context,
        )

    @app.get("/")
    def overview():
        return page("overview.html", ("start", "end", "state"), kpis=queries.kpis)

    @app.get("/sales")
    def sales():
        return page(
            "sales.html",
            ("start", "end", "state", "category"),
            months=queries.monthly_sales,
            categories=queries.categories,
            by_source=sales_by_source,
        )

    @app.get("/products")
    def products():
        return page(
            "products.html",
            ("limit", "metric", "category"),
            products=queries.top_products,
            category_rows=queries.category_map,
        )

    @app.get("/regions")
    def regions():
        return page("regions.html", ("start", "end", "state"), rows=queries.regions)

    @app.get("/quality")
    def quality():
        return page(
            "quality.html", ("run_id",), scores=queries.quality_scores, quarantine=queries.quarantine_counts
        )

    @app.get("/runs")
    def runs():
        return page("runs.html", ("limit",), runs=queries.pipeline_runs)

    @app.get("/healthz")
    def healthz():
        """200 ok / 200 "degraded: fallback" (serving an export) / 503: for load balancers."""
        try:
            with warehouse.connection() as conn, conn.cursor() as cur:
                cur.execute("SELECT 1 FROM sales_daily_state LIMIT 1")
            sources._down = None
            return {"status": "ok", "warehouse": warehouse.where}
        except WarehouseUnavailable as exc:
            reason = str(exc)
        if exports is not None:
            try:
                snapshot = exports.snapshot()
                return {
                    "status": "degraded: fallback",
                    "reason": reason,
                    "exported_at": snapshot.exported_at,
                    "export": str(exports.directory),
                }
            except fallback.FallbackUnavailable as exc:
                reason += f"; the fallback export cannot be used either: {exc}"
        return {"status": "unavailable", "reason": reason}, 503, {"Retry-After": "30"}

    @app.get("/vendor/plotly.min.js")
    def plotly_js():
        return send_file(PLOTLY_JS, mimetype="text/javascript", max_age=86400)

    # --- errors -----------------------------------------------------------------------
    def wants_json() -> bool:
        return request.path.startswith("/api/")

    @app.errorhandler(BadParameter)
    def bad_parameter(exc: BadParameter):
        if wants_json():
            return {"error": str(exc)}, 400
        return render_template(
            "error.html", pages=NAV, status=400, title="Bad request", message=str(exc)
        ), 400

    @app.errorhandler(WarehouseUnavailable)
    def unavailable(exc: WarehouseUnavailable):
        headers = {"Retry-After": "30"}
        if wants_json():
            return {"error": str(exc)}, 503, headers
        return (
            render_template(
                "error.html", pages=NAV, status=503, title="Warehouse unavailable", message=str(exc)
            ),
            503,
            headers,
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        """405, 400 from the server itself...: JSON on /api/*, the error page elsewhere."""
        code = exc.code or 500
        if code == 404:
            return not_found(exc)
        if wants_json():
            return {"error": exc.description or exc.name}, code
        return render_template(
            "error.html", pages=PAGES, status=code, title=exc.name, message=exc.description or exc.name
        ), code

    @app.errorhandler(Exception)
    def server_error(exc: Exception):
        """A bug: logged with its traceback; the person gets one line, never a stack or a secret."""
        app.logger.exception("unhandled error on %s", request.path)
        message = "internal error; the server log has the details"
        if wants_json():
            return {"error": message}, 500
        return render_template(
            "error.html", pages=PAGES, status=500, title="Internal error", message=message
        ), 500

    @app.after_request
    def security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.errorhandler(404)
    def not_found(exc):
        if wants_json():
            return {"error": f"no such endpoint {request.path}; see /api/"}, 404
        return render_template(
            "error.html",
            pages=NAV,
            status=404,
            title="Not found",
            message=f"There is no page {request.path}.",
        ), 404

    return app
