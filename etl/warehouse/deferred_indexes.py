"""Build a table's indexes after an initial bulk load instead of row by row during it.

Why: a COPY writes the heap in multi-row batches (~23k WAL records per million
rows here), but every index is maintained one row at a time: one B-tree descent
and one WAL record per row and index. Measured on 1M order-item rows
(docs/performance.md, "Loader"), the primary key alone doubled the load time of
a plain table, and a TimescaleDB hypertable carries a second B-tree, its
default time index (``create_hypertable`` makes one on the time column), which
receives the rows in random time order within each chunk: that index cost more
than the primary key, and together the two made hypertable loads ~2-3x slower
than plain-table loads. Building an index after the load is one sort per index
(per chunk, for a hypertable) and is what PostgreSQL's manual recommends for
populating a table ("Populating a Database": create indexes after loading;
pg_restore does the same).

``deferred(cur, table, rows)`` drops the table's primary key, unique
constraints and plain indexes before the load and recreates them, with the same
names and definitions, when the block ends -- all in the caller's transaction,
so a failed load or rebuild leaves the table exactly as it was. Duplicate keys
in the input still fail the load, with the same SQLSTATE (23505
unique_violation), when the key is rebuilt instead of during the COPY.

The cost is the lock: dropping an index takes ACCESS EXCLUSIVE on the table, so
readers of that (empty) table wait for the run's commit instead of seeing it
empty. Hence only for initial loads of at least ``MIN_ROWS`` rows, where the
saving is seconds. Left in place (maintained row by row, as before): indexes
backing a foreign key or an exclusion constraint, the clustered or replica
identity index, and any with a comment -- things a plain re-create would lose.
If the drop is refused (not the table's owner, a TimescaleDB restriction), it is
rolled back to a savepoint and the load runs with the indexes in place.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

log = logging.getLogger(__name__)

#: Below this many rows the saving is a fraction of a second: not worth blocking readers.
MIN_ROWS = 100_000


@dataclass(frozen=True)
class Index:
    name: str  # the index's (or constraint's) name
    regclass: str  # the index as a (quoted, qualified if need be) relation name
    definition: str  # pg_get_indexdef / pg_get_constraintdef
    constraint: bool  # backs a PRIMARY KEY / UNIQUE constraint
    unique: bool = False  # a unique index (with or without a constraint)


def rebuildable(cur: psycopg2.extensions.cursor, table: str) -> list[Index]:
    """The indexes of ``table`` that can be dropped and recreated exactly (see module doc)."""
    cur.execute(
        """SELECT coalesce(c.conname, ic.relname), i.indexrelid::regclass::text,
                  coalesce(pg_get_constraintdef(c.oid), pg_get_indexdef(i.indexrelid)), c.oid IS NOT NULL,
                  i.indisunique
             FROM pg_index i
             JOIN pg_class ic ON ic.oid = i.indexrelid
             LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                                      AND c.contype IN ('p', 'u', 'x')
            WHERE i.indrelid = to_regclass(%s)
              AND i.indisvalid AND i.indisready AND NOT i.indisclustered AND NOT i.indisreplident
              AND (c.oid IS NULL OR c.contype IN ('p', 'u'))
              AND obj_description(i.indexrelid, 'pg_class') IS NULL
              AND (c.oid IS NULL OR obj_description(c.oid, 'pg_constraint') IS NULL)
              AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = i.indexrelid)
            ORDER BY c.oid IS NULL, ic.relname""",
        (table,),
    )
    return [Index(*row) for row in cur.fetchall()]


def _drop(cur, table: str, index: Index) -> None:
    if index.constraint:
        cur.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(table), sql.Identifier(index.name)
            )
        )
    else:
        cur.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(index.regclass)))


def _create(cur, table: str, index: Index) -> None:
    if index.constraint:
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.Identifier(table), sql.Identifier(index.name), sql.SQL(index.definition)
            )
        )
    else:
        cur.execute(index.definition)


@contextmanager
def deferred(
    cur: psycopg2.extensions.cursor, table: str, rows: int, keep_keys: bool = False
) -> Iterator[list[Index]]:
    """Within the block, ``table`` has none of its rebuildable indexes; they are rebuilt on exit.

    Yields the indexes deferred (empty when nothing was, e.g. under ``MIN_ROWS``).
    ``keep_keys`` leaves primary keys and unique constraints and indexes in place,
    for writes that need them inside the block (``INSERT ... ON CONFLICT``).
    On an exception inside the block nothing is rebuilt: the caller's transaction
    is failing anyway and its rollback restores the indexes.
    """
    indexes = rebuildable(cur, table) if rows >= MIN_ROWS else []
    if keep_keys:
        indexes = [i for i in indexes if not i.constraint and not i.unique]
    if indexes:
        cur.execute("SAVEPOINT etl_defer_indexes")
        try:
            for index in indexes:
                _drop(cur, table, index)
        except psycopg2.Error as exc:
            cur.execute("ROLLBACK TO SAVEPOINT etl_defer_indexes")
            log.warning(
                "%s: could not defer its indexes (%s); loading with them in place",
                table,
                str(exc).strip().splitlines()[0],
            )
            indexes = []
        else:
            cur.execute("RELEASE SAVEPOINT etl_defer_indexes")
    yield indexes
    for index in indexes:
        _create(cur, table, index)
    if indexes:
        log.info(
            "%s: rebuilt %d index(es) after the load: %s",
            table,
            len(indexes),
            ", ".join(i.name for i in indexes),
        )
