"""Every page and API route of the Flask app against the real loaded warehouse.

The API's figures are compared with pandas computations from the source CSVs
(see conftest.source) to the cent.
"""

from __future__ import annotations

import psycopg2
import pytest

from dashboard.app import API, PAGES, create_app
from dashboard.config import DashboardConfig
from tests.conftest import query, scalar


@pytest.fixture(scope="module")
def client(dashboard_settings):
    app = create_app(DashboardConfig(settings=dashboard_settings, cache_seconds=0))
    yield app.test_client()
    app.extensions["warehouse"].close()


def api(client, path: str):
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["data"]


def test_total_revenue_and_orders_equal_the_source(client, source):
    kpis = api(client, "/api/kpis")
    sold, items = source["sold"], source["sold_items"]
    assert kpis["revenue_cents"] == int(items["price_cents"].sum())
    assert kpis["freight_cents"] == int(items["freight_cents"].sum())
    assert kpis["orders"] == len(sold) == 21_458 - 107 - 3
    assert kpis["items"] == len(items)
    assert kpis["customers"] == sold["customer_unique_id"].nunique()


def test_orders_and_revenue_per_state_equal_the_source(client, source):
    rows = {r["customer_state"]: r for r in api(client, "/api/regions")}
    orders = source["sold"].groupby("customer_state").size()
    revenue = source["sold_items"].groupby("customer_state")["price_cents"].sum()
    assert set(rows) == set(orders.index)
    for state, row in rows.items():
        assert row["orders"] == orders[state], state
        assert row["revenue_cents"] == revenue[state], state
    # Ordered by revenue, as the chart shows them.
    assert [r["revenue_cents"] for r in rows.values()] == sorted(revenue, reverse=True)


def test_top_ten_products_equal_the_source(client, source):
    items = source["sold_items"]
    expected = (
        items.groupby(["product_id", "category"])
        .agg(revenue_cents=("price_cents", "sum"), units=("price_cents", "size"))
        .reset_index()
        .sort_values(["revenue_cents", "product_id"], ascending=[False, True])
        .head(10)
    )
    got = api(client, "/api/top-products")
    assert [(r["product_id"], r["category"], r["revenue_cents"], r["units"]) for r in got] == list(
        expected.itertuples(index=False, name=None)
    )
    by_units = api(client, "/api/top-products?metric=units&limit=5")
    units = (
        items.groupby("product_id")
        .size()
        .reset_index(name="n")
        .sort_values(["n", "product_id"], ascending=[False, True])
        .head(5)
    )
    assert [(r["product_id"], r["units"]) for r in by_units] == list(units.itertuples(index=False, name=None))


def test_monthly_revenue_equals_the_source(client, source):
    items = source["sold_items"]
    expected = items.groupby("month")["price_cents"].sum()
    got = {r["month"][:7]: r for r in api(client, "/api/monthly-sales")}
    assert {m: r["revenue_cents"] for m, r in got.items()} == expected.to_dict()
    orders = source["sold"].groupby("month").size()
    assert {m: r["orders"] for m, r in got.items()} == orders.to_dict()


def test_filters_narrow_the_figures_exactly(client, source):
    items = source["sold_items"]
    mask = (items["customer_state"] == "RJ") & (items["day"] >= "2017-03-15") & (items["day"] <= "2017-09-30")
    kpis = api(client, "/api/kpis?state=RJ&start=2017-03-15&end=2017-09-30")
    assert kpis["revenue_cents"] == int(items.loc[mask, "price_cents"].sum())
    cat = items[(items["category"] == "health_beauty") & (items["customer_state"] == "SP")]
    months = api(client, "/api/monthly-sales?category=health_beauty&state=SP")
    assert {r["month"][:7]: r["revenue_cents"] for r in months} == cat.groupby("month")[
        "price_cents"
    ].sum().to_dict()
    top = api(client, "/api/top-products?category=watches_gifts&limit=3")
    assert [r["category"] for r in top] == ["watches_gifts"] * 3


@pytest.mark.parametrize(
    "params",
    [
        "",
        "?state=RJ",
        "?start=2017-03-01&end=2017-09-30",
        "?start=2017-02-01&end=2017-02-28&state=SP",
        "?start=2016-01-01",
        "?end=2018-12-31&state=MG",
    ],
)
@pytest.mark.parametrize("endpoint", ["kpis", "monthly-sales", "regions"])
def test_whole_month_ranges_read_the_monthly_rollup_with_the_daily_figures(
    client, monkeypatch, endpoint, params
):
    from dashboard import queries

    assert queries._grain(queries.Filters(start=None, end=None)) is queries._MONTHLY
    monthly = api(client, f"/api/{endpoint}{params}")
    monkeypatch.setattr(queries, "_grain", lambda f: queries._DAILY)
    assert api(client, f"/api/{endpoint}{params}") == monthly


