"""Operational databases as sources: batches that stream, incremental by a cursor column.

* PostgreSQL and SQLite through SQLAlchemy with ``stream_results`` (a server-side
  cursor on PostgreSQL) fetched ``batch_size`` rows at a time;
* MySQL / MariaDB through PyMySQL's unbuffered ``SSCursor`` (rows stream from
  the server instead of being loaded into memory by the driver);
* MongoDB through PyMongo (tests use ``mongomock``: no MongoDB server exists
  on the build machines).

Every batch is normalised to JSON-safe values first (so the archive holds
exactly what the mapping reads, and a replay maps the same strings), then
archived, then mapped onto the Olist source columns of one warehouse table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit

from etl.errors import ConfigError, SourceError
from etl.ingest.records import LINEAGE_COLUMNS, TABLE_COLUMNS, local_timestamp, vendor_id
from etl.ingest.state import Watermark
from etl.warehouse.redact import scrub, without_userinfo

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def identifier(name: str, what: str) -> str:
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ConfigError(f"{what} {name!r} is not a plain identifier (letters, digits, _)")
    return name


# --- values ---------------------------------------------------------------------------


def normalise(value: Any) -> Any:
    """A driver value as a JSON-safe value: datetimes ISO, decimals as text."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # ObjectId and friends


def cursor_text(value: Any) -> str:
    """A normalised cursor value as a string that sorts like the value."""
    if isinstance(value, bool):
        raise ConfigError("a boolean column cannot be an incremental cursor")
    if isinstance(value, int):
        return f"{value:020d}"
    return str(value)


def cursor_value(text: str) -> Any:
    """Back from ``cursor_text`` to a value the database compares with its column."""
    if re.fullmatch(r"\d{20}", text):
        return int(text)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return text


@dataclass
class TableMapping:
    """How a source's rows become rows of one warehouse table (sources.yml)."""

    source: str
    table: str
    columns: dict[str, str]  # Olist source column -> source field
    hash_ids: list[str] = field(default_factory=list)
    id_field: str | None = None
    currency: str | None = None
    id_namespace: str = ""  # sources sharing ids share a namespace

    @classmethod
    def from_options(cls, source: str, options: dict) -> TableMapping:
        table = options.get("table")
        if table not in TABLE_COLUMNS:
            raise ConfigError(f"source {source}: 'table' must be one of {', '.join(TABLE_COLUMNS)}")
        wanted = [c for c in TABLE_COLUMNS[table] if c not in LINEAGE_COLUMNS]
        columns = dict(options.get("columns") or {c: c for c in wanted})
        unknown = set(columns) - set(TABLE_COLUMNS[table])
        if unknown:
            raise ConfigError(
                f"source {source}: columns {', '.join(sorted(unknown))} are not "
                f"source columns of {table} ({', '.join(wanted)})"
            )
        return cls(
            source,
            table,
            columns,
            list(options.get("hash_ids") or []),
            options.get("id_field") or next(iter(columns.values()), None),
            options.get("currency"),
            options.get("id_namespace") or source,
        )

    def row(self, record: dict, tz: str) -> dict:
        out: dict[str, Any] = {}
        for target, field_name in self.columns.items():
            value = record.get(field_name)
            if value is not None and target in self.hash_ids:
                value = vendor_id(self.id_namespace, _entity(target), value)
            elif isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?", value):
                value = value[:19].replace("T", " ")  # naive: already local wall clock
            elif isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT.*[+-]\d\d:\d\d", value):
                value = local_timestamp(value, tz)
            out[target] = value
        out.setdefault("source_system", self.source)
        if self.id_field:
            out.setdefault("source_id", record.get(self.id_field))
        out.setdefault("currency", self.currency)
        return out


def _entity(column: str) -> str:
    """customer_id / customer_unique_id -> customer, order_id -> order (the md5 namespace)."""
    return column.removesuffix("_unique_id").removesuffix("_id")


# --- readers: each yields lists of normalised dicts -------------------------------------

Batches = Iterator[list[dict]]


