"""Warehouse ETL: e-commerce data into a PostgreSQL/TimescaleDB star schema.

Stages live in their own modules (ingest, transform, load, audit, ...); the
``pipeline`` module wires them, and both the CLI (``etl``) and the Airflow DAG
call the same functions.
"""

__version__ = "0.1.0"
