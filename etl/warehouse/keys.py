"""Which keys the warehouse already holds: foreign keys a batch may point at, natural keys it may repeat.

One owner for these lookups, used by the transform stage (orphans are checked
against earlier runs' rows too) and by the quarantine retry.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import psycopg2.extensions
from psycopg2 import sql

from etl.olist import ForeignKey

#: (foreign key, values) -> the values the referenced table holds.
KeyLookup = Callable[[ForeignKey, pd.Series], set[str]]


def foreign_key_lookup(conn: psycopg2.extensions.connection) -> KeyLookup:
    """A lookup of referenced keys in ``conn``'s transaction (a cursor per call: threads may share it)."""

    def lookup(fk: ForeignKey, values: pd.Series) -> set[str]:
        if values.empty:
            return set()
        (ref_column,) = fk.ref_columns
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT DISTINCT {col}::text FROM {table} WHERE {col} = ANY(%s)").format(
                    col=sql.Identifier(ref_column), table=sql.Identifier(fk.table)
                ),
                (list(values.astype(str)),),
            )
            return {r[0] for r in cur.fetchall()}

    return lookup


def existing_keys(cur, table: str, key: tuple[str, ...], frame: pd.DataFrame) -> np.ndarray:
    """Which rows of ``frame`` have a natural key already in the warehouse."""
    if frame.empty or not key:
        return np.zeros(len(frame), dtype=bool)
    arrays = [frame[c].astype(str).tolist() for c in key]
    cols = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in key)
    unnest = sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in key)
    cur.execute(
        sql.SQL("SELECT {cols} FROM {table} WHERE ({cols}) IN (SELECT * FROM unnest({unnest}))").format(
            cols=cols, table=sql.Identifier(table), unnest=unnest
        ),
        arrays,
    )
    found = {tuple(r) for r in cur.fetchall()}
    return np.array([tuple(v) in found for v in zip(*arrays)], dtype=bool)
