"""The time-bucketed aggregates ``hourly_sales`` and ``daily_customer_metrics``.

Dashboards, BI and the analytical views (sql/views/) read only these names. What
they are depends on the server (``etl db status`` prints the mode):

* TimescaleDB with the ``timescale`` license: **continuous aggregates** with a
  refresh policy; ``refresh`` calls ``refresh_continuous_aggregate`` for the
  touched ranges. (Cannot run on the Apache build here: untested on these machines.)
* TimescaleDB Apache edition or plain PostgreSQL: ordinary **tables** with a
  unique ``bucket``, recomputed by ``refresh`` **only for the local days a load
  changed** (DELETE + INSERT of those buckets, in the caller's transaction).

Each aggregate's SELECT lives once in ``sql/aggregates/<name>.sql``; only the
bucket function (``time_bucket`` / ``date_trunc``, same result) and the
optional time filter are filled in here, so both modes compute the same thing.

The hook for the pipeline and the DAG: the load stage queues the days it changed
(``queue_days``, in the load transaction); ``refresh_pending(conn)`` recomputes
and dequeues them; ``refresh(conn, ranges)`` recomputes explicit ranges.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

import psycopg2.extensions
from psycopg2 import sql

from etl.settings import SQL_DIR
from etl.warehouse import schema

log = logging.getLogger(__name__)

AGGREGATE_DIR = SQL_DIR / "aggregates"
#: Serialises refreshes (two refreshes of one bucket would both INSERT it).
_LOCK_KEY = 0x65746C_61676721  # 'etl agg!'


@dataclass(frozen=True)
class Aggregate:
    name: str
    width: str  # 'hour' | 'day'
    local_days: bool  # day buckets in the source time zone (else UTC)

    def select_text(self) -> str:
        return (AGGREGATE_DIR / f"{self.name}.sql").read_text()


AGGREGATES: tuple[Aggregate, ...] = (
    Aggregate("hourly_sales", "hour", local_days=False),
    Aggregate("daily_customer_metrics", "day", local_days=True),
)
NAMES = tuple(a.name for a in AGGREGATES)


@dataclass
class RefreshResult:
    mode: str
    ranges: list[tuple[datetime, datetime]] = field(default_factory=list)
    #: aggregate -> buckets recomputed (rows written); continuous aggregates report -1 (unknown)
    buckets: dict[str, int] = field(default_factory=dict)


def is_continuous(mode: schema.TimescaleMode) -> bool:
    return mode.installed and mode.license == "timescale"


def bucket_sql(agg: Aggregate, mode: schema.TimescaleMode, timezone: str) -> sql.Composable:
    """The bucket of ``o.purchased_at``: time_bucket with TimescaleDB, date_trunc without."""
    zone = sql.Literal(timezone if agg.local_days else "UTC")
    width = sql.Literal(f"1 {agg.width}")
    if mode.installed:
        return sql.SQL("time_bucket(CAST({} AS interval), o.purchased_at, {})").format(width, zone)
    return sql.SQL("date_trunc({}, o.purchased_at, {})").format(sql.Literal(agg.width), zone)


_NO_FILTER = sql.SQL("")


def select_sql(
    agg: Aggregate, mode: schema.TimescaleMode, timezone: str, where: sql.Composable = _NO_FILTER
) -> sql.Composable:
    return sql.SQL(agg.select_text()).format(bucket=bucket_sql(agg, mode, timezone), where=where)


_RANGE = sql.SQL("WHERE o.purchased_at >= %(lo)s AND o.purchased_at < %(hi)s")


# --- set-up (etl db init) ---------------------------------------------------------------


def _relkind(cur, name: str) -> str | None:
    cur.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (name,))
    row = cur.fetchone()
    return row[0] if row else None


def ensure(cur: psycopg2.extensions.cursor, mode: schema.TimescaleMode, timezone: str) -> None:
    """Create the aggregates for this mode (idempotent; run by ``etl db init``)."""
    for agg in AGGREGATES:
        if is_continuous(mode):
            _ensure_continuous(cur, agg, mode, timezone)
        else:
            _ensure_table(cur, agg, mode, timezone)


def _ensure_table(cur, agg: Aggregate, mode: schema.TimescaleMode, timezone: str) -> None:
    name = sql.Identifier(agg.name)
    kind = _relkind(cur, agg.name)
    if kind not in (None, "r"):
        raise RuntimeError(f"{agg.name} exists but is not a table (relkind {kind}); drop it to switch modes")
    if kind == "r":
        # Rebuild if the definition's columns changed, so the table never drifts from its SELECT.
        cur.execute(
            sql.SQL("SELECT * FROM ({}) q LIMIT 0").format(
                select_sql(agg, mode, timezone, sql.SQL("WHERE FALSE"))
            )
        )
        wanted = [d.name for d in cur.description]
        cur.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(name))
        if [d.name for d in cur.description] == wanted:
            return
        log.warning("%s: definition changed; rebuilding it", agg.name)
        cur.execute(sql.SQL("DROP TABLE {}").format(name))
    cur.execute(sql.SQL("CREATE TABLE {} AS {} WITH DATA").format(name, select_sql(agg, mode, timezone)))
    cur.execute(
        sql.SQL("CREATE UNIQUE INDEX {} ON {} (bucket)").format(
            sql.Identifier(f"{agg.name}_bucket_idx"), name
        )
    )


def _ensure_continuous(cur, agg: Aggregate, mode: schema.TimescaleMode, timezone: str) -> None:
    """Full license only; not executable on the Apache build these machines have."""
    name = sql.Identifier(agg.name)
    if _relkind(cur, agg.name) == "r":  # a fallback table from an earlier mode
        cur.execute(sql.SQL("DROP TABLE {}").format(name))
    if _relkind(cur, agg.name) is None:
        cur.execute(
            sql.SQL(
                "CREATE MATERIALIZED VIEW {} WITH (timescaledb.continuous, timescaledb.materialized_only = false) "
                "AS {} WITH NO DATA"
            ).format(name, select_sql(agg, mode, timezone))
        )
    # Late changes to old orders are refreshed by the pipeline (refresh_pending);
    # the policy keeps recent buckets fresh between loads. Added once: even with
    # if_not_exists, adding needs an owner with LOGIN (the job runs as it), and
    # after init the owner is the NOLOGIN etl_writer (sql/roles.sql).
    cur.execute(
        "SELECT add_continuous_aggregate_policy(%s, start_offset => INTERVAL '30 days', "
        "end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour', "
        "if_not_exists => TRUE) "
        "WHERE NOT EXISTS (SELECT 1 FROM timescaledb_information.jobs j "
        "JOIN timescaledb_information.continuous_aggregates c "
        "ON (c.materialization_hypertable_schema, c.materialization_hypertable_name) "
        "= (j.hypertable_schema, j.hypertable_name) "
        "WHERE j.proc_name = 'policy_refresh_continuous_aggregate' AND c.view_name = %s)",
        (agg.name, agg.name),
    )


# --- refresh ----------------------------------------------------------------------------


def merge_ranges(ranges: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Sorted, non-overlapping ranges covering ``ranges`` (adjacent days become one range)."""
    merged: list[tuple[datetime, datetime]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def queue_days(cur: psycopg2.extensions.cursor, run_id: str, days: Iterable[date], timezone: str) -> int:
    """Record, in the caller's (load) transaction, local days whose buckets need recomputing."""
    days = sorted(set(days))
    if not days:
        return 0
    cur.execute(
        """INSERT INTO aggregate_refresh_queue (range_start, range_end, run_id)
           SELECT d::timestamp AT TIME ZONE %(tz)s, (d + 1)::timestamp AT TIME ZONE %(tz)s, %(run)s
             FROM unnest(%(days)s::date[]) AS d
           ON CONFLICT DO NOTHING""",
        {"tz": timezone, "run": run_id, "days": days},
    )
    return len(days)


def refresh(
    conn: psycopg2.extensions.connection, ranges: Iterable[tuple[datetime, datetime]], timezone: str
) -> RefreshResult:
    """Recompute every aggregate for ``ranges`` of purchase time (local-day aligned).

    Fallback mode: runs in the caller's transaction (commit to publish).
    Continuous mode: needs ``conn.autocommit = True`` (TimescaleDB refuses to
    refresh inside a transaction block).
    """
    mode = schema.timescale_mode(conn)
    result = RefreshResult(mode.name, merge_ranges(ranges))
    with conn.cursor() as cur:
        for agg in AGGREGATES:
            if is_continuous(mode):
                for lo, hi in result.ranges:
                    cur.execute(
                        "CALL refresh_continuous_aggregate(%s, %s, %s)", (agg.name, _finite(lo), _finite(hi))
                    )
                result.buckets[agg.name] = -1
                continue
            written = 0
            for lo, hi in result.ranges:
                params = {"lo": lo, "hi": hi}
                cur.execute(
                    sql.SQL("DELETE FROM {} WHERE bucket >= %(lo)s AND bucket < %(hi)s").format(
                        sql.Identifier(agg.name)
                    ),
                    params,
                )
                cur.execute(
                    sql.SQL("INSERT INTO {} {}").format(
                        sql.Identifier(agg.name), select_sql(agg, mode, timezone, _RANGE)
                    ),
                    params,
                )
                written += cur.rowcount
            result.buckets[agg.name] = written
    log.info("aggregates refreshed (%s) over %d range(s): %s", mode.name, len(result.ranges), result.buckets)
    return result


def _finite(value: datetime) -> datetime | None:
    """refresh_continuous_aggregate takes NULL for an open end."""
    return None if value in (datetime.min, datetime.max) else value


def refresh_pending(conn: psycopg2.extensions.connection, timezone: str) -> RefreshResult:
    """Recompute every queued day (from any run) and dequeue it; commits."""
    mode = schema.timescale_mode(conn)
    if is_continuous(mode):
        conn.rollback()  # end the read of the mode: autocommit cannot be set inside a transaction
        conn.autocommit = True
    with conn.cursor() as cur:
        if not is_continuous(mode):
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        cur.execute("SELECT range_start, range_end, run_id FROM aggregate_refresh_queue")
        queued = cur.fetchall()
    result = refresh(conn, [(lo, hi) for lo, hi, _ in queued], timezone)
    with conn.cursor() as cur:
        cur.execute(
            "DELETE FROM aggregate_refresh_queue WHERE (range_start, run_id) IN "
            "(SELECT * FROM unnest(%s::timestamptz[], %s::text[]))",
            ([q[0] for q in queued], [q[2] for q in queued]),
        )
    if not conn.autocommit:
        conn.commit()
    return result


def describe(conn: psycopg2.extensions.connection) -> str:
    """One line for ``etl db status``: how the aggregates are kept and what is pending."""
    mode = schema.timescale_mode(conn)
    with conn.cursor() as cur:
        kinds = {agg.name: _relkind(cur, agg.name) for agg in AGGREGATES}
        cur.execute("SELECT to_regclass('aggregate_refresh_queue') IS NOT NULL")
        pending = 0
        if cur.fetchone()[0]:
            cur.execute("SELECT count(DISTINCT range_start) FROM aggregate_refresh_queue")
            pending = cur.fetchone()[0]
    conn.rollback()
    missing = [name for name, kind in kinds.items() if kind is None]
    if missing:
        return f"missing {', '.join(missing)} (run `etl db init`)"
    how = (
        "continuous aggregates with refresh policies"
        if is_continuous(mode)
        else "tables refreshed per touched day"
    )
    return f"{', '.join(NAMES)} as {how}; {pending} day(s) waiting for a refresh"
