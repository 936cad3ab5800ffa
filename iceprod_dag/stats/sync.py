"""Push a site's stats database into the central one (PostgreSQL, or any SQLite for tests).

Rows are matched by their natural keys, never by primary key (ids differ between databases): a dataset by
``(site, run_dir)``, a job by ``(dataset, node)``, an attempt and a job ClassAd by ``(job, attempt)``.
The source is walked dataset by dataset, in batches of jobs ordered by node; each batch (its jobs, their attempts
and ClassAds) is compared with what the target holds and only new or changed rows are written, with upserts
(``INSERT ... ON CONFLICT DO UPDATE``), in one transaction per batch. So:

- running sync twice changes nothing the second time (nothing differs, nothing is written);
- a sync killed at any point loses nothing: committed batches are complete, and the next run redoes the rest.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, select
from sqlalchemy.dialects import postgresql, sqlite

from iceprod_dag.common.exceptions import StatsError
from iceprod_dag.stats.db import writer
from iceprod_dag.stats.models import Base, Dataset, Job

log = logging.getLogger(__name__)

DATASETS: Table = Base.metadata.tables["datasets"]
JOBS: Table = Base.metadata.tables["jobs"]
ATTEMPTS: Table = Base.metadata.tables["attempts"]
JOB_ADS: Table = Base.metadata.tables["job_ads"]
DATASET_KEY = ("site", "run_dir")
JOB_KEY = ("dataset_pk", "node")
ATTEMPT_KEY = ("job_pk", "attempt")
CHUNK = 500  # names per IN (...) lookup in the target


@dataclasses.dataclass
class SyncResult:
    """Rows written (inserted or changed) in the target, per table."""

    datasets: int = 0
    jobs: int = 0
    attempts: int = 0
    job_ads: int = 0
    batches: int = 0

    @property
    def changed(self) -> int:
        return self.datasets + self.jobs + self.attempts + self.job_ads


def _columns(table: Table) -> list[str]:
    return [c.name for c in table.columns if c.name != "id"]


def _upsert(conn: Connection, table: Table, rows: list[dict[str, Any]], keys: Sequence[str]) -> None:
    """INSERT ... ON CONFLICT (natural key) DO UPDATE every other column, as one executemany."""
    if not rows:
        return
    name = conn.dialect.name
    if name == "postgresql":
        ins: Any = postgresql.insert(table)
    elif name == "sqlite":
        ins = sqlite.insert(table)
    else:
        raise StatsError(f"sync target must be PostgreSQL or SQLite, not {name}")
    other = [c for c in _columns(table) if c not in keys]
    conn.execute(
        ins.on_conflict_do_update(index_elements=list(keys), set_={c: ins.excluded[c] for c in other}), rows
    )


def _changed(
    source: dict[Any, dict[str, Any]], target: dict[Any, dict[str, Any]], columns: Sequence[str]
) -> list[dict[str, Any]]:
    """Source rows that the target lacks or holds with another value in some column."""
    out = []
    for key, row in source.items():
        have = target.get(key)
        if have is None or any(have[c] != row[c] for c in columns):
            out.append(row)
    return out


def _node_batches(conn: Connection, dataset_pk: int, size: int) -> Iterator[list[dict[str, Any]]]:
    """The dataset's jobs in batches ordered by node (keyset pagination)."""
    last: str | None = None
    while True:
        q = select(JOBS).where(Job.dataset_pk == dataset_pk)
        if last is not None:
            q = q.where(Job.node > last)
        rows = [dict(r._mapping) for r in conn.execute(q.order_by(Job.node).limit(size))]
        if not rows:
            return
        yield rows
        last = rows[-1]["node"]


def _children(conn: Connection, table: Table, dataset_pk: int, first: str, last: str) -> list[dict[str, Any]]:
    """Source attempts or ClassAds of a dataset's jobs whose node is in [first, last], with the node name."""
    q = (
        select(table, Job.node.label("_node"))
        .join(Job, Job.id == table.c.job_pk)
        .where(and_(Job.dataset_pk == dataset_pk, Job.node >= first, Job.node <= last))
    )
    return [dict(r._mapping) for r in conn.execute(q)]