def check_url(url: Any) -> str:
    """The source's URL, or a ConfigError naming what is wrong in it (never its password).

    Checked before any driver sees it: a port that is not a number is a
    ``ValueError`` deep in urllib, SQLAlchemy or PyMongo, which would otherwise
    escape as a traceback and stop every source instead of this one.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("the source has no url; set one in sources.yml (e.g. url: {env: NAME})")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(
            f"the source url {without_userinfo(url)} is not valid ({scrub(str(exc), url)}); "
            "fix it in sources.yml or its environment variable"
        ) from None
    if not parts.scheme or "://" not in url:
        raise ConfigError(
            f"the source url {without_userinfo(url)} has no scheme (postgresql://, mysql://, "
            "sqlite:///, mongodb://)"
        )
    if port == 0:
        raise ConfigError(f"the source url {without_userinfo(url)} has port 0")
    return url


def _where(cursor: str | None, since: Watermark | None) -> bool:
    return bool(cursor and since)


def sqlalchemy_batches(
    url: str,
    *,
    relation: str | None,
    query: str | None,
    cursor: str | None,
    since: Watermark | None,
    batch_size: int,
) -> Batches:
    """PostgreSQL / SQLite (any SQLAlchemy URL), streamed with a server-side cursor."""
    import sqlalchemy as sa

    check_url(url)
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
        raise ConfigError(
            f"database URL {without_userinfo(url)} is not usable by SQLAlchemy ({scrub(str(exc), url)})"
        ) from None
    if relation:
        parts = relation.split(".")
        base = sa.table(parts[-1], schema=parts[0] if len(parts) == 2 else None)
        stmt = sa.select(sa.text("*")).select_from(base)
    else:
        stmt = sa.select(sa.text("*")).select_from(sa.text(query).columns().subquery("q"))
    params: dict = {}
    if cursor:
        col = sa.column(cursor)
        if _where(cursor, since):
            stmt = stmt.where(col >= sa.bindparam("wm"))
            params["wm"] = cursor_value(since.cursor_value)
        stmt = stmt.order_by(col)
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(stmt, params)
            keys = list(result.keys())
            for chunk in result.partitions(batch_size):
                yield [{k: normalise(v) for k, v in zip(keys, row)} for row in chunk]
    except sa.exc.SQLAlchemyError as exc:
        reason = scrub(" ".join(str(getattr(exc, "orig", None) or exc).split())[:300], url)
        raise SourceError(f"database read from {without_userinfo(url)} failed: {reason}") from None
    finally:
        engine.dispose()


def mysql_batches(
    url: str,
    *,
    relation: str | None,
    query: str | None,
    cursor: str | None,
    since: Watermark | None,
    batch_size: int,
) -> Batches:
    """MySQL / MariaDB via PyMySQL's unbuffered cursor (constant memory on the client)."""
    import pymysql
    import pymysql.cursors

    parts = urlsplit(check_url(url))
    quote = lambda name: ".".join(f"`{p}`" for p in name.split("."))  # noqa: E731 (validated idents)
    base = quote(relation) if relation else f"({query}) AS q"
    sql, params = f"SELECT * FROM {base}", []
    if cursor:
        if _where(cursor, since):
            sql += f" WHERE {quote(cursor)} >= %s"
            params.append(cursor_value(since.cursor_value))
        sql += f" ORDER BY {quote(cursor)}"
    try:
        conn = pymysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=parts.path.lstrip("/") or None,
            charset="utf8mb4",
            cursorclass=pymysql.cursors.SSCursor,
            connect_timeout=10,
        )
    except pymysql.MySQLError as exc:
        raise SourceError(
            f"cannot connect to MySQL at {parts.hostname}:{parts.port or 3306} ({scrub(str(exc), url)})"
        ) from None
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            keys = [d[0] for d in cur.description]
            while True:
                rows = cur.fetchmany(batch_size)
                if not rows:
                    break
                yield [{k: normalise(v) for k, v in zip(keys, row)} for row in rows]
    except pymysql.MySQLError as exc:
        raise SourceError(f"MySQL read failed ({scrub(str(exc), url)})") from None
    finally:
        conn.close()


def mongo_batches(
    url: str,
    *,
    collection: str,
    database: str | None,
    filter_: dict | None,
    cursor: str | None,
    since: Watermark | None,
    batch_size: int,
    client_factory: Callable[..., Any] | None = None,
) -> Batches:
    """A MongoDB collection in ``batch_size`` documents, incremental on a field."""
    if client_factory is None:
        from pymongo import MongoClient as client_factory  # noqa: N813
    from pymongo.errors import PyMongoError

    check_url(url)
    try:
        client = client_factory(url)
    except (PyMongoError, ValueError) as exc:
        raise ConfigError(
            f"the MongoDB url {without_userinfo(url)} is not usable ({scrub(str(exc), url)})"
        ) from None
    try:
        yield from _mongo_read(client, collection, database, filter_, cursor, since, batch_size)
    except PyMongoError as exc:
        raise SourceError(f"MongoDB read of {collection} failed ({scrub(str(exc), url)})") from None
    finally:
        client.close()


def _mongo_read(client, collection, database, filter_, cursor, since, batch_size) -> Batches:
    db = client[database] if database else client.get_default_database()
    query = dict(filter_ or {})
    if _where(cursor, since):
        query[cursor] = {"$gte": cursor_value(since.cursor_value)}
    found = db[collection].find(query, batch_size=batch_size)
    if cursor:
        found = found.sort(cursor, 1)
    batch: list[dict] = []
    for document in found:
        batch.append({k: normalise(v) for k, v in document.items()})
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
