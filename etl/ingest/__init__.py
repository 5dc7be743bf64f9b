"""Ingest: files, REST APIs and databases into the run's staging area (docs/sources.md).

The foundation's Olist-file API stays here (``read``, ``locate_all``; the
``SourceFile`` they return and ``ROW_NUMBER`` are in ``etl.olist``). For the DAG and the CLI:

* ``list_sources(settings) -> [name]``            enabled sources in sources.yml
* ``ingest_source(settings, run_id, name) -> dict`` one source for one run (small summary)
* ``prepare_run(settings, run_id, data_dir)``     Olist files + sources -> ingest.json
* ``commit_state(conn, settings, run_id)``        advance watermarks after the load committed
* ``replay(settings, source, day)``               rebuild a run from the raw archive alone
"""

from etl.ingest.olist_files import check_header, locate, locate_all, read
from etl.ingest.runner import (
    Resources,
    commit_state,
    configured_sources,
    ingest_source,
    ingest_sources,
    list_sources,
    prepare_run,
    replay,
    source_summary,
)

__all__ = [
    "Resources",
    "check_header",
    "commit_state",
    "configured_sources",
    "ingest_source",
    "ingest_sources",
    "list_sources",
    "locate",
    "locate_all",
    "prepare_run",
    "read",
    "replay",
    "source_summary",
]
