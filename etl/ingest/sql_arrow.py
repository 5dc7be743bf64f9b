"""SQL database sources read straight into Arrow record batches.

Per-row Python work (driver tuples -> dicts -> JSON -> CSV) held a 1M-row table
to ~12k rows/s. Here the rows never become Python objects:

* PostgreSQL is read by ``COPY (query) TO STDOUT`` as CSV parsed by pyarrow
  (``etl.ingest.pg_copy``; connectorx reached only 0.38-0.97x a bare psycopg2
  ``fetchall()``; docs/performance.md has both);
* MySQL / MariaDB and SQLite go through ``connectorx`` (Rust), returned as an
  Arrow stream of ``batch_size`` rows, so the client holds one batch at a time;
* SQL Server goes through SQLAlchemy + pymssql (an optional extra, see
  docs/sources.md), ``stream_results`` fetched ``batch_size`` rows at a time and
  turned into Arrow by columns.

A big table can be read in ``partitions`` parallel range queries on an integer
``partition_on`` column (connectorx asks the server for its min/max and splits
the range; for PostgreSQL each range is its own COPY on its own connection,
rows with no value in the first); the partial batches are re-cut to
``batch_size`` rows so the archive's batches are the same whatever the partitioning.

The statement is built with SQLAlchemy against the source's dialect (identifier
quoting per dialect). connectorx takes no bind parameters, so the watermark is
rendered as a literal by that dialect's own literal renderer, never formatted
into the text by hand. Rows are not ordered: the watermark arithmetic
(``etl.ingest.arrow_rows``) takes the batch maximum, whatever the order.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from etl.errors import ConfigError, SourceError
from etl.ingest import pg_copy
from etl.ingest.databases import check_url, cursor_value
from etl.ingest.state import Watermark
from etl.warehouse.redact import without_userinfo

#: Source kinds read by connectorx, and the URL scheme it wants for each.
CONNECTORX_SCHEMES = {"postgres": "postgresql", "mysql": "mysql", "sqlite": "sqlite"}
#: SQLAlchemy dialect names of each kind (for compiling the statement).
DIALECTS = {"postgres": "postgresql", "mysql": "mysql", "sqlite": "sqlite", "mssql": "mssql.pymssql"}

ArrowBatches = Iterator[pa.RecordBatch]


def parse_url(kind: str, url: str) -> URL:
    """The source URL as SQLAlchemy reads it (``postgresql+psycopg2://``, ``mysql://``...)."""
    if not url:
        raise ConfigError(f"a {kind} source needs a 'url'")
    check_url(url)  # a bad port or no scheme: one line naming the URL without its password
    try:
        return make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(f"the {kind} source URL {without_userinfo(url)} is not a database URL") from None


def connectorx_url(kind: str, url: URL) -> str:
    """The same database as connectorx's URL: no ``+driver``, SQLite paths absolute."""
    if kind == "sqlite":
        path = Path(url.database or "")
        if not url.database or str(path) == ":memory:":
            raise ConfigError("a sqlite source needs a file path (sqlite:///path/to/file.db)")
        if not path.exists():
            raise SourceError(f"sqlite file {path} does not exist")
        return f"sqlite://{path.resolve()}"
    return url.set(drivername=CONNECTORX_SCHEMES[kind]).render_as_string(hide_password=False)


def _where_value(kind: str, since: Watermark) -> sa.ColumnElement:
    """The watermark as a literal of the column's kind (SQLite keeps timestamps as text)."""
    value = cursor_value(since.cursor_value)
    if kind == "sqlite" and isinstance(value, datetime):
        # sqlite3 writes datetimes as ISO text with a space and no empty fraction.
        return sa.literal(value.isoformat(sep=" "), sa.String())
    return sa.literal(value)


def statement(
    kind: str, *, relation: str | None, query: str | None, cursor: str | None, since: Watermark | None
) -> sa.Select:
    """``SELECT * FROM <relation or (query)> [WHERE cursor >= watermark]`` (identifiers pre-validated)."""
    if relation:
        parts = relation.split(".")
        base: Any = sa.table(parts[-1], schema=parts[0] if len(parts) == 2 else None)
    else:
        base = sa.text(query).columns().subquery("q")
    stmt = sa.select(sa.text("*")).select_from(base)
    if cursor and since:
        column = sa.column(cursor)
        if kind == "mssql":
            stmt = stmt.where(column >= sa.bindparam("wm", cursor_value(since.cursor_value)))
        else:
            stmt = stmt.where(column >= _where_value(kind, since))
    return stmt


def compiled_sql(kind: str, stmt: sa.Select, *, literal: bool) -> str:
    """The statement as the source's dialect writes it (literal values for connectorx)."""
    dialect = sa.dialects.registry.load(DIALECTS[kind])()
    kwargs = {"literal_binds": True} if literal else {}
    return str(stmt.compile(dialect=dialect, compile_kwargs=kwargs))


def rebatch(batches: Iterator[pa.RecordBatch], size: int) -> ArrowBatches:
    """Batches of exactly ``size`` rows (the last one shorter), whatever the reader cut."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        if not pending and batch.num_rows == size:  # the usual case: the reader's own cut
            yield batch
            continue
        pending.append(batch)
        held += batch.num_rows
        while held >= size:
            table = pa.Table.from_batches(pending)
            head = table.slice(0, size).combine_chunks()
            yield head.to_batches()[0] if head.num_rows else pa.record_batch([], schema=table.schema)
            rest = table.slice(size)
            pending = rest.to_batches() if rest.num_rows else []
            held = rest.num_rows
    if held:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def _where_is(url: URL, kind: str) -> str:
    """Host and port (or file) for an error message: never the password."""
    if kind == "sqlite":
        return str(url.database)
    return f"{url.host or '127.0.0.1'}:{url.port or {'postgres': 5432, 'mysql': 3306}.get(kind, '')}"


def arrow_batches(
    kind: str,
    url: str,
    *,
    relation: str | None,
    query: str | None,
    cursor: str | None,
    since: Watermark | None,
    batch_size: int,
    partition_on: str | None = None,
    partitions: int | None = None,
) -> ArrowBatches:
    """The source's rows as Arrow record batches of ``batch_size`` rows."""
    parsed = parse_url(kind, url)
    stmt = statement(kind, relation=relation, query=query, cursor=cursor, since=since)
    if kind == "mssql":
        batches = _sqlalchemy_batches(parsed, stmt, batch_size, kind)
    elif kind == "postgres":
        batches = _postgres_batches(parsed, stmt, partition_on, partitions)
    else:
        batches = _connectorx_batches(kind, parsed, stmt, batch_size, partition_on, partitions)
    return rebatch(batches, batch_size)


def _postgres_batches(
    url: URL, stmt: sa.Select, partition_on: str | None, partitions: int | None
) -> ArrowBatches:
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    where = _where_is(url, "postgres")
    if not (partition_on and partitions and int(partitions) > 1):
        return pg_copy.copy_batches(libpq, compiled_sql("postgres", stmt, literal=True), where)
    column = sa.column(partition_on)
    whole = stmt.subquery("p")
    bounds = sa.select(sa.func.min(column), sa.func.max(column)).select_from(whole)
    low, high = pg_copy.first_row(libpq, compiled_sql("postgres", bounds, literal=True), where)
    parts = [
        sa.select(sa.text("*")).select_from(whole).where(c)
        for c in range_conditions(column, low, high, int(partitions))
    ]
    return merged(
        [pg_copy.copy_batches(libpq, compiled_sql("postgres", p, literal=True), where) for p in parts]
    )


def range_conditions(
    column: sa.ColumnClause, low: int | None, high: int | None, n: int
) -> list[sa.ColumnElement]:
    """``n`` conditions splitting [low, high] into ranges; NULLs in the first, so no row is left out."""
    if low is None or high is None:  # no rows, or no values: one read takes them all
        return [sa.true()]
    step = max(1, -(-(int(high) - int(low) + 1) // n))
    conditions = []
    for k in range(n):
        start = int(low) + k * step
        if start > int(high):
            break
        upper = column < start + step if k < n - 1 else column <= int(high)
        conditions.append(sa.and_(column >= start, upper))
    conditions[0] = sa.or_(conditions[0], column.is_(None))
    return conditions


def merged(readers: list[ArrowBatches]) -> ArrowBatches:
    """The batches of several readers, each drained by its own thread (order: as they come).

    A queue of one batch per reader bounds the memory; a consumer that stops early
    stops the readers (each closes its connection).
    """
    done = object()
    batches: queue.Queue = queue.Queue(maxsize=len(readers))
    stop = threading.Event()

    def put(item) -> None:
        while not stop.is_set():
            try:
                batches.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def drain(reader: ArrowBatches) -> None:
        try:
            for batch in reader:
                put(batch)
                if stop.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 (handed to the consumer)
            put(exc)
        finally:
            reader.close()
            put(done)

    threads = [threading.Thread(target=drain, args=(r,), name="partition", daemon=True) for r in readers]
    for thread in threads:
        thread.start()
    try:
        running = len(threads)
        while running:
            item = batches.get()
            if item is done:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def _connectorx_batches(
    kind: str, url: URL, stmt: sa.Select, batch_size: int, partition_on: str | None, partitions: int | None
) -> ArrowBatches:
    import connectorx as cx  # a compiled extension: loaded when a database source runs, not on import

    sql = compiled_sql(kind, stmt, literal=True)
    options: dict[str, Any] = {"return_type": "arrow_stream", "batch_size": batch_size}
    if partition_on and partitions and partitions > 1:
        options.update(partition_on=partition_on, partition_num=int(partitions))
    try:
        reader = cx.read_sql(connectorx_url(kind, url), sql, **options)
        yield from reader
    except (RuntimeError, OSError, ValueError) as exc:
        message = " ".join(str(exc).split())[:300]
        raise SourceError(f"{kind} read at {_where_is(url, kind)} failed ({message})") from exc


def _sqlalchemy_batches(url: URL, stmt: sa.Select, batch_size: int, kind: str) -> ArrowBatches:
    """A SQLAlchemy-driven read (SQL Server via pymssql), rows turned into Arrow by columns."""
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(
            f"{kind} source URL is not usable by SQLAlchemy ({exc}); "
            "SQL Server needs the optional driver: pip install -r requirements-mssql.txt"
        ) from exc
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(stmt)
            keys = list(result.keys())
            for chunk in result.partitions(batch_size):
                columns = list(zip(*chunk)) if chunk else [[] for _ in keys]
                yield pa.record_batch([pa.array(list(c)) for c in columns], names=keys)
    except sa.exc.SQLAlchemyError as exc:
        message = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        raise SourceError(f"{kind} read at {_where_is(url, kind)} failed ({message})") from exc
    finally:
        engine.dispose()
