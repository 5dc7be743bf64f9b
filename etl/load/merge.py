"""Load: binary COPY into a staging table, then one set-based merge per table.

For every table a run loads (``load_table``):

1. ``LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE`` so two loaders of the same
   table queue instead of interleaving (readers are not blocked);
2. if the table is empty and needs no derived columns, the rows are COPYed
   straight into it (an initial load pays for one write, not two); from
   ``deferred_indexes.MIN_ROWS`` rows on, its keys and indexes are dropped first
   and rebuilt after the COPY (``etl.warehouse.deferred_indexes``; that takes ACCESS
   EXCLUSIVE, so readers of the still-empty table wait for the commit);
3. otherwise they are COPYed into a TEMP table (never WAL-logged, dropped at
   commit) and merged:
   * type-1 tables (most dimensions, all facts):
     ``INSERT ... ON CONFLICT (natural key) DO UPDATE ... WHERE <something changed>``,
     so a rerun rewrites nothing and a late change (an order's status) is
     applied in place; ``xmax = 0`` in ``RETURNING`` tells inserts from updates;
   * SCD type 2 dimensions (``TableSpec.scd2``: products, sellers): a changed row closes
     the current version (``valid_to``, ``is_current``) and adds a new one with
     a new surrogate key;
   * facts with ``TableSpec.links`` get the surrogate key of the dimension version that
     was current at the fact's event time.

The caller owns the transaction: everything one run writes commits together or
not at all. The COPY falls back to batched INSERT only when the server refuses
COPY (``etl.binary_copy.copy_or_insert``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd
import psycopg2.extensions
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg2 import sql

from etl import binary_copy
from etl.errors import DatabaseError
from etl.load import chunk_order
from etl.olist import SPECS, Scd2, TableSpec
from etl.warehouse import deferred_indexes

log = logging.getLogger(__name__)

#: A table without a spec (tests, benchmarks): merged on the key it is given, nothing else.
_PLAIN = TableSpec(name="", file_stem="", columns=(), key=(), flagged=False)


def _spec(table: str) -> TableSpec:
    return SPECS.get(table, _PLAIN)


@dataclass
class LoadResult:
    table: str
    rows_staged: int
    rows_inserted: int = 0
    rows_updated: int = 0  # type 1: rewritten in place; SCD2: new versions of changed rows
    bytes: int = 0  # COPY (or INSERT) payload sent to the server
    seconds: float = 0.0
    method: str = "copy"  # 'copy' | 'insert-fallback'
    path: str = "merge"  # 'direct' (empty table) | 'merge' | 'scd2'
    touched_days: list[date] = field(default_factory=list)  # local days of changed facts

    @property
    def rows_unchanged(self) -> int:
        return self.rows_staged - self.rows_inserted - self.rows_updated

    @property
    def rows_written(self) -> int:
        return self.rows_inserted + self.rows_updated


#: Kept for callers of the foundation's API.
def _ident(names) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def as_arrow(data: pa.Table | pd.DataFrame) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    return pa.Table.from_pandas(data, preserve_index=False)


#: Rows per piece when a clean Parquet file is loaded piece by piece (``Pieces.parquet``).
PIECE_ROWS = 500_000


@dataclass(frozen=True)
class Pieces:
    """Rows to load without holding them all at once: how many, their columns, and the
    pieces in order (one in-memory table, or a Parquet file read ``PIECE_ROWS`` at a time).

    The pipeline loads the transform's clean files this way, so the load stage's
    memory stays flat whatever the run's size (a whole 1M-order run read at once
    peaked at ~1 GB, docs/performance.md). Every piece is COPYed in the same
    transaction; the merge runs once over all of them.
    """

    num_rows: int
    column_names: list[str]
    read: Callable[[], Iterator[pa.Table]]

    @classmethod
    def of(cls, data: pa.Table | pd.DataFrame | Pieces) -> Pieces:
        if isinstance(data, Pieces):
            return data
        table = as_arrow(data)
        return cls(table.num_rows, table.column_names, lambda: iter([table]))

    @classmethod
    def parquet(cls, path: Path, rows_per_piece: int | None = None) -> Pieces:
        metadata = pq.ParquetFile(path).metadata
        columns = metadata.schema.to_arrow_schema().names

        def read() -> Iterator[pa.Table]:
            source = pq.ParquetFile(path)
            try:
                for batch in source.iter_batches(batch_size=rows_per_piece or PIECE_ROWS, columns=columns):
                    yield pa.Table.from_batches([batch])
            finally:
                source.close()

        return cls(metadata.num_rows, columns, read)


def _copy_pieces(cur, target: str, rows: Pieces, types, partitioning, method: str) -> binary_copy.CopyResult:
    """COPY every piece into ``target`` (ordered chunk by chunk when ``partitioning``); one result."""
    started = time.perf_counter()
    sent, methods = 0, set()
    for piece in rows.read():
        copied = binary_copy.copy_or_insert(
            cur, target, binary_copy.arrow_for(chunk_order.by_chunk(piece, partitioning), types), method
        )
        sent += copied.bytes
        methods.add(copied.method)
    method_used = "insert-fallback" if "insert-fallback" in methods else "copy"
    return binary_copy.CopyResult(rows.num_rows, sent, time.perf_counter() - started, method_used)


def load_table(
    cur: psycopg2.extensions.cursor,
    table: str,
    data: pa.Table | pd.DataFrame | Pieces,
    *,
    key: tuple[str, ...] | None = None,
    timezone: str = "UTC",
    method: str = "auto",
) -> LoadResult:
    """Load ``data`` into ``table`` inside the caller's transaction (see module doc).

    ``timezone`` is the zone whose calendar days ``touched_days`` are counted in;
    ``method='insert'`` disables COPY (for proxies that cannot pass it).
    """
    started = time.perf_counter()
    rows = Pieces.of(data)
    spec = _spec(table)
    key = key or spec.merge_key
    if not key:
        raise DatabaseError(f"table {table} has no conflict key: name it (key=...) or give it a TableSpec")
    cur.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(sql.Identifier(table)))
    types = binary_copy.column_types(cur, table)
    unknown = [c for c in rows.column_names if c not in types]
    if unknown:
        raise DatabaseError(
            f"table {table} has no column(s) {', '.join(unknown)}; "
            "run `etl db init` to bring the schema up to date"
        )
    result = LoadResult(table, rows.num_rows)
    if rows.num_rows == 0:
        return result
    # Into a hypertable whose indexes are maintained row by row, rows arriving chunk
    # by chunk COPY up to ~1.5x faster (etl/chunk_order.py); with the indexes
    # deferred the sort only costs (~9 % slower in an A/B), so it is skipped then.
    partitioning = chunk_order.time_partitioning(cur, table)
    if partitioning is not None:
        # A late correction into a compressed chunk decompresses the batch holding its
        # time (up to 1,000 rows); TimescaleDB stops a transaction after 100,000 such
        # tuples by default, which a day's corrections to old orders can pass. The
        # load is the one writer and means it: no limit, for this transaction only.
        cur.execute("SELECT set_config('timescaledb.max_tuples_decompressed_per_dml_transaction', '0', true)")
    cur.execute(sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table)))
    empty = cur.fetchone()[0]
    if empty and not spec.links and not binary_copy.unsupported_columns(types, rows.column_names):
        # Keys and indexes are built once after a large initial load, not row by row (etl/deferred_indexes.py).
        with deferred_indexes.deferred(cur, table, rows.num_rows) as deferred:
            copied = _copy_pieces(cur, table, rows, types, None if deferred else partitioning, method)
        result.rows_inserted, result.path = rows.num_rows, "direct"
        _analyze(cur, table)
        result.touched_days = _all_days(cur, table, timezone)
    else:
        stage = f"etl_stage_{table}"
        copied = _stage(cur, stage, table, rows, types, partitioning, method)
        if spec.scd2 is not None:
            result.rows_inserted, result.rows_updated = _merge_scd2(
                cur, table, stage, rows.column_names, spec.scd2, types
            )
            result.path = "scd2"
        else:
            # Into an empty table (a first load of a fact with links) a plain INSERT, its
            # keys and indexes built afterwards as on the direct path; otherwise upsert.
            with deferred_indexes.deferred(cur, table, rows.num_rows if empty else 0):
                result.rows_inserted, result.rows_updated, result.touched_days = _merge_upsert(
                    cur, table, stage, rows.column_names, key, types, timezone, upsert=not empty
                )
        if empty:
            _analyze(cur, table)
    result.bytes, result.method = copied.bytes, copied.method
    result.seconds = time.perf_counter() - started
    log.info(
        "%s: %d staged, %d inserted, %d updated, %d unchanged (%s, %s, %.2f s)",
        table,
        result.rows_staged,
        result.rows_inserted,
        result.rows_updated,
        result.rows_unchanged,
        result.path,
        result.method,
        result.seconds,
    )
    return result


# --- staging ----------------------------------------------------------------------------


def _stage(
    cur, stage: str, table: str, rows: Pieces, types, partitioning, method: str
) -> binary_copy.CopyResult:
    """A TEMP table shaped like ``rows``' columns of ``table``, filled by binary COPY.

    Columns binary COPY cannot encode (jsonb, numeric, ...) are staged as text and
    cast by the merge.
    """
    as_text = set(binary_copy.unsupported_columns(types, rows.column_names))
    select = sql.SQL(", ").join(
        sql.SQL("{c}::text AS {c}").format(c=sql.Identifier(c)) if c in as_text else sql.Identifier(c)
        for c in rows.column_names
    )
    cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(stage)))
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            sql.Identifier(stage), select, sql.Identifier(table)
        )
    )
    stage_types = binary_copy.column_types(cur, f"pg_temp.{stage}")
    copied = _copy_pieces(cur, stage, rows, stage_types, partitioning, method)
    # A new TEMP table has no statistics: the planner would guess ~200 distinct keys
    # and probe the facts row by row (a 1M-item merge spent 53 s in such a loop).
    cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(stage)))
    return copied


def _source_expr(column: str, types) -> sql.Composable:
    """``s.column`` cast to the target column's type (a no-op unless it was staged as text)."""
    return sql.SQL("CAST(s.{} AS {})").format(sql.Identifier(column), sql.SQL(types[column].sql_type))


