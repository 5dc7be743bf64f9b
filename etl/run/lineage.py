"""Assets and lineage: which warehouse tables the DAG writes, and what each run read.

Two audiences, two mechanisms:

* **Airflow's own scheduling** needs names known when the DAG file is parsed
  (no database, no connection lookup then). ``table_assets`` are the ``load``
  task's ``outlets``: one ``Asset`` per warehouse table, *named after the table*
  (``fact_orders``), in the asset group ``warehouse``. A downstream DAG schedules on
  ``Asset.ref(name="fact_orders")`` (or ``etl.run.lineage.table_asset("fact_orders")``)
  and runs after each successful load.
* **OpenLineage** (the ``apache-airflow-providers-openlineage`` provider) wants the
  real datasets: ``postgres://host:port`` + ``database.schema.table`` for the tables,
  ``file`` + the path for the input files. Those are known only inside the task,
  so ``report`` (``report_transform`` / ``report_load``) hands them to Airflow's hook lineage
  collector, which the provider reads when the task ends. Without the provider (or
  with no ``[openlineage] transport``) the collector is a no-op: nothing is sent,
  nothing breaks.

Airflow is imported inside functions only (as in ``etl.run.airflow``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import psycopg2.extensions

from etl import staging
from etl.olist import ALL_TABLES, WAREHOUSE_TABLES
from etl.settings import Settings

log = logging.getLogger(__name__)

#: Every table the load stage merges into (the source tables and the derived dim_dates).
LOADED_TABLES: tuple[str, ...] = tuple(dict.fromkeys([s.name for s in ALL_TABLES] + list(WAREHOUSE_TABLES)))
ASSET_GROUP = "warehouse"
SCHEMA = "public"


def table_asset(table: str):
    """The Airflow Asset of a warehouse table: its name is the table's, its URI logical.

    The URI cannot carry the real host at parse time (the ``warehouse`` connection
    is not looked up then), so it names the connection id; the OpenLineage events
    carry the real server (``report_load``).
    """
    from airflow.sdk import Asset

    return Asset(name=table, uri=f"warehouse://{SCHEMA}/{table}", group=ASSET_GROUP)


def table_assets(tables: Iterable[str] = LOADED_TABLES) -> list:
    """The ``load`` task's outlets."""
    return [table_asset(t) for t in tables]


def _collector():
    from airflow.sdk.lineage import get_hook_lineage_collector

    return get_hook_lineage_collector()  # a no-op collector unless a lineage reader is installed


def _file_context(path: str):
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(f"file://{Path(path).resolve()}")


def _files(paths: Iterable[str], *, output: bool = False) -> int:
    collector = _collector()
    count = 0
    for path in dict.fromkeys(str(Path(p).resolve()) for p in paths):
        add = collector.add_output_asset if output else collector.add_input_asset
        add(_file_context(path), uri=f"file://{path}")
        count += 1
    return count


def _clean_files(settings: Settings, run_id: str) -> list[str]:
    return sorted(str(p) for p in staging.clean_dir(settings, run_id).glob("*.parquet"))


def report_transform(settings: Settings, run_id: str) -> int:
    """Inputs: the files the run read (what its ingest found new); outputs: its clean files."""
    manifest_path = staging.run_dir(settings, run_id) / "ingest.json"
    manifest = staging.read_json(manifest_path) if manifest_path.exists() else {}
    inputs = [p for paths in manifest.get("inputs", {}).values() for p in paths]
    return _files(inputs) + _files(_clean_files(settings, run_id), output=True)


def report_load(settings: Settings, run_id: str) -> int:
    """Inputs: the run's clean files; outputs: the tables it loaded, on their real server."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    metadata_path = staging.clean_dir(settings, run_id) / "_metadata.json"
    tables = (
        [t["table"] for t in staging.read_json(metadata_path)["tables"]] if metadata_path.exists() else []
    )
    params = psycopg2.extensions.parse_dsn(settings.database_url)
    host, port, database = params.get("host", "localhost"), params.get("port", "5432"), params["dbname"]
    hook = PostgresHook(postgres_conn_id="warehouse")  # the lineage context; never connects here
    collector = _collector()
    count = _files(_clean_files(settings, run_id))
    for table in tables:
        collector.add_output_asset(hook, uri=f"postgres://{host}:{port}/{database}/{SCHEMA}/{table}")
        count += 1
    return count


#: What each stage reports to OpenLineage when its task ends (stages not named: nothing).
REPORTERS: dict[str, Callable[[Settings, str], int]] = {"transform": report_transform, "load": report_load}
#: Each stage's outlets, by name: the load writes every warehouse table.
OUTLET_TABLES: dict[str, tuple[str, ...]] = {"load": LOADED_TABLES}


def outlets(stage: str) -> list:
    """The Assets a stage's task declares as outlets (parse time: names only)."""
    return table_assets(OUTLET_TABLES.get(stage, ()))


def report(stage: str, settings: Settings, run_id: str) -> int:
    """Hand a finished stage's real inputs and outputs to the hook lineage collector."""
    reporter = REPORTERS.get(stage)
    return reporter(settings, run_id) if reporter else 0
