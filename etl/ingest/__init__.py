"""Ingest: files, REST APIs and databases into the run's staging area (docs/sources.md).

Sources only — no run assembly here (that is ``etl.run``):

* ``runner.sources_for_run(settings) -> [dict]``        the Olist folder + enabled sources of sources.yml
* ``runner.ingest_one(settings, run_id, source) -> dict`` one source for one run (small summary)
* ``manifest.assemble(settings, run_id, sources)``      the run's ingest.json for the transform stage
* ``runner.commit_state(conn, settings, run_id)``       advance watermarks after the load committed
* ``runner.replay_inputs(settings, source, day, ...)``  a source's archived day, rebuilt without the source
"""

from etl.ingest.olist_files import check_header, locate, locate_all, read

__all__ = ["check_header", "locate", "locate_all", "read"]