def _target_jobs(conn: Connection, dataset_pk: int, nodes: list[str]) -> dict[str, dict[str, Any]]:
    # looked up by name, not by range: the target may order strings by another collation than the source
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(nodes), CHUNK):
        q = select(JOBS).where(Job.dataset_pk == dataset_pk, Job.node.in_(nodes[i : i + CHUNK]))
        out.update({r.node: dict(r._mapping) for r in conn.execute(q)})
    return out


def _target_children(conn: Connection, table: Table, job_node: dict[int, str]) -> dict[tuple[str, int], Any]:
    ids = list(job_node)
    out: dict[tuple[str, int], Any] = {}
    for i in range(0, len(ids), CHUNK):
        for r in conn.execute(select(table).where(table.c.job_pk.in_(ids[i : i + CHUNK]))):
            out[(job_node[r.job_pk], r.attempt)] = dict(r._mapping)
    return out


def _sync_dataset(
    src: Connection,
    dst_engine: Engine,
    row: dict[str, Any],
    batch_size: int,
    result: SyncResult,
    on_batch: Callable[[SyncResult], None] | None,
) -> None:
    cols = _columns(DATASETS)
    values = {c: row[c] for c in cols}
    with writer(dst_engine).begin() as dst:
        have = dst.execute(
            select(DATASETS).where(Dataset.site == row["site"], Dataset.run_dir == row["run_dir"])
        ).first()
        if have is None or any(getattr(have, c) != values[c] for c in cols):
            _upsert(dst, DATASETS, [values], DATASET_KEY)
            result.datasets += 1
        target_pk = dst.execute(
            select(Dataset.id).where(Dataset.site == row["site"], Dataset.run_dir == row["run_dir"])
        ).scalar_one()

    job_cols = _columns(JOBS)
    att_cols = _columns(ATTEMPTS)
    ad_cols = _columns(JOB_ADS)
    for jobs in _node_batches(src, row["id"], batch_size):
        first, last = jobs[0]["node"], jobs[-1]["node"]
        src_attempts = _children(src, ATTEMPTS, row["id"], first, last)
        src_ads = _children(src, JOB_ADS, row["id"], first, last)
        with writer(dst_engine).begin() as dst:
            nodes = [j["node"] for j in jobs]
            have_jobs = _target_jobs(dst, target_pk, nodes)
            want_jobs = {j["node"]: {**{c: j[c] for c in job_cols}, "dataset_pk": target_pk} for j in jobs}
            changed = _changed(want_jobs, have_jobs, job_cols)
            _upsert(dst, JOBS, changed, JOB_KEY)
            result.jobs += len(changed)
            if changed:
                have_jobs = _target_jobs(dst, target_pk, nodes)
            job_id = {node: j["id"] for node, j in have_jobs.items()}
            job_node = {j: node for node, j in job_id.items()}

            for table, src_rows, cols, attr in (
                (ATTEMPTS, src_attempts, att_cols, "attempts"),
                (JOB_ADS, src_ads, ad_cols, "job_ads"),
            ):
                have_rows = _target_children(dst, table, job_node)
                want = {}
                for r in src_rows:
                    values = {c: r[c] for c in cols}
                    values["job_pk"] = job_id[r["_node"]]
                    if "dataset_pk" in values:
                        values["dataset_pk"] = target_pk
                    want[(r["_node"], r["attempt"])] = values
                changed = _changed(want, have_rows, cols)
                _upsert(dst, table, changed, ATTEMPT_KEY)
                setattr(result, attr, getattr(result, attr) + len(changed))
        result.batches += 1
        log.debug("synced %s %s..%s", row["name"], first, last)
        if on_batch is not None:
            on_batch(result)


def sync(
    source: Engine,
    target: Engine,
    *,
    batch_size: int = 2000,
    on_batch: Callable[[SyncResult], None] | None = None,
) -> SyncResult:
    """Copy every dataset, job, attempt and ClassAd of ``source`` into ``target`` (schemas must be current).

    ``on_batch`` is called after each committed batch with the running totals (progress display).
    """
    result = SyncResult()
    with source.connect() as src:
        datasets = [dict(r._mapping) for r in src.execute(select(DATASETS).order_by(Dataset.id))]
        for row in datasets:
            _sync_dataset(src, target, row, batch_size, result, on_batch)
    log.info(
        "sync: %d datasets, %d jobs, %d attempts, %d ClassAds written",
        result.datasets,
        result.jobs,
        result.attempts,
        result.job_ads,
    )
    return result
