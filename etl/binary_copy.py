"""Arrow -> PostgreSQL binary COPY, with no Python loop per row.

Why this path: PostgreSQL's binary COPY skips text parsing on the server, and
pgpq encodes whole Arrow record batches to that wire format in Rust, so Python
only hands over buffers of a few MiB. Measured on this machine (see
docs/performance.md) it beats ``psql \\copy`` of the same rows as CSV.

Binary COPY is strict about types (an ``int8`` value cannot go into a
``smallint`` column), so every Arrow column is first cast to the Arrow type that
matches the destination column as the catalog describes it (``arrow_for``).
Columns of types pgpq cannot encode are reported by ``unsupported_columns``;
callers stage those as text and cast in SQL.

The stream goes through the caller's psycopg2 cursor (``copy_expert`` with
large reads), so the COPY is part of the run's one transaction. When the server
or a proxy refuses COPY, ``copy_or_insert`` falls back to batched INSERTs in a
savepoint and says so in the log and in its result.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pgpq
import pgpq.encoders
import pgpq.schema
import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
import pyarrow as pa
from psycopg2 import sql

log = logging.getLogger(__name__)

#: Rows per Arrow record batch handed to the encoder (a few MiB of wire data).
BATCH_ROWS = 65_536
#: Rows per INSERT statement in the fallback path.
INSERT_PAGE_ROWS = 5_000

#: PostgreSQL type (pg_type.typname) -> the Arrow type pgpq encodes as exactly that type.
_ARROW_FOR_PG: dict[str, pa.DataType] = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "date": pa.date32(),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "timestamp": pa.timestamp("us"),
    "jsonb": pa.string(),  # JSON text, sent in jsonb's binary form (``_JSONB``)
}
#: Field metadata marking a string column whose destination is jsonb: pgpq infers
#: text for a string, and jsonb's binary input wants a version byte before the text.
_JSONB = {b"pg_type": b"jsonb"}

#: SQLSTATEs meaning "COPY is not allowed here", as opposed to bad data.
_COPY_REFUSED = (
    psycopg2.errors.FeatureNotSupported,  # 0A000: e.g. a pooler or proxy
    psycopg2.errors.WrongObjectType,  # 42809: e.g. COPY into a view
    psycopg2.errors.InsufficientPrivilege,  # 42501
    psycopg2.errors.ObjectNotInPrerequisiteState,
)


@dataclass(frozen=True)
class ColumnType:
    name: str
    typname: str  # pg_type.typname, e.g. int2, bpchar
    sql_type: str  # format_type(), e.g. character(32), for casts and staging DDL


@dataclass(frozen=True)
class CopyResult:
    rows: int
    bytes: int
    seconds: float
    method: str  # 'copy' or 'insert-fallback'


def column_types(cur: psycopg2.extensions.cursor, table: str) -> dict[str, ColumnType]:
    """Columns of ``table`` (visible on the search path, temp tables included)."""
    cur.execute(
        """SELECT a.attname, t.typname, format_type(a.atttypid, a.atttypmod)
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum""",
        (table,),
    )
    return {name: ColumnType(name, typname, sql_type) for name, typname, sql_type in cur.fetchall()}


def unsupported_columns(types: dict[str, ColumnType], columns: list[str]) -> list[str]:
    """Columns binary COPY cannot feed directly (e.g. jsonb, numeric): stage them as text."""
    return [c for c in columns if types[c].typname not in _ARROW_FOR_PG]


def arrow_for(table: pa.Table, types: dict[str, ColumnType]) -> pa.Table:
    """``table`` with every column cast to the Arrow type its destination column needs.

    Unknown destination types are cast to string (the staging table then holds
    text and the merge casts it in SQL).
    """
    fields, arrays = [], []
    for name in table.column_names:
        target = _ARROW_FOR_PG.get(types[name].typname, pa.string())
        column = table.column(name)
        if column.type != target:
            if pa.types.is_dictionary(column.type):
                column = column.cast(column.type.value_type)
            # safe=False: nanosecond timestamps lose sub-microsecond digits
            # PostgreSQL cannot store anyway; range checks still apply to ints.
            column = column.cast(target, safe=not pa.types.is_timestamp(target))
        fields.append(pa.field(name, target, metadata=_JSONB if types[name].typname == "jsonb" else None))
        arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _encoder(schema: pa.Schema) -> pgpq.ArrowToPostgresBinaryEncoder:
    """pgpq's encoder for ``schema``: inferred per column, jsonb where ``arrow_for`` marked it."""
    if not any(field.metadata == _JSONB for field in schema):
        return pgpq.ArrowToPostgresBinaryEncoder(schema)
    infer = pgpq.ArrowToPostgresBinaryEncoder.infer_encoder
    encoders = {
        field.name: (
            pgpq.encoders.StringEncoderBuilder.new_with_output(field, pgpq.schema.Jsonb())
            if field.metadata == _JSONB
            else infer(field)
        )
        for field in schema
    }
    return pgpq.ArrowToPostgresBinaryEncoder.new_with_encoders(schema, encoders)


