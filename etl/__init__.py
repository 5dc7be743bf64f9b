"""Warehouse ETL: e-commerce data into a PostgreSQL/TimescaleDB star schema.

One package per stage (``ingest``, ``transform``, ``load``, ``publish``), the
warehouse beneath them (``warehouse``), the run above them (``run``: the stages
declared once, for the CLI ``etl`` and the Airflow DAG alike). See
docs/architecture.md.
"""

__version__ = "0.1.0"
