"""The time-bucketed aggregates and the refresh that keeps everything derived current.

Every dashboard, Streamlit and BI figure comes from these buckets (or from the
analytics tables derived from them, ``etl.publish.derived``). What they are
depends on the server (``etl db status`` prints the mode):

* TimescaleDB with the ``timescale`` license: **continuous aggregates**,
  ``materialized_only = true`` and no refresh policy: the pipeline refreshes
  exactly the buckets a load touched (``refresh_continuous_aggregate``, which
  TimescaleDB runs only outside a transaction block). Real-time aggregation is
  off on purpose: the dashboards read only materialised buckets (a few thousand
  rows, no scan of the facts per request), every load is followed by a refresh
  of what it changed, and TimescaleDB's invalidation log only sees changes to
  the hypertable, not to the plain tables the aggregates join (items, customers),
  so the queue below is what says which buckets are stale, in both modes, and
  the refresh is forced (``force => true``: recompute the window whatever the
  invalidation log says; a change to an item's price leaves no trace there).
* TimescaleDB Apache edition or plain PostgreSQL: ordinary **tables** keyed by
  ``bucket``, recomputed for the touched buckets (DELETE + INSERT) in the
  refresh's transaction.

Each aggregate's SELECT lives once in ``sql/aggregates/<name>.sql``; only the
bucket function (``time_bucket`` / ``date_trunc``, same result) and the optional
purchase-time range are filled in here, so both modes compute the same thing.

The queue: the load stage records the local days it changed
(``queue_days``, in the load's transaction); ``refresh_pending`` recomputes
every queued day -- the buckets, then the derived tables -- and dequeues
exactly the entries it read, in the transaction that writes the derived
tables. A refresh that fails anywhere dequeues nothing, so the next one drains
what is left (recomputing a bucket twice gives the same bucket).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

import psycopg2.extensions
from psycopg2 import sql

from etl.publish import derived
from etl.settings import SQL_DIR
from etl.warehouse import deferred_indexes, schema

log = logging.getLogger(__name__)

AGGREGATE_DIR = SQL_DIR / "aggregates"
#: Serialises refreshes (two refreshes of one bucket would both INSERT it); a
#: session lock, since a continuous aggregate's refresh cannot be in a transaction.
_LOCK_KEY = 0x65746C_61676721  # 'etl agg!'
#: What a full rebuild queues (``queue_everything``): all of time.
EVERYTHING = ("-infinity", "infinity")


@dataclass(frozen=True)
class Aggregate:
    name: str
    width: str  # 'hour' | 'day'
    local_days: bool  # day buckets in the source time zone (else UTC)
    #: indexes of the fallback table (continuous aggregates index their GROUP BY columns themselves)
    unique_bucket: bool = True
    indexes: tuple[tuple[str, ...], ...] = ()

    def select_text(self) -> str:
        return (AGGREGATE_DIR / f"{self.name}.sql").read_text()


AGGREGATES: tuple[Aggregate, ...] = (
    Aggregate("hourly_sales", "hour", local_days=False),
    Aggregate("daily_customer_metrics", "day", local_days=True),
    Aggregate(
        "sales_daily_orders", "day", True, unique_bucket=False, indexes=(("purchase_date", "customer_state"),)
    ),
    Aggregate(
        "sales_daily_items", "day", True, unique_bucket=False, indexes=(("purchase_date", "customer_state"),)
    ),
    Aggregate("sales_daily_category", "day", True, unique_bucket=False, indexes=(("purchase_date",),)),
)
NAMES = tuple(a.name for a in AGGREGATES)


@dataclass
class RefreshResult:
    mode: str
    ranges: list[tuple[str, str]] = field(default_factory=list)
    #: aggregate -> buckets recomputed (rows written); continuous aggregates report -1 (unknown)
    buckets: dict[str, int] = field(default_factory=dict)
    #: derived table -> rows written by its refresh statements
    derived: dict[str, int] = field(default_factory=dict)
    #: step -> seconds (each aggregate, each derived table)
    seconds: dict[str, float] = field(default_factory=dict)
    dequeued: int = 0


def is_continuous(mode: schema.TimescaleMode) -> bool:
    return mode.installed and mode.license == "timescale"


def bucket_sql(agg: Aggregate, mode: schema.TimescaleMode, timezone: str) -> sql.Composable:
    """The bucket of ``o.purchased_at``: time_bucket with TimescaleDB, date_trunc without."""
    zone = sql.Literal(timezone if agg.local_days else "UTC")
    width = sql.Literal(f"1 {agg.width}")
    if mode.installed:
        return sql.SQL("time_bucket(CAST({} AS interval), o.purchased_at, {})").format(width, zone)
    return sql.SQL("date_trunc({}, o.purchased_at, {})").format(sql.Literal(agg.width), zone)


_NO_RANGE = sql.SQL("")
_RANGE = sql.SQL("AND o.purchased_at >= %(lo)s::timestamptz AND o.purchased_at < %(hi)s::timestamptz")


def select_sql(
    agg: Aggregate, mode: schema.TimescaleMode, timezone: str, range_: sql.Composable = _NO_RANGE
) -> sql.Composable:
    return sql.SQL(agg.select_text()).format(bucket=bucket_sql(agg, mode, timezone), range=range_)


# --- set-up (etl db init) ---------------------------------------------------------------


def _relkind(cur, name: str) -> str | None:
    cur.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (name,))
    row = cur.fetchone()
    return row[0] if row else None


def _columns(cur, statement: sql.Composable) -> list[str]:
    cur.execute(sql.SQL("SELECT * FROM ({}) q LIMIT 0").format(statement))
    return [d.name for d in cur.description]


def ensure(cur: psycopg2.extensions.cursor, mode: schema.TimescaleMode, timezone: str) -> None:
    """Create the aggregates for this mode (idempotent; run by ``etl db init``).

    A new or rebuilt aggregate starts empty and queues a full refresh (all of
    time, history years old included), which the next run or ``etl db
    refresh`` performs: a continuous aggregate cannot be filled inside
    ``etl db init``'s transaction.
    """
    rebuilt = False
    for agg in AGGREGATES:
        if is_continuous(mode):
            rebuilt |= _ensure_continuous(cur, agg, mode, timezone)
        else:
            rebuilt |= _ensure_table(cur, agg, mode, timezone)
    # Derived tables new to this warehouse (an upgrade) are empty while the facts are not;
    # people unscored (kept RFM scores are new) need every person ranked once.
    cur.execute(
        "SELECT (NOT EXISTS (SELECT FROM customer_orders) AND EXISTS (SELECT FROM fact_orders))"
        " OR (NOT EXISTS (SELECT FROM rfm_boundaries) AND EXISTS (SELECT FROM customer_totals))"
    )
    if rebuilt or cur.fetchone()[0]:
        queue_everything(cur, "etl-db-init")


def _ensure_table(cur, agg: Aggregate, mode: schema.TimescaleMode, timezone: str) -> bool:
    name = sql.Identifier(agg.name)
    kind = _relkind(cur, agg.name)
    if kind == "v":  # a continuous aggregate from an earlier mode
        cur.execute(sql.SQL("DROP MATERIALIZED VIEW {} CASCADE").format(name))
        kind = None
    if kind not in (None, "r"):
        raise RuntimeError(f"{agg.name} exists but is not a table (relkind {kind}); drop it to switch modes")
    wanted = _columns(cur, select_sql(agg, mode, timezone, sql.SQL("AND FALSE")))
    if kind == "r":
        # Rebuild if the definition's columns changed, so the table never drifts from its SELECT.
        cur.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(name))
        if [d.name for d in cur.description] == wanted:
            return False
        log.warning("%s: definition changed; rebuilding it", agg.name)
        cur.execute(sql.SQL("DROP TABLE {} CASCADE").format(name))
    cur.execute(sql.SQL("CREATE TABLE {} AS {} WITH NO DATA").format(name, select_sql(agg, mode, timezone)))
    cur.execute(
        sql.SQL("CREATE {} INDEX {} ON {} (bucket)").format(
            sql.SQL("UNIQUE" if agg.unique_bucket else ""), sql.Identifier(f"{agg.name}_bucket_idx"), name
        )
    )
    for n, columns in enumerate(agg.indexes):
        cur.execute(
            sql.SQL("CREATE INDEX {} ON {} ({})").format(
                sql.Identifier(f"{agg.name}_idx{n}"), name, sql.SQL(", ").join(map(sql.Identifier, columns))
            )
        )
    return True


def _ensure_continuous(cur, agg: Aggregate, mode: schema.TimescaleMode, timezone: str) -> bool:
    """A continuous aggregate, real-time aggregation off, no policy (the pipeline refreshes it)."""
    name = sql.Identifier(agg.name)
    kind = _relkind(cur, agg.name)
    if kind == "r":  # a fallback table from an earlier mode
        cur.execute(sql.SQL("DROP TABLE {} CASCADE").format(name))
        kind = None
    if kind == "v":
        wanted = _columns(cur, select_sql(agg, mode, timezone, sql.SQL("AND FALSE")))
        cur.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(name))
        if [d.name for d in cur.description] != wanted:
            log.warning("%s: definition changed; rebuilding it", agg.name)
            cur.execute(sql.SQL("DROP MATERIALIZED VIEW {} CASCADE").format(name))
            kind = None
    created = kind is None
    if created:
        cur.execute(
            sql.SQL(
                "CREATE MATERIALIZED VIEW {} WITH (timescaledb.continuous, timescaledb.materialized_only = true) "
                "AS {} WITH NO DATA"
            ).format(name, select_sql(agg, mode, timezone))
        )
    else:
        # Warehouses set up by earlier versions: real-time on, a 30-day policy.
        cur.execute(
            sql.SQL("ALTER MATERIALIZED VIEW {} SET (timescaledb.materialized_only = true)").format(name)
        )
    cur.execute("SELECT remove_continuous_aggregate_policy(%s, if_exists => TRUE)", (agg.name,))
    return created


# --- the queue --------------------------------------------------------------------------


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


def queue_everything(cur: psycopg2.extensions.cursor, run_id: str) -> None:
    """Queue all of time (a full rebuild: a new aggregate, ``etl db refresh``)."""
    cur.execute(
        "INSERT INTO aggregate_refresh_queue (range_start, range_end, run_id) "
        "VALUES (%s::timestamptz, %s::timestamptz, %s) ON CONFLICT DO NOTHING",
        (*EVERYTHING, run_id),
    )


#: The queue's entries merged into non-overlapping ranges (as text: '-infinity' survives).
_MERGED_RANGES = """
WITH q AS (SELECT DISTINCT range_start AS lo, range_end AS hi FROM aggregate_refresh_queue
            WHERE (range_start, run_id) IN (SELECT * FROM unnest(%(starts)s::timestamptz[], %(runs)s::text[]))),
