"""The listing queries over the stats database: datasets with state counts, jobs pages, attempts, task stats.

Job pages are ordered newest first by ``(updated_at, id)`` and paged by keyset (the cursor is the last row's
``(updated_at, id)``), so a page costs the same at the end of a million jobs as at the start; each filter
combination is served by one of the composite indexes in ``models.py``. ``offset`` paging is offered too, for
small tables and page numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, case, desc, func, literal, select, tuple_

from iceprod_dag.stats.models import Attempt, Dataset, Job

JOB_FILTERS = ("dataset_pk", "state", "task", "site", "host", "failure")


@dataclasses.dataclass
class JobPage:
    """One page of jobs and the cursor of the next page (None on the last page)."""

    rows: list[dict[str, Any]]
    next_cursor: tuple[float, int] | None


def state_counts(conn: Connection, dataset_pks: Sequence[int]) -> dict[int, dict[str, int]]:
    """dataset id -> {job state: count} (an index-only scan of ix_jobs_dataset_state_updated)."""
    out: dict[int, dict[str, int]] = {pk: {} for pk in dataset_pks}
    if not dataset_pks:
        return out
    q = (
        select(Job.dataset_pk, Job.state, func.count())
        .where(Job.dataset_pk.in_(list(dataset_pks)))
        .group_by(Job.dataset_pk, Job.state)
    )
    for pk, state, n in conn.execute(q):
        out[pk][state] = n
    return out


def datasets(
    conn: Connection,
    *,
    state: str | None = None,
    owner: str | None = None,
    site: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Datasets, newest submitted first, each with ``counts`` of its jobs per state."""
    q = select(Dataset.__table__).order_by(desc(Dataset.submitted_at), desc(Dataset.id))
    for column, value in ((Dataset.state, state), (Dataset.owner, owner), (Dataset.site, site)):
        if value is not None:
            q = q.where(column == value)
    rows = [dict(r._mapping) for r in conn.execute(q.limit(limit).offset(offset))]
    counts = state_counts(conn, [r["id"] for r in rows])
    for row in rows:
        row["counts"] = counts[row["id"]]
    return rows


def jobs(
    conn: Connection,
    *,
    dataset_pk: int | None = None,
    state: str | None = None,
    task: str | None = None,
    site: str | None = None,
    host: str | None = None,
    failure: str | None = None,
    limit: int = 50,
    after: tuple[float, int] | None = None,
    offset: int | None = None,
) -> JobPage:
    """A page of jobs matching every given filter, newest update first.

    ``after`` is the ``next_cursor`` of the previous page; ``offset`` skips rows instead (slower far in).
    """
    q = select(Job.__table__)
    filters = {
        Job.dataset_pk: dataset_pk,
        Job.state: state,
        Job.task: task,
        Job.site: site,
        Job.host: host,
        Job.last_failure: failure,
    }
    for column, value in filters.items():
        if value is not None:
            q = q.where(column == value)
    if after is not None:
        q = q.where(tuple_(Job.updated_at, Job.id) < tuple_(literal(after[0]), literal(after[1])))
    q = q.order_by(desc(Job.updated_at), desc(Job.id)).limit(limit + 1)
    if offset:
        q = q.offset(offset)
    rows = [dict(r._mapping) for r in conn.execute(q)]
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = (rows[-1]["updated_at"], rows[-1]["id"]) if more and rows else None
    return JobPage(rows=rows, next_cursor=cursor)


def attempts(conn: Connection, job_pk: int) -> list[dict[str, Any]]:
    """Every attempt of a job, first to last."""
    q = select(Attempt.__table__).where(Attempt.job_pk == job_pk).order_by(Attempt.attempt)
    return [dict(r._mapping) for r in conn.execute(q)]


def task_stats(conn: Connection, dataset_pk: int) -> dict[str, dict[str, Any]]:
    """Per task of a dataset: attempts done/failed, wall time, CPU efficiency, memory peak vs request,
    and failures by category."""
    done = func.sum(case((Attempt.state == "done", 1), else_=0))
    failed = func.sum(case((Attempt.state == "failed", 1), else_=0))
    q = (
        select(
            Attempt.task,
            func.count().label("attempts"),
            done.label("done"),
            failed.label("failed"),
            func.avg(Attempt.wall_s).label("wall_avg_s"),
            func.max(Attempt.wall_s).label("wall_max_s"),
            func.avg(Attempt.cpu_efficiency).label("cpu_efficiency_avg"),
            func.avg(Attempt.peak_rss_mb).label("peak_rss_avg_mb"),
            func.max(Attempt.peak_rss_mb).label("peak_rss_max_mb"),
            func.avg(Attempt.request_memory_mb).label("request_memory_avg_mb"),
            func.max(Attempt.peak_disk_mb).label("peak_disk_max_mb"),
        )
        .where(Attempt.dataset_pk == dataset_pk)
        .group_by(Attempt.task)
        .order_by(Attempt.task)
    )
    out: dict[str, dict[str, Any]] = {}
    for row in conn.execute(q):
        values = dict(row._mapping)
        task = values.pop("task") or ""
        values = {
            k: (float(v) if isinstance(v, int | float) and "avg" in k else v) for k, v in values.items()
        }
        values["failures"] = {}
        out[task] = values
    q = (
        select(Attempt.task, Attempt.failure, func.count())
        .where(Attempt.dataset_pk == dataset_pk, Attempt.failure.is_not(None))
        .group_by(Attempt.task, Attempt.failure)
    )
    for task, failure, n in conn.execute(q):
        out.setdefault(task or "", {"failures": {}})["failures"][failure] = n
    return out
