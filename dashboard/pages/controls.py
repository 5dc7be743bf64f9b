"""Streamlit page "Controls": Exceptions, Audit trail, Controls summary, Per-record results.

``streamlit run dashboard/streamlit_app.py`` shows it in the sidebar (Streamlit
turns files under ``pages/`` into pages). The same queries as the Flask
controls tabs (``dashboard.controls``); the login needs ``controls_reader``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pandas as pd  # noqa: E402
import plotly.express as px  # noqa: E402
import psycopg2.errors  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard import controls  # noqa: E402
from dashboard.config import DashboardConfig  # noqa: E402
from dashboard.warehouse import ReadOnlyWarehouse, WarehouseUnavailable  # noqa: E402

TABS = ["Exceptions", "Audit trail", "Controls summary", "Record results"]


@st.cache_resource
def _warehouse(url: str, connect_timeout: int) -> ReadOnlyWarehouse:
    return ReadOnlyWarehouse(url, pool_size=2, connect_timeout=connect_timeout)


def _ask(warehouse: ReadOnlyWarehouse, query, f: controls.ControlFilters):
    with warehouse.connection() as conn:
        return query(conn, f)


def main() -> None:
    st.set_page_config(page_title="Controls · Olist warehouse", layout="wide")
    st.title("Controls")
    config = DashboardConfig.from_env()
    warehouse = _warehouse(config.settings.database_url, config.settings.connect_timeout)
    try:
        runs = [r["run_id"] for r in _ask(warehouse, controls.runs, controls.ControlFilters())]
    except WarehouseUnavailable as exc:
        st.error(str(exc))
        st.stop()
    except psycopg2.errors.InsufficientPrivilege as exc:
        st.error(f"this login may not read the pipeline's records ({exc}); grant it controls_reader")
        st.stop()
    if not runs:
        st.info("No runs recorded yet.")
        st.stop()
    run = st.selectbox("Run", runs, index=0, key="controls_run", help="newest first")
    f = controls.ControlFilters(run_id=run)
    exceptions, audit, summary, records = st.tabs(TABS)

    with exceptions:
        categories = ["all", *controls.CONTROL_KINDS]
        category = st.selectbox("Category", categories, key="exceptions_category")
        ef = controls.ControlFilters(run_id=run, category=None if category == "all" else category)
        rows = pd.DataFrame(_ask(warehouse, controls.exceptions_summary, ef))
        st.metric("Quarantined rows", f"{int(rows['rows'].sum()) if not rows.empty else 0:,}")
        trend = pd.DataFrame(_ask(warehouse, controls.exceptions_trend, ef))
        if not trend.empty:
            st.plotly_chart(
                px.bar(trend, x="run_id", y="rows", color="category", title="Quarantined rows per run"),
                key="exceptions_trend",
            )
        st.dataframe(rows)
        detail = pd.DataFrame(_ask(warehouse, controls.exceptions_rows, ef))
        st.dataframe(detail)
        if not detail.empty:
            export = pd.DataFrame(_ask(warehouse, controls.exceptions_export, ef))
            st.download_button("Export CSV", export.to_csv(index=False), file_name=f"exceptions-{run}.csv")

    with audit:
        timeline = pd.DataFrame(_ask(warehouse, controls.audit_trail, f))
        st.metric("Tables loaded", str(int((timeline["kind"] == "table").sum()) if not timeline.empty else 0))
        if not timeline.empty:
            timeline["what"] = timeline["kind"] + " " + timeline["step"]
            st.plotly_chart(
                px.bar(
                    timeline, x="seconds", y="what", orientation="h", color="status", title="Seconds per step"
                ),
                key="audit_chart",
            )
            st.dataframe(timeline.drop(columns=["detail"]))

    with summary:
        found = pd.DataFrame(_ask(warehouse, controls.controls_summary, f))
        st.metric(
            "Controls that caught rows", str(int((found["rows_failed"] > 0).sum()) if not found.empty else 0)
        )
        gate = pd.DataFrame(_ask(warehouse, controls.gate, f))
        st.subheader("The gate")
        st.dataframe(gate)
        st.subheader("Every control")
        st.dataframe(found)
        trend = pd.DataFrame(_ask(warehouse, controls.controls_trend, f))
        if not trend.empty:
            st.plotly_chart(
                px.line(
                    trend,
                    x="run_id",
                    y="rows_failed",
                    color="category",
                    markers=True,
                    title="Rows caught per run",
                ),
                key="controls_trend",
            )

    with records:
        tables = _ask(warehouse, controls.tables_with_issues, f)
        table = st.selectbox("Table", ["all", *tables], key="records_table")
        rf = controls.ControlFilters(run_id=run, table=None if table == "all" else table)
        st.dataframe(pd.DataFrame(_ask(warehouse, controls.record_results, rf)))


main()
