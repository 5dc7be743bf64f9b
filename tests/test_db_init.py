"""`etl db init` against the real server: idempotent, with and without TimescaleDB."""

from etl.run import setup
from etl.warehouse import connection as db
from tests.conftest import scalar

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
    """A materialized view whose SQL changed is rebuilt by the next `etl db init`."""
    import shutil

    setup.init_schema(fresh_db)
    sql_dir = tmp_path / "sql"
    shutil.copytree(setup.SQL_DIR, sql_dir)
    view_file = sql_dir / "views" / "30_products_regions.sql"
    view_file.write_text(
        view_file.read_text().replace(
            "count(*)::bigint                           AS units,",
            "count(*)::bigint                           AS units,\n       42 AS upgraded_column,",
        )
    )
    monkeypatch.setattr(setup, "SQL_DIR", sql_dir)
    setup.init_schema(fresh_db)
    assert (
        scalar(
            fresh_db,
            """SELECT count(*) FROM pg_attribute
                               WHERE attrelid = 'top_products'::regclass AND attname = 'upgraded_column'""",
        )
        == 1
    )
    # and an unchanged init leaves the rebuilt view alone
    before = scalar(fresh_db, "SELECT 'top_products'::regclass::oid")
    setup.init_schema(fresh_db)
    assert scalar(fresh_db, "SELECT 'top_products'::regclass::oid") == before