# --- type 1 merge -----------------------------------------------------------------------


def _stage_event_times(cur, table: str, stage: str) -> sql.Identifier | None:
    """For a fact whose event time lives in another fact (items -> orders): a TEMP table
    ``join column -> event_time`` of the staged rows, or None.

    Built by one join instead of a lookup per staged row: looked up by
    ``order_id`` alone, the ``fact_orders`` hypertable (keyed by order and time)
    is searched in every chunk's index, which made a first load of 962,538 items
    take 89 s (docs/performance.md). The latest time wins if an order has several.
    """
    event = _spec(table).event_time
    if event is None or event.table is None:
        return None
    times = sql.Identifier(f"etl_event_times_{table}")
    cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(times))
    cur.execute(
        sql.SQL(
            "CREATE TEMP TABLE {times} ON COMMIT DROP AS "
            "SELECT DISTINCT ON (e.{j}) e.{j}, e.{col} AS event_time FROM {other} e "
            "WHERE e.{j} IN (SELECT s.{j} FROM {stage} s) ORDER BY e.{j}, e.{col} DESC"
        ).format(
            times=times,
            j=sql.Identifier(event.join_column),
            col=sql.Identifier(event.column),
            other=sql.Identifier(event.table),
            stage=sql.Identifier(stage),
        )
    )
    cur.execute(sql.SQL("ANALYZE {}").format(times))
    return times


