"""Who may read what: the BI schema (sql/bi/), the roles (sql/roles.sql) and their logins.

Applied by ``etl db init`` after the analytics views, because the BI views read
them and the grants name them. The design (docs/warehouse.md "Roles"): one
NOLOGIN group role per part, owning or reading exactly what that part needs,
and one login per part made a member of it, its password taken from the
environment (``ETL_PIPELINE_PASSWORD``, ``ETL_DASHBOARD_PASSWORD``,
``ETL_BI_PASSWORD``). A login whose password is not set is left alone: there is
no default password to forget to change.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from etl.errors import ConfigError
from etl.settings import SQL_DIR, Settings

log = logging.getLogger(__name__)

BI_SCHEMA = "bi"
_BI_VIEW = re.compile(r"CREATE\s+OR\s+REPLACE\s+VIEW\s+bi\.([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)


@dataclass(frozen=True)
class Login:
    """A login of one part: its group role and the settings that protect the others from it."""

    env: str  # the variable that names it, for messages
    group: str
    #: Session defaults: courtesy limits (the role can reset them for itself; the
    #: guard rails that matter are privileges, sql/roles.sql).
    settings: tuple[tuple[str, str], ...] = ()
    #: Connections it may hold at once (only a role administrator can change it).
    connection_limit: int = -1


#: The pipeline's sessions act as etl_writer (SET ROLE by default), so whatever a
#: migration it runs creates (the DAG's setup task) is owned by the group, like the rest.
PIPELINE = Login("ETL_PIPELINE", "etl_writer", (("role", "etl_writer"),))
DASHBOARD = Login(
    "ETL_DASHBOARD",
    "dashboard_reader",
    (("default_transaction_read_only", "on"), ("statement_timeout", "30s")),
    connection_limit=40,
)
BI = Login(
    "ETL_BI",
    "bi_reader",
    (
        ("default_transaction_read_only", "on"),
        ("statement_timeout", "120s"),
        ("idle_in_transaction_session_timeout", "10min"),
        ("search_path", BI_SCHEMA),
    ),
    connection_limit=20,
)


def bi_files(sql_dir: Path = SQL_DIR) -> list[Path]:
    return sorted((sql_dir / "bi").glob("*.sql"))


def bi_views(sql_dir: Path = SQL_DIR) -> list[str]:
    """The documented BI relations: every view the sql/bi/ files create, in file order."""
    return [m.group(1) for p in bi_files(sql_dir) for m in _BI_VIEW.finditer(p.read_text())]


def apply(cur: psycopg2.extensions.cursor, settings: Settings, sql_dir: Path = SQL_DIR) -> None:
    """The BI views, then roles and logins (an administrator only), then the readers' grants."""
    apply_bi_views(cur, sql_dir)
    if not _is_role_admin(cur):
        # e.g. the DAG's setup task migrating as the pipeline's login: it owns (as
        # etl_writer) what it created, so it can grant that; roles stay as they are.
        log.debug("%s cannot create roles: only the readers' grants are applied", _current_user(cur))
        _apply_file(cur, sql_dir / "grants.sql", "readers' grants not applied")
        return
    if not _apply_file(cur, sql_dir / "roles.sql", "roles not set up"):
        return
    _apply_file(cur, sql_dir / "grants.sql", "readers' grants not applied")
    for login, password, part in (
        (settings.pipeline_login, settings.pipeline_password, PIPELINE),
        (settings.dashboard_login, settings.dashboard_password, DASHBOARD),
        (settings.bi_login, settings.bi_password, BI),
    ):
        if password:
            ensure_login(cur, login, password, part)
        else:
            log.info("login %s not created or changed: %s_PASSWORD is not set", login, part.env)


def _apply_file(cur: psycopg2.extensions.cursor, path: Path, failure: str) -> bool:
    """One SQL file in a savepoint; a refusal is a warning naming it (e.g. CREATEROLE without
    ownership of the database, on some managed servers), not a failed migration."""
    cur.execute("SAVEPOINT access")
    try:
        cur.execute(path.read_text())
    except psycopg2.Error as exc:
        cur.execute("ROLLBACK TO SAVEPOINT access")
        log.warning(
            "%s (%s: %s); ask an administrator to run `etl db init` (docs/warehouse.md)",
            failure,
            path.name,
            str(exc).strip().splitlines()[0],
        )
        return False
    cur.execute("RELEASE SAVEPOINT access")
    return True


