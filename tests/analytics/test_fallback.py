"""The dashboard's fallback to `etl export` files, and /healthz.

Real parts: the session warehouse (Olist subset loaded by the pipeline) is
exported with `etl export` as CSV and as Parquet; an app whose DATABASE_URL
points at a closed port answers from those files, and every API answer must
equal the live warehouse's answer (to the cent), with the same validation.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest

from dashboard.app import API, PAGES, create_app
from dashboard.config import DashboardConfig
from etl import cli

DOWN_URL = "postgresql://postgres@127.0.0.1:9/nowhere"


@pytest.fixture(scope="module")
def live(dashboard_settings):
    app = create_app(DashboardConfig(settings=dashboard_settings, cache_seconds=0))
    yield app.test_client()
    app.extensions["warehouse"].close()


@pytest.fixture(scope="module", params=["csv", "parquet"])
def export(request, warehouse, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"export-{request.param}")
    mp = pytest.MonkeyPatch()
    mp.setenv("DATABASE_URL", warehouse.database_url)
    try:
        assert cli.main(["export", "--format", request.param, "--out", str(out)]) == 0
    finally:
        mp.undo()
    return out


def _down_app(warehouse, fallback_dir, **config):
    down = warehouse.with_overrides(database_url=DOWN_URL, connect_timeout=2)
    return create_app(DashboardConfig(settings=down, cache_seconds=0, fallback_dir=fallback_dir, **config))


@pytest.fixture(scope="module")
def offline(warehouse, export):
    return _down_app(warehouse, export).test_client()


_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}")


def _comparable(value):
    """Timestamps as instants (the export is rendered in UTC, the live session in the server's zone)."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, str) and _TIMESTAMP.match(value):
        return datetime.fromisoformat(value)
    return value


def _paths(top_category: str) -> list[str]:
    window = "start=2017-03-05&end=2017-09-20"
    return [
        "/api/kpis",
        "/api/kpis?state=SP",
        f"/api/kpis?{window}&state=RJ",
        "/api/kpis?start=2030-01-01",
        "/api/monthly-sales",
        f"/api/monthly-sales?{window}&category={top_category}",
        "/api/monthly-sales?state=MG&start=2017-03-05",
        f"/api/monthly-sales?state=SP&category={top_category}",
        "/api/top-products",
        "/api/top-products?metric=units&limit=25",
        f"/api/top-products?category={top_category}&limit=100",
        "/api/regions",
        f"/api/regions?{window}",
        "/api/regions?state=SP",
        "/api/categories",
        "/api/segments",
        "/api/quality",
        "/api/anomalies",
        "/api/anomalies?limit=100",
        f"/api/anomalies?category={top_category}",
        "/api/anomalies?start=2017-06-15&end=2017-12-31",
        "/api/quarantine",
        "/api/quarantine?run_id=subset-2-broken-rows",
        "/api/runs",
        "/api/runs?limit=1",
        "/api/sources",
        "/api/sources?start=2017-06-15&end=2017-12-31",
    ]


def test_every_api_answer_from_the_export_equals_the_live_warehouse(live, offline, export):
    exported_at = json.loads((export / "export.json").read_text())["exported_at"]
    top_category = live.get("/api/categories").get_json()["data"][0]["category"]
    paths = _paths(top_category)
    assert {p.split("?")[0].removeprefix("/api/") for p in paths} == set(API)
    for path in paths:
        want, got = live.get(path), offline.get(path)
        assert want.status_code == 200 and got.status_code == 200, (path, got.get_data(as_text=True))
        want, got = want.get_json(), got.get_json()
        assert "fallback" not in want
        assert got["fallback"]["exported_at"] == exported_at, path
        assert "127.0.0.1:9/nowhere is unreachable" in got["fallback"]["reason"]
        assert got["params"] == want["params"], path
        assert _comparable(got["data"]) == _comparable(want["data"]), path
        assert got["data"], path  # every comparison above is over real rows, not two empty answers
    # Exactness where it matters most: money as integers, identical to the cent.
    kpis = offline.get("/api/kpis").get_json()["data"]
    assert isinstance(kpis["revenue_cents"], int) and kpis["revenue_cents"] > 0


def test_the_fallback_validates_parameters_like_the_live_app(offline):
    for path, message in [
        ("/api/kpis?start=2017-02-30", "not a real calendar date"),
        ("/api/regions?state=XX", "unknown state"),
        ("/api/monthly-sales?category=no_such_category", "unknown category"),
        ("/api/top-products?category=x'%3BDROP%20TABLE%20fact_orders--", "category name"),
        ("/api/kpis?start=2018-01-01&end=2017-01-01", "is after"),
        ("/api/runs?limit=0", "from 1 to 100"),
        ("/api/kpis?colour=red", "unknown parameter"),
    ]:
        response = offline.get(path)
        assert response.status_code == 400, path
        assert message in response.get_json()["error"], path


def test_pages_say_they_show_an_export(offline, export):
    exported_at = json.loads((export / "export.json").read_text())["exported_at"]
    for _key, href, _label in PAGES:
        response = offline.get(href)
        html = response.get_data(as_text=True)
        assert response.status_code == 200, (href, html[:500])
        assert 'id="fallback-notice"' in html and f"from an export of {exported_at}" in html, href
    sales = offline.get("/sales?state=SP&start=2017-01-01").get_data(as_text=True)
    assert "R$" in sales and "from an export of" in sales


def test_healthz(live, offline, warehouse, tmp_path):
    ok = live.get("/healthz")
    assert ok.status_code == 200 and ok.get_json()["status"] == "ok"
    degraded = offline.get("/healthz")
    assert degraded.status_code == 200
    assert degraded.get_json()["status"] == "degraded: fallback"
    assert "unreachable" in degraded.get_json()["reason"]
    no_fallback = (
        create_app(
            DashboardConfig(
                settings=warehouse.with_overrides(database_url=DOWN_URL, connect_timeout=2), cache_seconds=0
            )
        )
        .test_client()
        .get("/healthz")
    )
    assert no_fallback.status_code == 503 and no_fallback.get_json()["status"] == "unavailable"


def test_a_missing_export_is_a_503_naming_both_problems(warehouse, tmp_path):
    client = _down_app(warehouse, tmp_path / "never-exported").test_client()
    response = client.get("/api/kpis")
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert "unreachable" in error and "export.json is missing" in error and "etl export" in error
    assert client.get("/healthz").status_code == 503
    page = client.get("/regions")
    assert page.status_code == 503 and "never-exported" in page.get_data(as_text=True)


def test_a_new_export_is_picked_up_without_a_restart(warehouse, export, tmp_path):
    import shutil

    folder = tmp_path / "exports"
    shutil.copytree(export, folder)
    client = _down_app(warehouse, folder).test_client()
    first = client.get("/api/segments").get_json()["fallback"]["exported_at"]
    manifest = json.loads((folder / "export.json").read_text())
    manifest["exported_at"] = "2031-01-01T00:00:00+00:00"
    (folder / "export.json").write_text(json.dumps(manifest))
    assert (
        client.get("/api/segments").get_json()["fallback"]["exported_at"]
        == "2031-01-01T00:00:00+00:00"
        != first
    )


def test_a_broken_exported_file_is_a_503_naming_it(warehouse, export, tmp_path):
    import shutil

    folder = tmp_path / "exports"
    shutil.copytree(export, folder)
    broken = next(folder.glob("top_products.*"))
    broken.write_bytes(broken.read_bytes()[:40] + b"\x00garbage, not the file etl export wrote")
    response = _down_app(warehouse, folder).test_client().get("/api/kpis")
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert f"{broken} cannot be read" in error and "re-run `etl export" in error
