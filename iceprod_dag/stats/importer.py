"""Load a run folder's stats records and job ClassAds into a stats database (``iceprod-dag import-stats``).

The folder is a run folder as ``names.py`` describes it (``stats/<node>.<attempt>.json``,
``history/<node>.<attempt>.ad``, ``dataset.json``), for example one written by ``run-offline``. Importing is
idempotent: records already in the database with the same content are skipped, so a second import of the same
folder writes nothing at all.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import RunNotFoundError, StatsError
from iceprod_dag.stats.classads import read_ads
from iceprod_dag.stats.ingest import (
    IngestResult,
    ingest_job_ads,
    ingest_records,
    load_record,
    register_dataset,
)
from iceprod_dag.stats.models import Dataset

log = logging.getLogger(__name__)

DEFAULT_SITE = "offline"


@dataclasses.dataclass
class ImportResult:
    """What an import did: stats records and ClassAds."""

    records: IngestResult
    ads: IngestResult
    site: str
    run_dir: Path


def _attempt_of(path: Path, suffix: str) -> tuple[str, int]:
    """(node, attempt) from a name like ``generate_3.1.json``; the error names the file."""
    node, _, attempt = path.name[: -len(suffix)].rpartition(".")
    if not node or not attempt.isdigit():
        raise StatsError(f"{path}: expected a file name <node>.<attempt>{suffix}")
    return node, int(attempt)


def dataset_meta(folder: Path, owner: str | None = None) -> dict[str, Any] | None:
    """What ``register_dataset`` records about a run folder from its ``dataset.json`` (None when it has none:
    a hand-written DAG): name, id, owner (the dataset's, else ``owner``), description, jobs, and the config the
    web UI draws the task graph from."""
    path = folder / names.DATASET_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StatsError(f"{path}: cannot read the dataset: {exc}") from exc
    return {
        "name": data.get("name") or folder.name,
        "dataset_id": data.get("dataset_id"),
        "owner": data.get("owner") or owner,
        "description": data.get("description") or "",
        "jobs": data.get("jobs"),
        "config": data,
    }


def import_folder(engine: Engine, folder: str | Path, site: str | None = None) -> ImportResult:
    """Import every stats record and job ClassAd of a run folder; stale ones are listed, not applied."""
    run_dir = Path(folder).resolve()
    if not run_dir.is_dir():
        raise RunNotFoundError(f"{folder}: no such folder")
    stats_dir = run_dir / names.STATS_DIR
    record_files = sorted(stats_dir.glob("*.json")) if stats_dir.is_dir() else []
    history_dir = run_dir / names.HISTORY_DIR
    ad_files = sorted(history_dir.glob("*.ad")) if history_dir.is_dir() else []
    if not record_files and not ad_files:
        raise RunNotFoundError(
            f"{run_dir}: no {names.STATS_DIR}/*.json or {names.HISTORY_DIR}/*.ad to import"
        )

    records = []
    for path in record_files:
        record = load_record(path)
        if (record["node"], record["attempt"]) != _attempt_of(path, ".json"):
            raise StatsError(f"{path}: holds node {record['node']!r} attempt {record['attempt']}")
        records.append(record)
    site = site or next((str(r["site"]) for r in records if r.get("site")), DEFAULT_SITE)

    meta = dataset_meta(run_dir)
    with engine.connect() as conn:
        known = conn.scalar(select(Dataset.id).where(Dataset.site == site, Dataset.run_dir == str(run_dir)))
    if known is None and (meta or not records):
        # first import: describe the dataset once (a later import must not touch it)
        meta = meta or {"name": run_dir.name}
        register_dataset(engine, run_dir=run_dir, site=site, state="done", **meta)

    rec_result = ingest_records(engine, records, run_dir=run_dir, site=site, on_stale="skip")
    ads = []
    for path in ad_files:
        node, attempt = _attempt_of(path, ".ad")
        found = read_ads(path)
        if len(found) != 1:
            raise StatsError(f"{path}: expected one job ClassAd, found {len(found)}")
        ads.append((node, attempt, path.read_text(encoding="utf-8")))
    ad_result = ingest_job_ads(engine, ads, run_dir=run_dir, site=site, on_stale="skip")
    log.info(
        "%s: %d records imported, %d already there; %d ClassAds imported, %d already there",
        run_dir,
        rec_result.inserted + rec_result.updated,
        rec_result.unchanged,
        ad_result.inserted,
        ad_result.unchanged,
    )
    return ImportResult(records=rec_result, ads=ad_result, site=site, run_dir=run_dir)
