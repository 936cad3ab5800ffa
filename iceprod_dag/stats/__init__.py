"""The stats database: every dataset run, job (DAG node), attempt and job ClassAd, on SQLite or PostgreSQL.

- ``models``: the tables (SQLAlchemy 2); ``migrations``: their Alembic history (``init_db`` runs it).
- ``db``: where the database is (``--db`` > ``$ICEPROD_DAG_DB`` > ``$ICEPROD_DAG_HOME/stats.sqlite``).
- ``ingest``: writes as jobs start and finish, idempotent, stale updates rejected.
- ``records`` / ``classads``: the stats record and the ``condor_history -long`` formats.
- ``reports``: the web server's pilot reports (ingest's rules in plain SQL on SQLite); ``inbox``: single
  reports queued and drained into the stats tables in batches.
- ``accounts``: the tables of users, API tokens and dataset visibility.
- ``importer``: ``import-stats FOLDER``; ``sync``: site database -> central database.
"""

from __future__ import annotations

from iceprod_dag.stats.db import init_db, make_engine, resolve_url
from iceprod_dag.stats.ingest import (
    IngestResult,
    ingest_job_ads,
    ingest_records,
    record_attempt_started,
    record_attempts_started,
    register_dataset,
    set_dataset_state,
    set_node_states,
)

__all__ = [
    "IngestResult",
    "init_db",
    "ingest_job_ads",
    "ingest_records",
    "make_engine",
    "record_attempt_started",
    "record_attempts_started",
    "register_dataset",
    "resolve_url",
    "set_dataset_state",
    "set_node_states",
]
