"""Load: COPY each clean table into a temporary staging table, then merge.

Dimensions and facts are both merged by their natural key with
``INSERT ... ON CONFLICT DO UPDATE ... WHERE <something changed>``, so a rerun
of the same data changes nothing and a late change (an order's status) is
applied in place. The caller owns the transaction: everything one run writes
commits together or not at all.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import pandas as pd
import psycopg2.extensions
from psycopg2 import sql

log = logging.getLogger(__name__)

#: Conflict target per table: its primary key (facts include their time column).
CONFLICT_KEYS: dict[str, tuple[str, ...]] = {
    "category_translation": ("category_name",),
    "dim_dates": ("date_key",),
    "dim_geolocation": ("zip_code_prefix",),
    "dim_customers": ("customer_id",),
    "dim_products": ("product_id",),
    "dim_sellers": ("seller_id",),
    "fact_orders": ("order_id", "purchased_at"),
    "fact_order_items": ("order_id", "order_item_id"),
    "fact_payments": ("order_id", "payment_sequential"),
    "fact_reviews": ("review_id", "order_id"),
}


@dataclass(frozen=True)
class MergeResult:
    table: str
    rows_staged: int
    rows_written: int   # inserted or updated; unchanged rows are not rewritten


def _frame_to_csv(frame: pd.DataFrame) -> io.StringIO:
    buffer = io.StringIO()
    # Missing values are written unquoted-empty, which COPY CSV reads as NULL;
    # transform has already turned empty strings into missing values.
    frame.to_csv(buffer, index=False, header=False, date_format="%Y-%m-%d %H:%M:%S%z")
    buffer.seek(0)
    return buffer


def copy_into(cur: psycopg2.extensions.cursor, table: str, frame: pd.DataFrame) -> int:
    """COPY FROM STDIN of a frame into ``table`` (its columns named as the frame's)."""
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
        sql.Identifier(table), columns)
    cur.copy_expert(statement.as_string(cur), _frame_to_csv(frame), size=1 << 20)
    return len(frame)


def merge(cur: psycopg2.extensions.cursor, table: str, frame: pd.DataFrame) -> MergeResult:
    """Upsert ``frame`` into ``table`` by its natural key, writing only changed rows."""
    key = CONFLICT_KEYS[table]
    columns = list(frame.columns)
    stage = f"stage_{table}"
    cur.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(
        sql.Identifier(stage), sql.Identifier(table)))
    staged = copy_into(cur, stage, frame)

    non_key = [c for c in columns if c not in key]
    ident = lambda names: sql.SQL(", ").join(sql.Identifier(n) for n in names)  # noqa: E731
    if non_key:
        on_conflict = sql.SQL(
            "DO UPDATE SET ({cols}) = ROW({excluded}) WHERE ({current}) IS DISTINCT FROM ({excluded})"
        ).format(
            cols=ident(non_key),
            excluded=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in non_key),
            current=sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(table), sql.Identifier(c))
                                       for c in non_key),
        )
    else:
        on_conflict = sql.SQL("DO NOTHING")
    cur.execute(sql.SQL(
        "INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} ON CONFLICT ({key}) {action}"
    ).format(table=sql.Identifier(table), cols=ident(columns), stage=sql.Identifier(stage),
             key=ident(key), action=on_conflict))
    written = cur.rowcount
    log.info("%s: %d rows staged, %d inserted or updated", table, staged, written)
    return MergeResult(table, staged, written)


def insert_quarantine(cur: psycopg2.extensions.cursor, run_id: str, source_file: str,
                      table: str, rejected: pd.DataFrame) -> int:
    """Append one run's rejected rows of one table to ``quarantine`` by COPY."""
    if rejected.empty:
        return 0
    frame = rejected.assign(run_id=run_id, source_file=source_file, table_name=table)[
        ["run_id", "source_file", "row_number", "table_name", "category", "rule", "detail",
         "raw_record"]]
    return copy_into(cur, "quarantine", frame)


def clear_quarantine(cur: psycopg2.extensions.cursor, run_id: str, table: str) -> int:
    """Forget a run's earlier rejected rows of one table, so rerunning a run id never doubles them."""
    cur.execute("DELETE FROM quarantine WHERE run_id = %s AND table_name = %s", (run_id, table))
    return cur.rowcount
