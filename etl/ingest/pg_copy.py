"""A PostgreSQL source read by ``COPY (query) TO STDOUT`` as CSV, parsed by pyarrow into batches.

connectorx (etl/ingest/sql_arrow.py) reached only 0.38-0.97x a bare psycopg2
``fetchall()`` of the same 1M-row table: the rows came back through its own
binary-protocol decoder and Arrow builders. Here the server writes the rows
once as CSV into the socket, libpq hands them to psycopg2's C ``copy_expert``,
which writes them into a pipe; pyarrow's multithreaded CSV reader parses the
other end into typed columns. No row ever becomes a Python object, and the
client holds a few CSV blocks and one batch at a time (memory flat in table size).

Column types come from the query's own result description (a ``LIMIT 0`` of the
same statement), so the batches are typed as connectorx typed them: integers,
floats, booleans, dates, times, timestamps (``timestamptz`` read in UTC), text.
``numeric`` stays text exactly as the server prints it (``12.50``; connectorx
made it decimal(38, 10), which rounds past 10 digits), ``bytea`` becomes binary
from its hex text, anything else (uuid, json, arrays, intervals) is text.

The statement is the one ``sql_arrow.statement`` compiled for PostgreSQL (its
watermark rendered by the dialect's literal renderer); it is placed into
``COPY ( ... )`` with a ``psycopg2.sql`` composition.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator

import psycopg2
import psycopg2.extensions
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from psycopg2 import sql

from etl.errors import SourceError

#: Type OIDs of PostgreSQL (pg_type.oid, fixed for built-in types) and the Arrow type read.
ARROW_TYPES: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    26: pa.int64(),  # oid
    700: pa.float32(),
    701: pa.float64(),
    1082: pa.date32(),
    1083: pa.time64("us"),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
}
BYTEA = 17
#: fcntl's F_SETPIPE_SZ (Linux; Python's fcntl module names it only from 3.10 on some builds).
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
#: CSV bytes the reader parses at a time (a pyarrow block; a row may not be longer).
BLOCK_BYTES = 8 << 20
#: The pipe's write buffer: psycopg2 writes one row per call, the pipe sees 1 MiB writes.
PIPE_BUFFER = 1 << 20


def copy_batches(
    libpq_url: str, statement: str, where: str, connect_timeout: int = 10
) -> Iterator[pa.RecordBatch]:
    """The statement's rows as record batches of about ``BLOCK_BYTES`` of CSV each.

    ``where`` names the server in errors (host:port, never the password).
    """
    try:
        conn = psycopg2.connect(libpq_url, connect_timeout=connect_timeout, options="-c TimeZone=UTC")
    except psycopg2.Error as exc:
        raise _read_error(where, exc) from None
    try:
        conn.set_session(readonly=True)
        query = sql.SQL(statement)
        with conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT * FROM ({}) AS q LIMIT 0").format(query))
            names = [column.name for column in cur.description]
            oids = [column.type_code for column in cur.description]
        copy = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv)").format(query)
        yield from _stream(conn, copy, names, oids, where)
    except psycopg2.Error as exc:
        raise _read_error(where, exc) from None
    finally:
        conn.close()


def first_row(libpq_url: str, statement: str, where: str, connect_timeout: int = 10) -> tuple:
    """One row of a small query (a partition column's range)."""
    try:
        conn = psycopg2.connect(libpq_url, connect_timeout=connect_timeout, options="-c TimeZone=UTC")
    except psycopg2.Error as exc:
        raise _read_error(where, exc) from None
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL(statement))
            return cur.fetchone()
    except psycopg2.Error as exc:
        raise _read_error(where, exc) from None
    finally:
        conn.close()


def _stream(
    conn, copy: sql.Composed, names: list[str], oids: list[int], where: str
) -> Iterator[pa.RecordBatch]:
    """Run the COPY in a thread writing into a pipe; parse the pipe here, batch by batch."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=PIPE_BUFFER) as out, conn.cursor() as cur:
                cur.copy_expert(copy, out)
        except BrokenPipeError:  # the reader stopped (an error, or the consumer closed early)
            pass
        except BaseException as exc:  # noqa: BLE001 (handed to the reading thread)
            failure.append(exc)

    with contextlib.suppress(OSError):  # fewer, larger wake-ups (the default pipe holds 64 KiB)
        fcntl.fcntl(write_fd, F_SETPIPE_SZ, PIPE_BUFFER)
    writer = threading.Thread(target=produce, name="pg-copy", daemon=True)
    unique = _unique_names(names)
    types = {n: ARROW_TYPES.get(oid, pa.string()) for n, oid in zip(unique, oids)}
    # buffered: a read waits for a whole block, so batches are blocks, not whatever the pipe held
    with os.fdopen(read_fd, "rb", buffering=BLOCK_BYTES) as pipe:
        writer.start()
        try:
            if pipe.peek(1):  # pyarrow refuses an empty CSV stream: no rows, no reader
                reader = pa_csv.open_csv(
                    pipe,
                    read_options=pa_csv.ReadOptions(column_names=unique, block_size=BLOCK_BYTES),
                    parse_options=pa_csv.ParseOptions(newlines_in_values=True),
                    convert_options=pa_csv.ConvertOptions(
                        column_types=types,
                        true_values=["t"],
                        false_values=["f"],
                        strings_can_be_null=True,  # NULL is an unquoted empty field,
                        quoted_strings_can_be_null=False,  # an empty string is ""
                    ),
                )
                for batch in reader:
                    yield _with_bytea(batch, names, oids)
        except pa.ArrowInvalid as exc:
            if failure:  # the COPY failed part-way: that is the error, not the cut CSV
                raise failure[0] from None
            raise SourceError(
                f"postgres read at {where} failed: a value cannot be parsed ({exc}); "
                "cast that column to text in the source's query"
            ) from None
        finally:
            pipe.close()  # a writer still going gets a broken pipe
            if writer.is_alive():  # the consumer stopped early: the server stops sending too
                with contextlib.suppress(psycopg2.Error):
                    conn.cancel()
            writer.join()
    if failure:
        raise failure[0]


def _with_bytea(batch: pa.RecordBatch, names: list[str], oids: list[int]) -> pa.RecordBatch:
    """``bytea`` columns from their ``\\x..`` hex text to binary (rare: a per-value conversion)."""
    if BYTEA not in oids:
        return batch.rename_columns(names)
    columns = list(batch.columns)
    for i, oid in enumerate(oids):
        if oid == BYTEA:
            texts = pc.utf8_slice_codeunits(columns[i], 2).to_pylist()
            columns[i] = pa.array([None if t is None else bytes.fromhex(t) for t in texts], pa.large_binary())
    return pa.record_batch(columns, names=names)


def _unique_names(names: list[str]) -> list[str]:
    """pyarrow's CSV options key columns by name: a query's repeated names made unique for reading."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}\x00{seen[name]}")
    return out


def _read_error(where: str, exc: psycopg2.Error) -> SourceError:
    message = " ".join(str(exc).split())[:300]
    return SourceError(f"postgres read at {where} failed ({message})")