def encode(table: pa.Table) -> Iterator[bytes]:
    """The binary COPY stream of ``table``: header, one buffer per batch, trailer."""
    encoder = _encoder(table.schema)
    yield bytes(encoder.write_header())
    for batch in table.to_batches(max_chunksize=BATCH_ROWS):
        yield bytes(encoder.write_batch(batch))
    yield bytes(encoder.finish())


class _Stream(io.RawIOBase):
    """A file-like view of ``encode()`` for ``copy_expert``: each read is one buffer."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        for chunk in self._chunks:
            if chunk:
                self.bytes += len(chunk)
                return chunk
        return b""


def copy_binary(cur: psycopg2.extensions.cursor, table: str, data: pa.Table) -> int:
    """Binary COPY of ``data`` (already cast with ``arrow_for``) into ``table``; bytes sent."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary)").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in data.column_names)
    )
    stream = _Stream(encode(data))
    # size only bounds each read; our reads return whole encoded batches.
    cur.copy_expert(statement.as_string(cur), stream, size=1 << 24)
    return stream.bytes


def copy_with_constants(
    cur: psycopg2.extensions.cursor,
    table: str,
    rows: pa.Table,
    columns: tuple[str, ...] | list[str],
    constants: dict[str, str],
) -> int:
    """``columns`` of ``table`` filled from ``rows`` and, for the names in ``constants``, one
    value repeated on every row (a run id, a file name); binary COPY, INSERT if refused.

    The quarantine and the quality findings are written this way: what a file of
    rejected rows or findings holds, plus whose run and file they are.
    """
    if rows.num_rows == 0:
        return 0
    data = pa.table(
        {
            c: pa.repeat(pa.scalar(constants[c], pa.string()), rows.num_rows)
            if c in constants
            else rows.column(c)
            for c in columns
        }
    )
    copy_or_insert(cur, table, arrow_for(data, column_types(cur, table)))
    return rows.num_rows


def insert_batches(cur: psycopg2.extensions.cursor, table: str, data: pa.Table) -> int:
    """Batched multi-row INSERT: the path of last resort when COPY is refused."""
    statement = sql.SQL("INSERT INTO {} ({}) VALUES %s").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in data.column_names)
    )
    query = statement.as_string(cur)
    sent = 0
    for batch in data.to_batches(max_chunksize=INSERT_PAGE_ROWS):
        rows = list(zip(*(column.to_pylist() for column in batch.columns)))
        psycopg2.extras.execute_values(cur, query, rows, page_size=INSERT_PAGE_ROWS)
        sent += batch.nbytes
    return sent


def copy_or_insert(
    cur: psycopg2.extensions.cursor, table: str, data: pa.Table, method: str = "auto"
) -> CopyResult:
    """Binary COPY, or batched INSERT if the server refuses COPY (or ``method='insert'``).

    The attempt runs in a savepoint so a refused COPY leaves the transaction usable.
    """
    started = time.perf_counter()
    if method != "insert":
        cur.execute("SAVEPOINT etl_copy")
        try:
            sent = copy_binary(cur, table, data)
        except _COPY_REFUSED as exc:
            cur.execute("ROLLBACK TO SAVEPOINT etl_copy")
            log.warning(
                "COPY into %s refused (%s); falling back to batched INSERT",
                table,
                str(exc).strip().splitlines()[0],
            )
        else:
            cur.execute("RELEASE SAVEPOINT etl_copy")
            return CopyResult(data.num_rows, sent, time.perf_counter() - started, "copy")
    else:
        log.warning("COPY disabled by settings (ETL_LOAD_METHOD=insert); loading %s by INSERT", table)
    sent = insert_batches(cur, table, data)
    return CopyResult(data.num_rows, sent, time.perf_counter() - started, "insert-fallback")