def _link_sql(
    table: str, times: sql.Identifier | None
) -> tuple[list[str], list[sql.Composable], sql.Composable]:
    """Extra columns, their expressions and joins that resolve the spec's ``links`` at event time."""
    spec = _spec(table)
    links = spec.links
    if not links:
        return [], [], sql.SQL("")
    event = spec.event_time
    if times is not None:
        joins = [
            sql.SQL("LEFT JOIN {times} ev ON ev.{j} = s.{j}").format(
                times=times, j=sql.Identifier(event.join_column)
            )
        ]
        event_time = sql.SQL("ev.event_time")
    else:  # the fact's own time column
        joins, event_time = [], sql.SQL("s.{}").format(sql.Identifier(event.column))
    exprs = []
    for n, link in enumerate(links):
        alias = sql.Identifier(f"d{n}")
        joins.append(
            sql.SQL(
                "LEFT JOIN {dim} {a} ON {a}.{nk} = s.{nk} "
                "AND coalesce({t}, now()) >= {a}.valid_from "
                "AND coalesce({t}, now()) < {a}.valid_to"
            ).format(
                dim=sql.Identifier(link.dimension), a=alias, nk=sql.Identifier(link.natural_key), t=event_time
            )
        )
        exprs.append(sql.SQL("{}.{}").format(alias, sql.Identifier(link.column)))
    return [link.column for link in links], exprs, sql.SQL(" ").join(joins)


