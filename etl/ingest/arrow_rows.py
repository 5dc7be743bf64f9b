"""A database source's Arrow batch mapped onto a warehouse table's Olist columns, by columns.

The same conventions as the per-row ``TableMapping.row`` (docs/sources.md),
applied to whole columns with Arrow compute, so a 1M-row table costs a few
vectorised passes instead of a million dict builds:

* ids listed in ``hash_ids`` become ``md5("<namespace>:<entity>:<value>")``
  (DuckDB's md5 over the Arrow column: Arrow has no md5 kernel, and hashlib
  in a Python loop cost ~1 s per million values);
* naive timestamps are already local wall clock: ``YYYY-MM-DD HH:MM:SS``;
  timestamps with a zone are converted to ``settings.source_timezone``;
* text that looks like an ISO timestamp is treated the same way;
* everything else as text (decimals, dates, numbers; bytes as hex).

Watermarks: a record is new when its cursor text is above the watermark, or at
it with an id not seen at it (``state.Watermark.is_new``); the watermark moves
to the batch's highest cursor with the ids there. Cursor texts are the ones the
per-row readers wrote (ISO datetimes with microseconds, 20-digit integers), so
a watermark stored by either kind of reader is read the same way.
"""

from __future__ import annotations

import functools

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from etl.errors import ConfigError
from etl.ingest.databases import TableMapping, entity_name
from etl.ingest.records import TABLE_COLUMNS, local_timestamp
from etl.ingest.state import Watermark, advance

#: Values of an id column looked at to judge whether its values repeat (``_hashed``).
REPEAT_SAMPLE = 10_000
_NAIVE_ISO = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$"
_OFFSET_ISO = r"^\d{4}-\d\d-\d\dT.*[+-]\d\d:\d\d$"


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _iso(naive: pa.Array) -> pa.Array:
    """Naive timestamps as ``YYYY-MM-DDTHH:MM:SS.ffffff`` (a cast: strftime is ~5x slower)."""
    return pc.replace_substring(
        naive.cast(pa.timestamp("us")).cast(pa.string()), " ", "T", max_replacements=1
    )


def plain_text(column: pa.Array) -> pa.Array:
    """A column as the text a JSON-normalised value printed as (the id and cursor texts)."""
    t = column.type
    if pa.types.is_null(t):
        return pa.nulls(len(column), pa.string())
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            utc = pc.local_timestamp(column.cast(pa.timestamp("us", tz="UTC")))
            return pc.binary_join_element_wise(_iso(utc), "+00:00", "")
        return _iso(column)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return pa.array([None if v is None else v.hex() for v in column.to_pylist()], pa.string())
    if pa.types.is_boolean(t):
        return pc.if_else(column, "True", "False")
    return column.cast(pa.string())


def cursor_text(column: pa.Array) -> pa.Array:
    """Cursor values as strings that sort like the values (``databases.cursor_text``, by columns)."""
    if pa.types.is_boolean(column.type):
        raise ConfigError("a boolean column cannot be an incremental cursor")
    if pa.types.is_integer(column.type):
        return pc.utf8_lpad(column.cast(pa.string()), 20, "0")
    return plain_text(column)


def _value_text(column: pa.Array, tz: str) -> pa.Array:
    """A mapped (non-id) column's text in the warehouse's conventions."""
    t = column.type
    if pa.types.is_timestamp(t):
        wall = pc.local_timestamp(column.cast(pa.timestamp("us", tz=tz))) if t.tz else column
        return wall.cast(pa.timestamp("s"), safe=False).cast(pa.string())
    text = plain_text(column)
    if not _is_text(t) or not len(text):
        return text
    naive = pc.fill_null(pc.match_substring_regex(text, _NAIVE_ISO), False)
    if pc.any(naive).as_py():
        wall = pc.replace_substring(pc.utf8_slice_codeunits(text, 0, 19), "T", " ")
        text = pc.if_else(naive, wall, text)
    zoned = pc.fill_null(pc.match_substring_regex(text, _OFFSET_ISO), False)
    if pc.any(zoned).as_py():
        values = text.to_pylist()
        flags = zoned.to_pylist()
        text = pa.array([local_timestamp(v, tz) if f else v for v, f in zip(values, flags)], pa.string())
    return text


