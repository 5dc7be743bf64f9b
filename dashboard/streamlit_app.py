"""Streamlit dashboard: ``streamlit run dashboard/streamlit_app.py``.

KPI cards, the sales trend, top products, RFM segments, data-quality scores
against their targets, and a raw data viewer that pages through the warehouse.
Reads the same analytics views as the Flask app (``dashboard.queries``) through
a read-only connection; DATABASE_URL chooses the warehouse.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run` puts only this folder on sys.path; the package lives one up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
import plotly.express as px  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard import queries, sources  # noqa: E402
from dashboard.config import DashboardConfig  # noqa: E402
from dashboard.params import BR_STATES, Filters  # noqa: E402
from dashboard.warehouse import ReadOnlyWarehouse, WarehouseUnavailable  # noqa: E402

PAGE_SIZE = 50


@st.cache_resource
def _warehouse(url: str, connect_timeout: int, allow_superuser: bool) -> ReadOnlyWarehouse:
    return ReadOnlyWarehouse(
        url, pool_size=2, connect_timeout=connect_timeout, allow_superuser=allow_superuser
    )


def _brl(cents: int | float | None) -> str:
    if cents is None:
        return "–"
    return "R$ " + f"{cents / 100:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")


def _ask(warehouse: ReadOnlyWarehouse, query, *args, **kwargs):
    with warehouse.connection() as conn:
        return query(conn, *args, **kwargs)


def main() -> None:
    st.set_page_config(page_title="Olist warehouse", layout="wide")
    st.title("Olist warehouse")
    config = DashboardConfig.from_env()
    warehouse = _warehouse(
        config.settings.database_url, config.settings.connect_timeout, config.allow_superuser
    )
    try:  # (a superuser login is refused here, with its reason: SuperuserRefused)
        everything = _ask(warehouse, queries.kpis, Filters())
        categories = _ask(warehouse, lambda c: queries.categories(c))
        systems = _ask(warehouse, sources.source_systems)
    except WarehouseUnavailable as exc:
        st.error(str(exc))
        st.stop()

    # --- filters -----------------------------------------------------------------------
    side = st.sidebar
    side.header("Filters")
    first = pd.Timestamp(everything["first_day"] or "2016-01-01").date()
    last = pd.Timestamp(everything["last_day"] or "2018-12-31").date()
    chosen = side.date_input(
        "Purchased between", value=(first, last), min_value=first, max_value=last, key="dates"
    )
    start, end = chosen if isinstance(chosen, (tuple, list)) and len(chosen) == 2 else (first, last)
    state = side.selectbox("Customer state", ["all", *sorted(BR_STATES)], key="state")
    category = side.selectbox("Category", ["all", *categories], key="category")
    statuses = side.multiselect("Order status (raw data)", list(queries.ORDER_STATUSES), key="statuses")
    source = side.selectbox("Source system (raw data)", ["all", *systems], key="source")
    filters = Filters(
        start=None if start == first else start,
        end=None if end == last else end,
        state=None if state == "all" else state,
        category=None if category == "all" else category,
    )

    # --- KPIs --------------------------------------------------------------------------
    kpis = _ask(warehouse, queries.kpis, Filters(start=filters.start, end=filters.end, state=filters.state))
    cols = st.columns(4)
    cols[0].metric("Orders", f"{kpis['orders']:,}")
    cols[1].metric("Revenue", _brl(kpis["revenue_cents"]))
    aov = kpis["avg_order_value_cents"]
    cols[2].metric("Average order value", _brl(round(aov) if aov is not None else None))
    cols[3].metric(
        "Customers", f"{kpis['customers']:,}", help=f"distinct customers, {kpis['customers_scope']}"
    )
    st.caption(
        "Revenue = item prices of orders not canceled/unavailable; freight is separate. "
        "Dates are São Paulo calendar days."
    )

    # --- charts ------------------------------------------------------------------------
    left, right = st.columns(2)
    months = pd.DataFrame(_ask(warehouse, queries.monthly_sales, filters))
    if not months.empty:
        months["revenue (R$)"] = months["revenue_cents"] / 100
        left.plotly_chart(
            px.line(months, x="month", y="revenue (R$)", markers=True, title="Sales trend"), key="trend"
        )
    top = pd.DataFrame(_ask(warehouse, queries.top_products, Filters(limit=10, category=filters.category)))
    if not top.empty:
        top["product"] = top["product_id"].str[:8] + "… " + top["category"]
        top["revenue (R$)"] = top["revenue_cents"] / 100
        right.plotly_chart(
            px.bar(top, x="revenue (R$)", y="product", orientation="h", title="Top 10 products"), key="top"
        )
    left, right = st.columns(2)
    segments = pd.DataFrame(_ask(warehouse, queries.segments, Filters()))
    if not segments.empty:
        left.plotly_chart(
            px.pie(segments, names="rfm_segment", values="customers", title="Customer segments (RFM)"),
            key="segments",
        )

    # --- data quality ------------------------------------------------------------------
    scores = pd.DataFrame(_ask(warehouse, queries.quality_scores, Filters()))
    with right:
        st.subheader("Data quality (latest run)")
        if scores.empty:
            st.info("No quality scores recorded yet.")
        else:
            latest = scores[scores["run_id"] == scores["run_id"].iloc[-1]]
            for row in latest.itertuples():
                verdict = (
                    ""
                    if row.target is None or pd.isna(row.target)
                    else ("pass" if row.score >= row.target else "fail")
                )
                st.metric(
                    f"{row.dimension}",
                    f"{row.score:.2f}",
                    delta=f"{verdict} (target {row.target})" if verdict else None,
                    delta_color="normal" if verdict != "fail" else "inverse",
                )

    # --- raw data ----------------------------------------------------------------------
    st.subheader("Raw order lines")
    page = int(st.number_input("Page", min_value=1, value=1, step=1, key="page")) - 1
    rows = _ask(
        warehouse,
        queries.order_lines_page,
        filters,
        tuple(statuses),
        page,
        PAGE_SIZE,
        None if source == "all" else source,
    )
    st.dataframe(pd.DataFrame(rows))
    st.caption(
        f"Rows {page * PAGE_SIZE + 1}–{page * PAGE_SIZE + len(rows)} (newest first, {PAGE_SIZE} per page)."
    )


main()