def _returned_event_time(
    table: str, times: sql.Identifier | None
) -> tuple[sql.Composable, sql.Composable, sql.Composable | None]:
    """What the upsert RETURNs about event time, how the outer query joins it, and the time expression."""
    event = _spec(table).event_time
    if event is None:
        return sql.SQL("NULL::timestamptz AS event_time"), sql.SQL("m"), None
    if times is None:
        return (
            sql.SQL("t.{} AS event_time").format(sql.Identifier(event.column)),
            sql.SQL("m"),
            sql.SQL("m.event_time"),
        )
    j = sql.Identifier(event.join_column)
    return (
        sql.SQL("t.{} AS event_key").format(j),
        sql.SQL("m LEFT JOIN {} x ON x.{} = m.event_key").format(times, j),
        sql.SQL("x.event_time"),
    )


def _delete_moved(cur, table: str, stage: str, timezone: str) -> tuple[int, list[date]]:
    """Delete the rows the staged ones move to another time (``TableSpec.movable_in_time``:
    the conflict key is (natural id, time column)); their old local days."""
    spec = _spec(table)
    if not spec.movable_in_time:
        return 0, []
    natural_id, time_column = (sql.Identifier(c) for c in spec.merge_key)
    names = {
        "table": sql.Identifier(table),
        "stage": sql.Identifier(stage),
        "nid": natural_id,
        "tc": time_column,
    }
    # Find the moved rows first (a read), then delete each by its full key: a DELETE
    # joined on the natural id alone makes TimescaleDB decompress every compressed
    # chunk to evaluate it (715,005 tuples for 1,000 staged orders at 1M items,
    # over its per-transaction limit), while (id, time) reaches one batch.
    cur.execute(
        sql.SQL(
            "SELECT t.{nid}, t.{tc}, (t.{tc} AT TIME ZONE %(tz)s)::date FROM {table} t "
            "JOIN {stage} s ON t.{nid} = s.{nid} WHERE t.{tc} IS DISTINCT FROM s.{tc}"
        ).format(**names),
        {"tz": timezone},
    )
    moved = cur.fetchall()
    for key, old_time, _ in moved:
        cur.execute(
            sql.SQL("DELETE FROM {table} WHERE {nid} = %s AND {tc} = %s").format(**names), (key, old_time)
        )
    if moved:
        log.info("%s: %d row(s) moved in time by the source; the old rows were replaced", table, len(moved))
    return len(moved), sorted({day for _, _, day in moved})