def test_ranges_that_cut_a_month_read_the_daily_view(client, source):
    from datetime import date

    from dashboard import queries

    for start, end in [
        (date(2017, 3, 2), None),
        (None, date(2017, 9, 29)),
        (date(2017, 3, 1), date(2017, 3, 30)),
    ]:
        assert queries._grain(queries.Filters(start=start, end=end)) is queries._DAILY
    items = source["sold_items"]
    mask = (items["day"] >= "2017-03-01") & (items["day"] <= "2017-03-30")
    assert api(client, "/api/kpis?start=2017-03-01&end=2017-03-30")["revenue_cents"] == int(
        items.loc[mask, "price_cents"].sum()
    )


@pytest.mark.parametrize("name", sorted(API))
def test_every_api_route_answers_json(client, name):
    body = client.get(f"/api/{name}").get_json()
    assert body["endpoint"] == name
    assert body["data"], f"/api/{name} returned no rows from the loaded warehouse"


def test_quality_and_quarantine_come_from_their_tables(client, warehouse):
    scores = api(client, "/api/quality")
    stored = query(
        warehouse,
        "SELECT run_id, dimension, score::float FROM quality_scores "
        "WHERE table_name = '_overall' ORDER BY computed_at, run_id, dimension",
    )
    assert [(s["run_id"], s["dimension"], float(s["score"])) for s in scores] == stored
    assert {s["run_id"] for s in scores} == {"subset-1", "subset-2-broken-rows"}
    counts = {(r["category"], r["table_name"]): r["rows"] for r in api(client, "/api/quarantine")}
    assert counts == {
        ("DUPLICATE", "fact_orders"): 1,
        ("DATA_FORMAT_ERROR", "fact_orders"): 1,
        ("MISSING_REQUIRED_FIELD", "fact_orders"): 1,
        ("REFERENTIAL_INTEGRITY", "fact_order_items"): 1,
    }
    assert api(client, "/api/quarantine?run_id=subset-1") == []
    runs = api(client, "/api/runs")
    assert [r["run_id"] for r in runs] == ["subset-2-broken-rows", "subset-1"]
    assert runs[0]["rows_quarantined"] == 4 and runs[1]["rows_quarantined"] == 0


@pytest.mark.parametrize("key, href, label", PAGES)
def test_every_page_renders_with_its_figures(client, key, href, label):
    response = client.get(href)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f"<h1>{label}" in html or label.split()[0] in html
    assert "cdn" not in html.lower() and "https://" not in html
    assert 'src="/vendor/plotly.min.js"' in html


def test_overview_shows_the_kpis(client, source):
    html = client.get("/").get_data(as_text=True)
    total = int(source["sold_items"]["price_cents"].sum())
    reais = f"{total // 100:,}".replace(",", ".") + f",{total % 100:02d}"
    assert f'id="kpi-revenue">R$ {reais}<' in html
    assert f'id="kpi-orders">{len(source["sold"]):,}<' in html


def test_plotly_is_served_by_the_app(client):
    response = client.get("/vendor/plotly.min.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert b"plotly.js" in response.data[:200] and len(response.data) > 1_000_000


@pytest.mark.parametrize(
    "path, words",
    [
        ("/api/kpis?start=2017-02-30", "not a real calendar date"),
        ("/api/kpis?start=yesterday", "must be a date like"),
        ("/api/kpis?start=2018-01-01&end=2017-01-01", "is after"),
        ("/api/regions?state=XX", "unknown state"),
        ("/api/kpis?state=SP%27%3B%20DROP%20TABLE%20fact_orders%3B--", "unknown state"),
        ("/api/monthly-sales?category=x%27%20OR%201%3D1--", "must be a category name"),
        ("/api/top-products?category=not_a_category", "unknown category"),
        ("/api/top-products?limit=0", "from 1 to 100"),
        ("/api/top-products?limit=1;SELECT", "from 1 to 100"),
        ("/api/top-products?metric=price", "must be one of revenue, units"),
        ("/api/kpis?category=toys", "unknown parameter 'category'"),
        ("/api/kpis?state=SP&state=RJ", "once"),
    ],
)
def test_bad_parameters_get_a_400_with_a_message(client, warehouse, path, words):
    response = client.get(path)
    assert response.status_code == 400
    assert words in response.get_json()["error"]
    assert scalar(warehouse, "SELECT count(*) FROM fact_orders") == 21_458


def test_a_bad_parameter_on_a_page_is_a_400_page(client):
    response = client.get("/sales?state=<script>")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "unknown state" in html and "<script>" not in html.split("<main>")[1]


def test_the_dashboard_connection_is_read_only(client):
    with client.application.extensions["warehouse"].connection() as conn:
        with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
            with conn.cursor() as cur:
                cur.execute("DELETE FROM fact_orders")


def test_an_unreachable_warehouse_is_a_503_not_a_crash(warehouse):
    down = warehouse.with_overrides(
        database_url="postgresql://postgres@127.0.0.1:9/nowhere", connect_timeout=2
    )
    client = create_app(DashboardConfig(settings=down, cache_seconds=0)).test_client()
    page = client.get("/")
    assert page.status_code == 503
    assert "127.0.0.1:9/nowhere is unreachable" in page.get_data(as_text=True)
    response = client.get("/api/kpis")
    assert response.status_code == 503
    assert "unreachable" in response.get_json()["error"]
    assert response.headers["Retry-After"] == "30"
