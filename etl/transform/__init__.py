"""Transform: type, check, score and shape the source tables; never drop a row silently.

``transform_table`` cleans one table (or one chunk of it); ``etl.transform.stage``
runs every table of a run in bounded-memory chunks and writes the clean
batches, the quarantine, the findings and the scores. The rules live in
``etl.transform.checks``; docs/data_quality.md explains each of them.
"""

from etl.transform.shape import add_purchase_date_key, aggregate_geolocation, build_dim_dates, enrich_orders
from etl.transform.table import (
    FINDING_COLUMNS,
    QUARANTINE_COLUMNS,
    KeyLookup,
    TableResult,
    TableState,
    transform_table,
)

__all__ = [
    "transform_table",
    "TableResult",
    "TableState",
    "KeyLookup",
    "QUARANTINE_COLUMNS",
    "FINDING_COLUMNS",
    "build_dim_dates",
    "add_purchase_date_key",
    "aggregate_geolocation",
    "enrich_orders",
]