def _merge_upsert(
    cur,
    table: str,
    stage: str,
    columns: list[str],
    key: tuple[str, ...],
    types,
    timezone: str,
    upsert: bool = True,
) -> tuple[int, int, list[date]]:
    """Upsert the staged rows; (inserted, updated, local days touched). A moved row counts as updated.

    ``upsert=False`` (the table is empty) inserts without ``ON CONFLICT``, which
    needs no unique index: a duplicate key still fails, when the key is built.
    """
    moved, old_days = _delete_moved(cur, table, stage, timezone)
    times = _stage_event_times(cur, table, stage)
    link_columns, link_exprs, joins = _link_sql(table, times)
    all_columns = list(columns) + link_columns
    non_key = [c for c in all_columns if c not in key]
    if non_key:
        set_list = [
            sql.SQL("({}) = ROW({})").format(
                _ident(non_key),
                sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in non_key),
            )
        ]
        if "updated_at" in types and "updated_at" not in all_columns:
            set_list.append(sql.SQL("updated_at = now()"))
        action = sql.SQL("DO UPDATE SET {sets} WHERE ({cur}) IS DISTINCT FROM ({exc})").format(
            sets=sql.SQL(", ").join(set_list),
            cur=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in non_key),
            exc=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in non_key),
        )
    else:
        action = sql.SQL("DO NOTHING")
    conflict = (
        sql.SQL("ON CONFLICT ({key}) {action}").format(key=_ident(key), action=action)
        if upsert
        else sql.SQL("")
    )
    returning, merged, event_time = _returned_event_time(table, times)
    days = (
        sql.SQL("array_agg(DISTINCT ({t} AT TIME ZONE %(tz)s)::date) FILTER (WHERE {t} IS NOT NULL)").format(
            t=event_time
        )
        if event_time is not None
        else sql.SQL("NULL")
    )
    cur.execute(
        sql.SQL(
            "WITH m AS (INSERT INTO {table} AS t ({cols}) SELECT {exprs} FROM {stage} s {joins} "
            "{conflict} RETURNING (t.xmax = 0) AS inserted, {returning}) "
            "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted), {days} FROM {merged}"
        ).format(
            table=sql.Identifier(table),
            cols=_ident(all_columns),
            exprs=sql.SQL(", ").join([_source_expr(c, types) for c in columns] + link_exprs),
            stage=sql.Identifier(stage),
            joins=joins,
            conflict=conflict,
            returning=returning,
            days=days,
            merged=merged,
        ),
        {"tz": timezone},
    )
    inserted, updated, touched = cur.fetchone()
    return inserted - moved, updated + moved, sorted(set(touched or []) | set(old_days))


def _analyze(cur, table: str) -> None:
    """Statistics for a table its first load filled, before anything plans a query over it.

    A table loaded from empty has none, and autovacuum (off on some servers, a
    minute late on the others) has not run yet: the planner then assumes a few
    hundred rows and probes by key. Measured at 1M orders: the touched days of
    ``fact_payments`` (a semi-join into ``fact_orders``) took 145 s that way,
    and the analytics refresh that follows the load planned over empty
    statistics too. ANALYZE samples 30,000 rows: well under a second a table.
    """
    cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))


