"""`etl db init` against the real server: idempotent, with and without TimescaleDB."""

from etl.run import setup
from etl.warehouse import connection as db
from tests.conftest import query, scalar

SEED_TABLES = {
    "dim_customers",
    "dim_products",
    "dim_sellers",
    "dim_dates",
    "fact_orders",
    "fact_order_items",
    "fact_payments",
    "fact_reviews",
    "ingest_audit",
    "quarantine",
}


def tables(settings) -> set[str]:
    conn = db.connect(settings.database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            return {r[0] for r in cur.fetchall()}
    finally:
        conn.close()


def test_init_creates_the_database_and_is_idempotent(fresh_db):
    first = setup.init_schema(fresh_db)
    second = setup.init_schema(fresh_db)
    assert first == second
    assert SEED_TABLES <= tables(fresh_db)


def test_plain_postgresql_without_the_extension(fresh_db):
    mode = setup.init_schema(fresh_db, use_timescaledb=False)
    assert mode.name == "postgresql" and not mode.installed
    assert SEED_TABLES <= tables(fresh_db)
    assert scalar(fresh_db, "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'") == 0


def test_changed_view_definitions_reach_an_existing_warehouse(fresh_db, tmp_path, monkeypatch):
    """A view whose SQL changed (new columns) is rebuilt by the next `etl db init`."""
    import shutil

    setup.init_schema(fresh_db)
    sql_dir = tmp_path / "sql"
    shutil.copytree(setup.SQL_DIR, sql_dir)
    view_file = sql_dir / "views" / "30_products_regions.sql"
    view_file.write_text(
        view_file.read_text().replace(
            "max(r.customers)::bigint                                             AS customers",
            "max(r.customers)::bigint                                             AS customers,\n"
            "       42 AS upgraded_column",
        )
    )
    monkeypatch.setattr(setup, "SQL_DIR", sql_dir)
    setup.init_schema(fresh_db)
    assert (
        scalar(
            fresh_db,
            """SELECT count(*) FROM pg_attribute
                               WHERE attrelid = 'region_wise_performance'::regclass AND attname = 'upgraded_column'""",
        )
        == 1
    )
    # and an unchanged init leaves the rebuilt view alone
    before = scalar(fresh_db, "SELECT 'region_wise_performance'::regclass::oid")
    setup.init_schema(fresh_db)
    assert scalar(fresh_db, "SELECT 'region_wise_performance'::regclass::oid") == before


def test_a_login_named_after_a_superuser_is_refused(fresh_db):
    """ETL_BI_USER=postgres would make BI a superuser: init says so instead."""
    import pytest

    from etl.errors import ConfigError

    with pytest.raises(ConfigError, match="ETL_BI_USER=postgres is a superuser"):
        setup.init_schema(fresh_db.with_overrides(bi_login="postgres", bi_password="x"))
    assert scalar(fresh_db, "SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'") is True


def test_the_bi_schema_holds_exactly_the_files_views(fresh_db):
    """A relation left in schema bi by an older version is dropped by the next init."""
    from etl.warehouse import access

    setup.init_schema(fresh_db)
    conn = db.connect(fresh_db.database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("CREATE VIEW bi.retired_view AS SELECT 1 AS x")
    finally:
        conn.close()
    setup.init_schema(fresh_db)
    views = {
        r[0]
        for r in query(fresh_db, "SELECT table_name FROM information_schema.views WHERE table_schema = 'bi'")
    }
    assert views == set(access.bi_views()) and len(views) == 12


def test_a_migration_by_the_pipelines_login_keeps_ownership_and_grants(fresh_db):
    """The DAG's setup task migrates as etl_pipeline: what it recreates stays etl_writer's and granted."""
    from tests.conftest import as_login

    admin = fresh_db.with_overrides(pipeline_password="pw-migrate")
    setup.init_schema(admin)
    conn = db.connect(admin.database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("DROP VIEW bi.top_products")
    finally:
        conn.close()
    setup.init_schema(as_login(admin, admin.pipeline_login, admin.pipeline_password))
    assert query(
        admin,
        """SELECT pg_get_userbyid(c.relowner), has_table_privilege('bi_reader', c.oid, 'SELECT')
             FROM pg_class c WHERE c.oid = 'bi.top_products'::regclass""",
    ) == [("etl_writer", True)]
