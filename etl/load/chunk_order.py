"""Order rows chunk by chunk before they are COPYed into a TimescaleDB hypertable.

Why: TimescaleDB's COPY routes every row to the chunk of its time and buffers
rows per chunk, but flushes *all* its buffers every ~64 KiB of input. Rows in
random time order (most real extracts: ordered by id, not by time) therefore
reach each chunk a dozen at a time, and each flush pays the per-chunk set-up
again. Measured on 1M order-item rows spread over ~25 chunks, alternating
ordered and unordered loads in one process (docs/performance.md, "Loader"):
once 122-138k vs 74-103k rows/s, once 123k vs 121k (median of 3) -- never
slower, sometimes much faster, on a noisy shared machine. It costs one stable
sort and a copy of the Arrow table (~0.2 s and ~150 MiB per million rows).

The order is a *stable* sort on the chunk number only (time // chunk interval),
not on the time itself: within a chunk the rows keep their input order, so a
key that was ascending (an id) stays ascending and its index keeps appending at
the right edge. Sorting fully by time was no faster in the same measurement.

Plain tables (and databases without TimescaleDB) are left untouched. So is a
large initial load whose indexes are built after the COPY
(etl/deferred_indexes.py): without per-row index maintenance the ordering no
longer paid for its sort (an ABBA A/B of 1M rows: 202k ordered vs 222k rows/s
unordered, ordered slower in 5 of 6 pairs).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2.extensions
import pyarrow as pa
import pyarrow.compute as pc

_MICROS_PER_DAY = 86_400 * 1_000_000


@dataclass(frozen=True)
class TimePartitioning:
    column: str
    interval_us: int  # chunk interval in microseconds


def time_partitioning(cur: psycopg2.extensions.cursor, table: str) -> TimePartitioning | None:
    """The first time dimension of hypertable ``table``; None for anything else."""
    cur.execute("SELECT to_regclass('timescaledb_information.dimensions') IS NOT NULL")
    if not cur.fetchone()[0]:
        return None
    cur.execute(
        """SELECT d.column_name, (extract(epoch FROM d.time_interval) * 1000000)::bigint
             FROM timescaledb_information.dimensions d
             JOIN pg_namespace n ON n.nspname = d.hypertable_schema
             JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = d.hypertable_name
            WHERE c.oid = to_regclass(%s) AND d.time_interval IS NOT NULL
            ORDER BY d.dimension_number LIMIT 1""",
        (table,),
    )
    row = cur.fetchone()
    return TimePartitioning(row[0], int(row[1])) if row and row[1] else None


def _micros(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """Microseconds since the Unix epoch (TimescaleDB's internal time), or None if not a time."""
    if pa.types.is_timestamp(column.type):
        return pc.cast(column.cast(pa.timestamp("us", tz=column.type.tz), safe=False), pa.int64())
    if pa.types.is_date(column.type):
        days = pc.cast(pc.cast(column.cast(pa.date32()), pa.int32()), pa.int64())
        return pc.multiply(days, _MICROS_PER_DAY)
    return None


def by_chunk(data: pa.Table, partitioning: TimePartitioning | None) -> pa.Table:
    """``data`` stably reordered so rows of one chunk are contiguous (see module doc)."""
    if partitioning is None or data.num_rows < 2 or partitioning.column not in data.column_names:
        return data
    micros = _micros(data.column(partitioning.column))
    if micros is None:
        return data
    # Floor division, so times before 1970 fall into their own chunk as TimescaleDB's do.
    chunk = pc.floor(pc.divide(pc.cast(micros, pa.float64()), float(partitioning.interval_us)))
    # sort_indices is stable; nulls (refused by the NOT NULL time column anyway) go last.
    order = pc.sort_indices(pa.table({"chunk": chunk}), sort_keys=[("chunk", "ascending")])
    return data.take(order)