flagged AS (SELECT lo, hi, CASE WHEN lo <= max(hi) OVER (ORDER BY lo ROWS BETWEEN UNBOUNDED PRECEDING
                                                          AND 1 PRECEDING) THEN 0 ELSE 1 END AS starts FROM q),
grouped AS (SELECT lo, hi, sum(starts) OVER (ORDER BY lo) AS island FROM flagged)
SELECT min(lo)::text, max(hi)::text FROM grouped GROUP BY island ORDER BY 1
"""


# --- refresh ----------------------------------------------------------------------------


def refresh_pending(
    conn: psycopg2.extensions.connection, timezone: str, work_mem: str | None = None
) -> RefreshResult:
    """Recompute every queued range -- aggregates, then derived tables -- and dequeue it.

    Takes the connection over: autocommit for the continuous aggregates'
    refresh (outside any transaction, as TimescaleDB requires), then one
    transaction for the fallback tables, the derived tables and the dequeue.
    """
    if not conn.autocommit:
        conn.rollback()  # set_session/autocommit cannot change inside a transaction
        conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")  # ranges travel as text
        cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        return _drain(conn, timezone, work_mem)
    finally:
        if not conn.closed:
            if not conn.autocommit:
                conn.rollback()
                conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def _drain(conn: psycopg2.extensions.connection, timezone: str, work_mem: str | None) -> RefreshResult:
    mode = schema.timescale_mode(conn)
    result = RefreshResult(mode.name)
    with conn.cursor() as cur:
        cur.execute("SELECT range_start::text, run_id FROM aggregate_refresh_queue")
        entries = cur.fetchall()
        if not entries:
            return result
        keys = {"starts": [e[0] for e in entries], "runs": [e[1] for e in entries]}
        cur.execute(_MERGED_RANGES, keys)
        result.ranges = [(lo, hi) for lo, hi in cur.fetchall()]
        if is_continuous(mode):
            for agg in AGGREGATES:
                started = time.monotonic()
                for lo, hi in result.ranges:
                    cur.execute(
                        "CALL refresh_continuous_aggregate(%s, "
                        "CASE WHEN isfinite(%s::timestamptz) THEN %s::timestamptz END, "
                        "CASE WHEN isfinite(%s::timestamptz) THEN %s::timestamptz END, force => TRUE)",
                        (agg.name, lo, lo, hi, hi),
                    )
                result.buckets[agg.name] = -1
                result.seconds[agg.name] = time.monotonic() - started
    conn.autocommit = False
    with conn.cursor() as cur:
        if work_mem:
            cur.execute("SELECT set_config('work_mem', %s, true)", (work_mem,))
        # The statements probe small touched sets (a day's orders, its people) by key;
        # with the default random_page_cost (4, spinning disks) the planner reads whole
        # tables instead (customer_totals: 2.5 s instead of 0.4 s for one day at 1M items).
        cur.execute("SELECT set_config('random_page_cost', '1.1', true)")
        if result.ranges != [EVERYTHING]:
            # A day's statements are small probes, but a join over a range still gets a cost
            # above jit_above_cost: JIT compiling took 0.1-0.7 s per statement, ~2 s of a
            # day's 12 s at 1M items (auto_explain, docs/performance.md). A rebuild keeps it.
            cur.execute("SELECT set_config('jit', 'off', true)")
        if not is_continuous(mode):
            for agg in AGGREGATES:
                started = time.monotonic()
                result.buckets[agg.name] = _refresh_table(cur, agg, mode, timezone, result.ranges)
                result.seconds[agg.name] = time.monotonic() - started
        for name, (rows, seconds) in derived.refresh(cur, result.ranges, timezone).items():
            if name in derived.TABLES:
                result.derived[name] = rows
            result.seconds[name] = seconds
        cur.execute(
            "DELETE FROM aggregate_refresh_queue WHERE (range_start, run_id) IN "
            "(SELECT * FROM unnest(%(starts)s::timestamptz[], %(runs)s::text[]))",
            keys,
        )
        result.dequeued = cur.rowcount
    conn.commit()
    conn.autocommit = True
    log.info(
        "aggregates refreshed (%s) over %d range(s): %s; derived: %s",
        mode.name,
        len(result.ranges),
        result.buckets,
        result.derived,
    )
    return result


def _refresh_table(cur, agg: Aggregate, mode: schema.TimescaleMode, timezone: str, ranges) -> int:
    """DELETE + INSERT the fallback table's buckets in ``ranges``; rows written.

    All of time (a full rebuild) empties the table, builds its indexes once
    after the INSERT, as the loader does for a first load, and analyses it (the
    planner's statistics still describe the table as it was).
    """
    table = sql.Identifier(agg.name)
    if ranges == [EVERYTHING]:
        cur.execute(sql.SQL("TRUNCATE {}").format(table))
        with deferred_indexes.deferred(cur, agg.name, deferred_indexes.MIN_ROWS):
            cur.execute(sql.SQL("INSERT INTO {} {}").format(table, select_sql(agg, mode, timezone)))
            written = cur.rowcount
        cur.execute(sql.SQL("ANALYZE {}").format(table))
        return written
    written = 0
    for lo, hi in ranges:
        params = {"lo": lo, "hi": hi}
        cur.execute(
            sql.SQL(
                "DELETE FROM {} WHERE bucket >= %(lo)s::timestamptz AND bucket < %(hi)s::timestamptz"
            ).format(sql.Identifier(agg.name)),
            params,
        )
        cur.execute(
            sql.SQL("INSERT INTO {} {}").format(
                sql.Identifier(agg.name), select_sql(agg, mode, timezone, _RANGE)
            ),
            params,
        )
        written += cur.rowcount
    return written


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
        "continuous aggregates (materialized only, refreshed per touched day)"
        if is_continuous(mode)
        else "tables refreshed per touched day"
    )
    return f"{', '.join(NAMES)} as {how}; {pending} range(s) waiting for a refresh"
