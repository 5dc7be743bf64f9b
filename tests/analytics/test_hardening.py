"""Every route fuzzed against the real loaded warehouse: never a 500, JSON errors on /api/*,
security headers on every response, and no password of a malformed DATABASE_URL anywhere.
"""

from __future__ import annotations

import logging

import pytest

from dashboard.app import API, PAGES, SECURITY_HEADERS, create_app
from dashboard.config import DashboardConfig

HOSTILE = [
    "9999-12-31",
    "0001-01-01",
    "1899-12-31",
    "2101-01-01",
    "2017-02-30",
    "2017-1-1",
    "2017-01-01\n",
    "٢٠١٧-٠١-٠١",  # Arabic-Indic digits: \d matches them, date() does not
    "２０１７-０１-０１",  # full-width digits
    "²",
    "¹²",
    "١٠",
    "9" * 5000,  # past int()'s 4300-digit limit
    "-1",
    "0",
    "101",
    "1e3",
    "0x10",
    " 5",
    "5 ",
    "x" * 20_000,
    "\x00",
    "SP\x00",
    "a\x00b",
    "../../etc/passwd",
    "..",
    "%2e%2e%2f",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "😀",
    "\u202eevil",
    "sp",
    "health_beauty",
    "units",
    "subset-1",
    "",
]

PATHS = [
    "/api/..%2f..%2fetc%2fpasswd",
    "/api/%00",
    "/api/kpis%00",
    "/api/kpis/../../../etc/passwd",
    "/static/../app.py",
    "/static/%2e%2e/app.py",
    "/vendor/../../etc/passwd",
    "/api/" + "k" * 5000,
    "/" + "é" * 300,
]


@pytest.fixture(scope="module")
def client(dashboard_settings):
    app = create_app(DashboardConfig(settings=dashboard_settings, cache_seconds=0))
    yield app.test_client()
    app.extensions["warehouse"].close()


def _routes() -> list[tuple[str, tuple[str, ...]]]:
    api = [(f"/api/{name}", ep.params) for name, ep in API.items()]
    allowed = {
        "/": ("start", "end", "state"),
        "/sales": ("start", "end", "state", "category"),
        "/products": ("limit", "metric", "category"),
        "/regions": ("start", "end", "state"),
        "/quality": ("run_id",),
        "/runs": ("limit",),
    }
    assert set(allowed) == {path for _, path, _ in PAGES}
    return [*api, *allowed.items(), ("/api/", ()), ("/healthz", ())]


def _check(response, path: str) -> None:
    assert response.status_code != 500, (path, response.get_data(as_text=True)[:300])
    assert response.status_code in (200, 400, 404, 405), (path, response.status_code)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (path, name)
    if path.startswith("/api/"):
        assert response.is_json, (path, response.content_type)
        if response.status_code != 200:
            assert set(response.get_json()) == {"error"}, path


def test_every_route_answers_every_hostile_parameter_without_a_500(client):
    seen_400 = 0
    for path, params in _routes():
        for name in (*params, "unknown\x00name", "start"):
            for value in HOSTILE:
                response = client.get(path, query_string={name: value})
                _check(response, path)
                seen_400 += response.status_code == 400
        # every parameter repeated
        for name in params:
            response = client.get(path, query_string=[(name, "1"), (name, "2")])
            _check(response, path)
            assert response.status_code == 400, (path, name)
            assert "more than once" in response.get_data(as_text=True)
    assert seen_400 > 1000  # the fuzzing reached the parsers


@pytest.mark.parametrize("path", PATHS)
def test_traversal_and_odd_paths_are_404s_never_files(client, path):
    response = client.get(path)
    _check(response, path)
    assert response.status_code in (404, 400)
    assert b"import" not in response.data and b"root:" not in response.data


def test_out_of_range_dates_and_unicode_digits_say_what_is_expected(client):
    body = client.get("/api/kpis?end=9999-12-31").get_json()
    assert body == {"error": "parameter 'end' must be between 1900-01-01 and 2100-12-31, got 9999-12-31"}
    body = client.get("/api/top-products", query_string={"limit": "²"}).get_json()
    assert body["error"].startswith("parameter 'limit' must be a whole number from 1 to 100")
    body = client.get("/api/kpis", query_string={"start": "٢٠١٧-٠١-٠١"}).get_json()
    assert body["error"].startswith("parameter 'start' must be a date like 2017-06-30")


def test_a_wrong_method_on_the_api_is_json(client):
    response = client.post("/api/kpis")
    assert response.status_code == 405 and response.is_json
    assert SECURITY_HEADERS["X-Frame-Options"] == response.headers["X-Frame-Options"]


MALFORMED = [
    "postgresql://etl:CanaryPw-7d1f@[127.0.0.1/warehouse",  # unterminated IPv6 bracket
    "postgresql://etl:CanaryPw-7d1f@127.0.0.1:5432/warehouse?sslmode",  # parameter without =
    "etl:CanaryPw-7d1f@127.0.0.1/warehouse",  # no scheme: libpq reads it as key=value text
    "postgresql://etl:CanaryPw-7d1f@127.0.0.1:notaport/warehouse",
    "host=127.0.0.1 password=CanaryPw-7d1f port=x",
]


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_database_url_is_503_and_never_shows_its_password(dashboard_settings, url, caplog):
    settings = dashboard_settings.with_overrides(database_url=url)
    app = create_app(DashboardConfig(settings=settings, cache_seconds=0))
    client = app.test_client()
    with caplog.at_level(logging.DEBUG):
        health = client.get("/healthz")
        api = client.get("/api/kpis")
        page = client.get("/")
    assert health.status_code == api.status_code == page.status_code == 503
    assert health.get_json()["status"] == "unavailable"
    assert api.is_json and "unreachable" in api.get_json()["error"]
    for response in (health, api, page):
        assert "CanaryPw" not in response.get_data(as_text=True)
        for name in SECURITY_HEADERS:
            assert name in response.headers
    assert "CanaryPw" not in caplog.text
