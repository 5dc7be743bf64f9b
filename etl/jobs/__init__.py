"""Jobs: a file uploaded by a person, checked, stored in a file drop, loaded by a worker (or Airflow).

``checks`` accepts or refuses an upload (size, type, header, zip bombs, path
traversal) before anything is stored; ``drop`` keeps accepted files with their
checksums; ``queue`` is the ``jobs`` table (taken with FOR UPDATE SKIP LOCKED);
``etl.run.jobs`` runs queued jobs through the pipeline (``etl jobs worker``).
"""