def _all_days(cur, table: str, timezone: str) -> list[date]:
    """Local days of every row of ``table`` (after a direct load into an empty table)."""
    event = _spec(table).event_time
    if event is None:
        return []
    if event.table is None:
        statement = sql.SQL("SELECT array_agg(DISTINCT ({col} AT TIME ZONE %(tz)s)::date) FROM {table}")
    else:
        # one semi-join, not a lookup per row (by the join column alone the hypertable
        # is searched in every chunk's index)
        statement = sql.SQL(
            "SELECT array_agg(DISTINCT (e.{col} AT TIME ZONE %(tz)s)::date) FROM {other} e "
            "WHERE e.{j} IN (SELECT t.{j} FROM {table} t)"
        )
    cur.execute(
        statement.format(
            col=sql.Identifier(event.column),
            table=sql.Identifier(table),
            other=sql.Identifier(event.table or table),
            j=sql.Identifier(event.join_column or event.column),
        ),
        {"tz": timezone},
    )
    return sorted(cur.fetchone()[0] or [])


# --- SCD type 2 merge -------------------------------------------------------------------


def _merge_scd2(cur, table: str, stage: str, columns: list[str], scd: Scd2, types) -> tuple[int, int]:
    """Close changed current versions, then add a version for every key without one.

    A key seen for the first time gets ``valid_from = -infinity`` (it describes
    all history before it), a changed key ``valid_from = now()`` (this run's
    transaction time), so facts of any date find exactly one version.
    """
    attributes = [c for c in columns if c != scd.natural_key]
    nk = sql.Identifier(scd.natural_key)
    changed = 0
    if attributes:
        cur.execute(
            sql.SQL(
                "UPDATE {table} AS t SET valid_to = now(), is_current = FALSE, updated_at = now() "
                "FROM {stage} s WHERE t.{nk} = s.{nk} AND t.is_current AND ({cur}) IS DISTINCT FROM ({new})"
            ).format(
                table=sql.Identifier(table),
                stage=sql.Identifier(stage),
                nk=nk,
                cur=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in attributes),
                new=sql.SQL(", ").join(_source_expr(c, types) for c in attributes),
            )
        )
        changed = cur.rowcount
    cur.execute(
        sql.SQL(
            "INSERT INTO {table} ({cols}, valid_from, valid_to, is_current) "
            "SELECT {exprs}, CASE WHEN EXISTS (SELECT 1 FROM {table} h WHERE h.{nk} = s.{nk}) "
            "THEN now() ELSE '-infinity'::timestamptz END, 'infinity'::timestamptz, TRUE "
            "FROM {stage} s WHERE NOT EXISTS (SELECT 1 FROM {table} c WHERE c.{nk} = s.{nk} AND c.is_current)"
        ).format(
            table=sql.Identifier(table),
            cols=_ident(columns),
            exprs=sql.SQL(", ").join(_source_expr(c, types) for c in columns),
            stage=sql.Identifier(stage),
            nk=nk,
        )
    )
    added = cur.rowcount
    return added - changed, changed


# --- quarantine -------------------------------------------------------------------------


#: The quarantine's columns, in the order a rejected-rows file gives them (plus the run's).
QUARANTINE_COLUMNS = (
    "run_id",
    "source_file",
    "row_number",
    "table_name",
    "category",
    "rule",
    "detail",
    "raw_record",
)


def insert_quarantine(
    cur: psycopg2.extensions.cursor,
    run_id: str,
    source_file: str,
    table: str,
    rejected: pa.Table | pd.DataFrame,
) -> int:
    """Append one run's rejected rows of one table to ``quarantine`` by binary COPY from Arrow.

    Their raw records go as jsonb in binary form: as CSV text from pandas, the
    458k rejected rows of a 1M-order run cost ~5 s of to_csv and COPY parsing.
    """
    constants = {"run_id": run_id, "source_file": source_file, "table_name": table}
    return binary_copy.copy_with_constants(
        cur, "quarantine", as_arrow(rejected), QUARANTINE_COLUMNS, constants
    )


def clear_quarantine(cur: psycopg2.extensions.cursor, run_id: str, table: str) -> int:
    """Forget a run's earlier rejected rows of one table, so rerunning a run id never doubles them."""
    cur.execute("DELETE FROM quarantine WHERE run_id = %s AND table_name = %s", (run_id, table))
    return cur.rowcount