def apply_bi_views(cur: psycopg2.extensions.cursor, sql_dir: Path = SQL_DIR) -> None:
    """Create or replace the views of sql/bi/ and drop any other relation of schema bi.

    ``CREATE OR REPLACE VIEW`` keeps a view's grants and comments; a view whose
    columns changed cannot be replaced, so it is dropped and created afresh (and
    re-granted by roles.sql). Dropping what the files no longer declare keeps the
    schema exactly the documented set, which is what a BI login lists.
    """
    cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (BI_SCHEMA,))
    if cur.fetchone() is None:  # (IF NOT EXISTS would still need CREATE on the database)
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(BI_SCHEMA)))
    declared = set(bi_views(sql_dir))
    cur.execute(
        """SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')""",
        (BI_SCHEMA,),
    )
    for name, kind in cur.fetchall():
        if name not in declared:
            what = {"v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE"}.get(kind, "TABLE")
            log.info("dropping %s.%s: no sql/bi/ file declares it", BI_SCHEMA, name)
            cur.execute(
                sql.SQL("DROP {} IF EXISTS {} CASCADE").format(sql.SQL(what), sql.Identifier(BI_SCHEMA, name))
            )
    for path in bi_files(sql_dir):
        text = path.read_text()
        cur.execute("SAVEPOINT bi_view")
        try:
            cur.execute(text)
        except (psycopg2.errors.InvalidTableDefinition, psycopg2.errors.DatatypeMismatch):
            # "cannot drop columns from view" / "cannot change data type of view column"
            cur.execute("ROLLBACK TO SAVEPOINT bi_view")
            for name in _BI_VIEW.findall(text):
                cur.execute(sql.SQL("DROP VIEW IF EXISTS {} CASCADE").format(sql.Identifier(BI_SCHEMA, name)))
            cur.execute(text)
        cur.execute("RELEASE SAVEPOINT bi_view")


def ensure_login(cur: psycopg2.extensions.cursor, login: str, password: str, part: Login) -> None:
    """Create or update ``login``: LOGIN, nothing more, a member of ``part.group`` only.

    The password is sent as a SCRAM verifier computed here (libpq's
    PQencryptPasswordConn), so it never reaches the server's statement log.
    Roles are cluster-wide: two inits on one server (two warehouses) may update
    the same login at once, which PostgreSQL answers with "tuple concurrently
    updated"; that is retried.
    """
    cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (login,))
    row = cur.fetchone()
    if row and row[0]:
        raise ConfigError(
            f"{part.env}_USER={login} is a superuser; give each part its own login "
            f"(the default is {login if login.startswith('etl_') else 'etl_*'})"
        )
    verifier = psycopg2.extensions.encrypt_password(password, login, cur.connection)
    ident = sql.Identifier(login)
    attrs = sql.SQL(
        "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT CONNECTION LIMIT {}"
    ).format(sql.Literal(part.connection_limit))
    for attempt in range(5):
        cur.execute("SAVEPOINT login")
        try:
            if row is None:
                try:
                    cur.execute(sql.SQL("CREATE ROLE {} {}").format(ident, attrs))
                except (psycopg2.errors.DuplicateObject, psycopg2.errors.UniqueViolation):
                    cur.execute("ROLLBACK TO SAVEPOINT login")
                    row = (False,)
                    continue
            cur.execute(sql.SQL("ALTER ROLE {} {} PASSWORD {}").format(ident, attrs, sql.Literal(verifier)))
            cur.execute(
                """SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
                    WHERE m.member = %s::regrole""",
                (login,),
            )
            for (group,) in cur.fetchall():
                if group != part.group:
                    log.warning(
                        "login %s is also a member of %s: it has more than %s grants",
                        login,
                        group,
                        part.group,
                    )
            cur.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(part.group), ident))
            for name, value in part.settings:
                cur.execute(
                    sql.SQL("ALTER ROLE {} SET {} = {}").format(
                        ident, sql.Identifier(name), sql.Literal(value)
                    )
                )
        except psycopg2.errors.InternalError_ as exc:
            if "concurrently" not in str(exc) or attempt == 4:
                raise
            cur.execute("ROLLBACK TO SAVEPOINT login")
            continue
        cur.execute("RELEASE SAVEPOINT login")
        log.info("login %s ready (member of %s)", login, part.group)
        return


def _current_user(cur: psycopg2.extensions.cursor) -> str:
    cur.execute("SELECT current_user")
    return cur.fetchone()[0]


def _is_role_admin(cur: psycopg2.extensions.cursor) -> bool:
    cur.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
    return bool(cur.fetchone()[0])