@functools.cache
def _duckdb() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per process (opening one costs ~60 ms; each use takes its own cursor)."""
    return duckdb.connect()


def _hashed(column: pa.Array, namespace: str, target: str) -> pa.Array:
    """``md5("<namespace>:<entity>:<text>")`` per value, in DuckDB (4x hashlib in a loop; nulls stay null).

    A column whose values repeat (customer ids of orders) hashes its distinct values once.
    Whether they repeat is judged on the batch's first ``REPEAT_SAMPLE`` values: a
    column of unique ids (order ids) is then not dictionary-encoded for nothing
    (a hash table of every value, ~0.1 s per million). Either way the hashes are the same.
    """
    text = plain_text(column)
    head = text.slice(0, REPEAT_SAMPLE)
    distinct = len(pc.unique(head)) < len(head) // 2
    encoded = pc.dictionary_encode(text) if distinct else None
    texts = pa.table({"v": encoded.dictionary if encoded else text})  # noqa: F841 (DuckDB reads it by name)
    with _duckdb().cursor() as con:
        hashed = con.sql(
            "SELECT md5($prefix || v) AS h FROM texts",
            params={"prefix": f"{namespace}:{entity_name(target)}:"},
        ).to_arrow_table()
    values = hashed.column("h").combine_chunks().cast(pa.string())
    return pc.take(values, encoded.indices) if encoded else values


def map_batch(mapping: TableMapping, batch: pa.RecordBatch | pa.Table, tz: str) -> pa.Table:
    """The batch as rows of ``mapping.table``: every Olist + lineage column, as text."""
    n = batch.num_rows
    names = set(batch.schema.names)

    def source(field_name: str | None) -> pa.Array:
        if field_name is None or field_name not in names:
            return pa.nulls(n, pa.string())
        column = batch.column(field_name)
        return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column

    out: dict[str, pa.Array] = {}
    for target, field_name in mapping.columns.items():
        column = source(field_name)
        if target in mapping.hash_ids:
            out[target] = _hashed(column, mapping.id_namespace, target)
        else:
            out[target] = _value_text(column, tz)
    out.setdefault("source_system", pa.array([mapping.source] * n, pa.string()))
    if mapping.id_field:
        out.setdefault("source_id", plain_text(source(mapping.id_field)))
    out.setdefault("currency", pa.array([mapping.currency] * n, pa.string()))
    columns = TABLE_COLUMNS[mapping.table]
    return pa.table([out[c] if c in out else pa.nulls(n, pa.string()) for c in columns], names=columns)


def fresh(
    batch: pa.RecordBatch, cursor: str | None, id_field: str | None, since: Watermark | None
) -> pa.RecordBatch:
    """The batch's records not yet covered by ``since`` (all of them without a watermark)."""
    if not (cursor and since) or cursor not in batch.schema.names:
        return batch
    texts = cursor_text(batch.column(cursor))
    ids = plain_text(batch.column(id_field)) if id_field in batch.schema.names else pa.nulls(len(texts))
    above = pc.greater(texts, since.cursor_value)
    at = pc.and_(
        pc.equal(texts, since.cursor_value),
        pc.invert(pc.is_in(ids, value_set=pa.array(since.ids_at_cursor, pa.string()))),
    )
    keep = pc.fill_null(pc.or_(above, at), True)
    return batch.filter(keep)


def advanced(
    mark: Watermark | None, entity: str, batch: pa.RecordBatch, cursor: str, id_field: str | None
) -> Watermark | None:
    """``mark`` moved over the batch: its highest cursor and the ids sitting at it."""
    if cursor not in batch.schema.names or not batch.num_rows:
        return mark
    column = batch.column(cursor)
    if pa.types.is_boolean(column.type):
        raise ConfigError("a boolean column cannot be an incremental cursor")
    top = pc.max(column)  # on the typed column: only the top value is turned into text
    if not top.is_valid:
        return mark
    top_text = cursor_text(pa.array([top.as_py()], column.type))[0].as_py()
    if top_text in (None, ""):
        return mark
    ids = plain_text(batch.column(id_field)) if id_field in batch.schema.names else pa.nulls(len(column))
    at_top = pc.fill_null(pc.equal(column, top), False)
    return advance(mark, entity, [(top_text, str(i)) for i in pc.filter(ids, at_top).to_pylist()])
