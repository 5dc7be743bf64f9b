"""One definition per question: the shared SQL gives PostgreSQL's figures in DuckDB too.

Real engines on both sides: a throwaway PostgreSQL database and an in-memory
DuckDB hold the same small table; ``queries._ratio`` (the dashboards' rounded
ratios) and the psycopg2-to-DuckDB statement rendering are run through both.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import psycopg2
import pytest
from psycopg2 import sql

from dashboard import fallback, queries
from etl.warehouse import connection as db

#: Ties at the kept digit (29/200 = 0.145 is DuckDB's plain round() pitfall), near-ties, zero denominators.
PAIRS = [
    (29, 200),
    (1, 8),
    (3, 8),
    (5, 40000),
    (1, 3),
    (2, 3),
    (0, 7),
    (7, 0),
    (123456789, 1000),
    (999, 1000),
]
PAIRS += [(n, d) for n in range(0, 61) for d in (40, 80, 160, 400)]
PAIRS += [(-29, 200), (-1, 8)]


def _expected(n: int, d: int, places: int) -> float | None:
    if d == 0:
        return None
    exact = (Decimal(n) / Decimal(d)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return float(exact)


def _statement(places: int) -> sql.Composable:
    return sql.SQL("SELECT n, d, {} AS r FROM pairs WHERE n >= %(low)s GROUP BY n, d ORDER BY n, d").format(
        queries._ratio("sum(n)", "sum(d)", places)
    )


@pytest.fixture
def engines(fresh_db, tmp_path):
    db.ensure_database(fresh_db.database_url)
    pg = psycopg2.connect(fresh_db.database_url)
    with pg, pg.cursor() as cur:
        cur.execute("CREATE TABLE pairs (n bigint, d bigint)")
        cur.executemany("INSERT INTO pairs VALUES (%s, %s)", PAIRS)
    duck = duckdb.connect(":memory:")
    duck.execute("CREATE TABLE pairs (n BIGINT, d BIGINT)")
    duck.executemany("INSERT INTO pairs VALUES (?, ?)", PAIRS)
    yield pg, fallback.ExportConnection(duck, tmp_path)
    pg.close()
    duck.close()


@pytest.mark.parametrize("places", [2, 4])
def test_rounded_ratios_agree_with_postgresql_to_the_last_digit(engines, places):
    pg, duck = engines
    live = queries._rows(pg, _statement(places), {"low": -100})
    export = queries._rows(duck, _statement(places), {"low": -100})
    assert len(live) == len(set(PAIRS)) and export == live
    for row in live:
        assert row["r"] == _expected(row["n"], row["d"], places), row
    tie = next(r for r in export if (r["n"], r["d"]) == (29, 200))
    assert tie["r"] == (0.15 if places == 2 else 0.145)


def test_statements_keep_their_values_bound():
    text, values = fallback.to_duckdb(
        fallback.render(
            sql.SQL("SELECT {} FROM {} WHERE a = %(a)s AND b = %s AND c LIKE 'x%%'").format(
                sql.Identifier('odd"name'), sql.Identifier("t")
            )
        ),
        {"a": 1, "unused": 2},
    )
    assert text == 'SELECT "odd""name" FROM "t" WHERE a = $a AND b = ? AND c LIKE \'x%\''
    assert values == {"a": 1}
    with pytest.raises(TypeError, match="bind parameter"):
        fallback.render(sql.SQL("SELECT {}").format(sql.Literal("pasted")))


def test_an_export_without_a_relation_says_to_re_export(tmp_path: Path):
    conn = fallback.ExportConnection(duckdb.connect(":memory:"), tmp_path)
    with pytest.raises(fallback.FallbackUnavailable, match="re-run `etl export"):
        queries.segments(conn, None)
