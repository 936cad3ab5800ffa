"""Read queries of the web UI over the stats database (the stats helper's tables, read-only).

Listings page with keyset cursors (``(sort value, id)`` after the last row shown), never OFFSET or COUNT(*),
so a page costs the same over a million jobs as over ten: each filter combination has an index in
``iceprod_dag.stats.models``.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, func, select

from iceprod_dag.common.states import JobState
from iceprod_dag.stats.accounts import DatasetAccess
from iceprod_dag.stats.models import Attempt, Dataset, Job, JobAd
from iceprod_dag.webui.services.accounts import Principal, can_read

JOB_FILTERS = ("dataset", "state", "task", "site", "host", "failure")
JOB_SORTS = {"updated": Job.updated_at, "node": Job.node}
_FILTER_COLUMNS = {
    "dataset": Job.dataset_pk,
    "state": Job.state,
    "task": Job.task,
    "site": Job.site,
    "host": Job.host,
    "failure": Job.last_failure,
}
#: per sort, the filter sets a jobs index (iceprod_dag.stats.models) seeks in that order, best first; a
#: reporting pilot rewrites every index holding updated_at, so there are few of those
_SEEKABLE: dict[str, tuple[tuple[str, ...], ...]] = {
    "updated": (("dataset", "state"), ("dataset",), ("failure",), ()),
    "node": (("dataset",),),  # by the unique (dataset_pk, node): node names are only unique within a dataset
}
#: rows a page checks against the filters no index serves (a few ms on SQLite)
SCAN_LIMIT = 10_000
_JOB_COLUMNS = (
    Job.id,
    Job.dataset_pk,
    Job.node,
    Job.task,
    Job.job_index,
    Job.state,
    Job.attempts,
    Job.last_attempt,
    Job.last_failure,
    Job.exit_code,
    Job.updated_at,
    Job.site,
    Job.host,
)


def _dataset_cols() -> tuple[Any, ...]:
    return (
        Dataset.id,
        Dataset.name,
        Dataset.dataset_id,
        Dataset.owner,
        Dataset.site,
        Dataset.run_dir,
        Dataset.state,
        Dataset.submitted_at,
        Dataset.updated_at,
        Dataset.description,
        Dataset.jobs,
        func.coalesce(DatasetAccess.private, False).label("private"),
        func.coalesce(DatasetAccess.priority, 0).label("priority"),
    )


def _with_access(q: Any) -> Any:
    return q.outerjoin(DatasetAccess, DatasetAccess.dataset_pk == Dataset.id)


def hidden_datasets(conn: Connection, who: Principal) -> list[int]:
    """Ids of the private datasets this principal may not read (few: only private ones are checked)."""
    rows = conn.execute(
        select(Dataset.id, Dataset.owner)
        .join(DatasetAccess, DatasetAccess.dataset_pk == Dataset.id)
        .where(DatasetAccess.private.is_(True))
    )
    return [r.id for r in rows if not can_read(who, r.owner, True, r.id)]


def list_datasets(
    conn: Connection,
    who: Principal,
    *,
    state: str | None = None,
    owner: str | None = None,
    site: str | None = None,
    name: str | None = None,
    sort: str = "submitted",
    desc: bool = True,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Datasets this principal may read, with per-state job counts."""
    sorts = {
        "submitted": Dataset.submitted_at,
        "name": Dataset.name,
        "state": Dataset.state,
        "owner": Dataset.owner,
        "site": Dataset.site,
    }
    col = sorts.get(sort, Dataset.submitted_at)
    q = _with_access(select(*_dataset_cols()))
    for value, column in ((state, Dataset.state), (owner, Dataset.owner), (site, Dataset.site)):
        if value:
            q = q.where(column == value)
    if name:
        q = q.where(Dataset.name.contains(name, autoescape=True))
    q = q.order_by(col.desc() if desc else col.asc(), Dataset.id.desc()).limit(limit)
    rows = [dict(r._mapping) for r in conn.execute(q)]
    rows = [r for r in rows if can_read(who, r["owner"], bool(r["private"]), r["id"])]
    counts = state_counts(conn, [r["id"] for r in rows])
    for r in rows:
        r["counts"] = counts.get(r["id"], {})
        r["total"] = sum(r["counts"].values())
    return rows


def get_dataset(conn: Connection, pk: int) -> dict[str, Any] | None:
    row = conn.execute(_with_access(select(*_dataset_cols(), Dataset.config)).where(Dataset.id == pk)).first()
    return dict(row._mapping) if row else None


def state_counts(conn: Connection, pks: Sequence[int]) -> dict[int, dict[str, int]]:
    """dataset id -> {job state: count}."""
    out: dict[int, dict[str, int]] = {}
    if not pks:
        return out
    q = select(Job.dataset_pk, Job.state, func.count()).where(Job.dataset_pk.in_(list(pks)))
    for pk, state, n in conn.execute(q.group_by(Job.dataset_pk, Job.state)):
        out.setdefault(pk, {})[state] = n
    return out


def task_counts(conn: Connection, pk: int) -> dict[str, dict[str, int]]:
    """task -> {job state: count} for one dataset (nodes that are not task jobs count under their node).

    Two groupings, each in the order of the (dataset_pk, task, state) index, so a million jobs stream off it
    without a sort: task jobs, then the few nodes with no task."""
    out: dict[str, dict[str, int]] = {}
    by_task = select(Job.task, Job.state, func.count()).where(Job.dataset_pk == pk, Job.task.is_not(None))
    by_node = select(Job.node, Job.state, func.count()).where(Job.dataset_pk == pk, Job.task.is_(None))
    for q in (by_task.group_by(Job.task, Job.state), by_node.group_by(Job.node, Job.state)):
        for name, state, n in conn.execute(q):
            out.setdefault(cast(str, name), {})[state] = n  # by_task leaves out NULL tasks
    return out


#: job states that no longer count against a quota
FINISHED_JOB_STATES = tuple(s.value for s in JobState if s.finished)


def unfinished_jobs(conn: Connection, owner: str) -> int:
    """Jobs not yet done, failed or cancelled in the server's datasets of an owner (their quota's use)."""
    q = (
        select(func.count())
        .select_from(Job)
        .join(Dataset, Dataset.id == Job.dataset_pk)
        .where(Dataset.owner == owner, Dataset.site == "server", Job.state.not_in(FINISHED_JOB_STATES))
    )
    return int(conn.scalar(q) or 0)


def encode_cursor(value: Any, row_id: int) -> str:
    """An opaque, URL-safe cursor: base64url of the JSON ``[sort value, id]`` of the last row shown."""
    raw = json.dumps([value, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[Any, int]:
    """The inverse of encode_cursor; ValueError (naming the field) for anything else."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value, row_id = json.loads(raw)
        if not isinstance(value, str | int | float) or not isinstance(row_id, int):
            raise ValueError
        # the database's integers are 64-bit: a bigger one would be an OverflowError (500) in the driver
        if any(isinstance(v, int) and not -(2**63) <= v < 2**63 for v in (value, row_id)):
            raise ValueError
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError
        return value, row_id
    except (ValueError, TypeError):
        raise ValueError(f"field 'after': not a cursor from a previous page: {text!r}") from None


class JobPage(NamedTuple):
    rows: list[dict[str, Any]]
    #: where the next page starts (None on the last page)
    cursor: str | None
    #: the page is short because SCAN_LIMIT rows were checked, not because the matches ran out
    partial: bool = False


def list_jobs(
    conn: Connection,
    who: Principal,
    filters: Mapping[str, Any],
    *,
    sort: str = "updated",
    desc: bool = True,
    after: str | None = None,
    limit: int = 50,
) -> JobPage:
    """One page of jobs, newest first by default.

    The filters an index serves (``_SEEKABLE``) are sought; any other filter is checked over at most
    SCAN_LIMIT jobs in the page's order, so every combination costs a bounded time over a million jobs. A page
    that scan leaves short is ``partial`` and its cursor continues the scan."""
    col = JOB_SORTS.get(sort)
    if col is None:
        raise ValueError(f"field 'sort': must be one of {', '.join(JOB_SORTS)}, got {sort!r}")
    given = {k: filters[k] for k in JOB_FILTERS if filters.get(k) not in (None, "")}
    seek = next((keys for keys in _SEEKABLE[sort] if set(keys) <= given.keys()), None)
    if seek is None:
        raise ValueError(f"field 'sort': sorting by {sort} needs a dataset filter")
    where = [_FILTER_COLUMNS[k] == given[k] for k in seek]
    if "dataset" not in given:
        hidden = hidden_datasets(conn, who)
        if hidden:
            where.append(Job.dataset_pk.not_in(hidden))
    order = (col.desc(), Job.id.desc()) if desc else (col.asc(), Job.id.asc())
    cursor = decode_cursor(after) if after else None
    # coalesce keeps the planner on the seek's index: a residual filter's own index (the partial failure one)
    # would read every match and sort them. Residual columns are all text: a dataset filter is always sought.
    residual = [func.coalesce(_FILTER_COLUMNS[k], "") == given[k] for k in given if k not in seek]
    if residual:
        return _scan_page(conn, col, where, residual, cursor, desc, limit)
    rows: list[dict[str, Any]] = []
    for part in _after_parts(col, cursor, desc):
        q = select(*_JOB_COLUMNS).where(*where, *part).order_by(*order).limit(limit + 1 - len(rows))
        rows += [dict(r._mapping) for r in conn.execute(q)]
        if len(rows) > limit:
            return JobPage(rows[:limit], encode_cursor(rows[limit - 1][col.key], rows[limit - 1]["id"]))
    return JobPage(rows, None)


def _after_parts(col: Any, after: tuple[Any, int] | None, desc: bool) -> list[list[Any]]:
    """The rows after a cursor as separate seeks, in order: its ties by id, then the values beyond it. One
    row-value comparison ``(col, id) < (v, i)`` seeks on col alone and steps over every tie before it: a
    dataset's jobs all share their submit time until they run."""
    if after is None:
        return [[]]
    value, row_id = after
    if desc:
        return [[col == value, Job.id < row_id], [col < value]]
    return [[col == value, Job.id > row_id], [col > value]]


def _scan_page(
    conn: Connection, col: Any, where: list[Any], residual: list[Any], after: tuple[Any, int] | None,
    desc: bool, limit: int,
) -> JobPage:  # fmt: skip
    """A page of the jobs matching ``residual`` among the next SCAN_LIMIT the index seek gives: the window's
    edge comes from the index alone, then bounded seeks up to it check the filters row by row."""
    order = (col.desc(), Job.id.desc()) if desc else (col.asc(), Job.id.asc())
    edge = _window_edge(conn, col, where, after, desc, order)
    rows: list[dict[str, Any]] = []
    for part in _between(col, after, edge, desc):
        q = (
            select(*_JOB_COLUMNS)
            .where(*where, *residual, *part)
            .order_by(*order)
            .limit(limit + 1 - len(rows))
        )
        rows += [dict(r._mapping) for r in conn.execute(q)]
        if len(rows) > limit:
            return JobPage(rows[:limit], encode_cursor(rows[limit - 1][col.key], rows[limit - 1]["id"]))
    if edge is not None:  # short because the window ended: the next page scans on from its edge
        return JobPage(rows, encode_cursor(*edge), partial=True)
    return JobPage(rows, None)


def _window_edge(
    conn: Connection, col: Any, where: list[Any], after: tuple[Any, int] | None, desc: bool, order: Any
) -> tuple[Any, int] | None:
    """(sort value, id) of the SCAN_LIMIT-th job after the cursor, None when fewer remain."""
    remaining = SCAN_LIMIT
    for part in _after_parts(col, after, desc):
        seek = select(col, Job.id).where(*where, *part).order_by(*order)
        edge = conn.execute(seek.offset(remaining - 1).limit(1)).first()
        if edge is not None:
            return edge[0], edge[1]
        remaining -= conn.execute(
            select(func.count()).select_from(seek.limit(remaining).subquery())
        ).scalar_one()
    return None


def _between(
    col: Any, after: tuple[Any, int] | None, edge: tuple[Any, int] | None, desc: bool
) -> list[list[Any]]:
    """The rows after the cursor up to and including the edge, in order, as seeks that never step over ties."""
    parts = _after_parts(col, after, desc)
    if edge is None:
        return parts
    value, row_id = edge
    up_to_edge = Job.id >= row_id if desc else Job.id <= row_id
    if after is not None and after[0] == value:  # cursor and edge in one tie group
        return [[*parts[0], up_to_edge]]
    beyond = [*parts[-1], col > value if desc else col < value]
    return [*parts[:-1], beyond, [col == value, up_to_edge]]


def get_job(conn: Connection, pk: int) -> dict[str, Any] | None:
    row = conn.execute(select(Job.__table__).where(Job.id == pk)).first()
    return dict(row._mapping) if row else None


def attempts_of(conn: Connection, job_pk: int) -> list[dict[str, Any]]:
    q = select(Attempt.__table__).where(Attempt.job_pk == job_pk).order_by(Attempt.attempt)
    return [dict(r._mapping) for r in conn.execute(q)]


def get_attempt(conn: Connection, job_pk: int, attempt: int) -> dict[str, Any] | None:
    q = select(Attempt.__table__).where(Attempt.job_pk == job_pk, Attempt.attempt == attempt)
    row = conn.execute(q).first()
    return dict(row._mapping) if row else None


def ads_of(conn: Connection, job_pk: int) -> list[dict[str, Any]]:
    q = select(JobAd.attempt, JobAd.cluster_id, JobAd.proc_id, JobAd.attributes, JobAd.ad_text)
    return [dict(r._mapping) for r in conn.execute(q.where(JobAd.job_pk == job_pk).order_by(JobAd.attempt))]


# ---------------------------------------------------------------- plots and monitoring


def histogram(values: Sequence[float], bins: int = 20) -> dict[str, list[Any]]:
    """Equal-width bins: labels (bin starts) and counts; one bin when every value is the same."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return {"labels": [], "counts": []}
    lo, hi = min(values), max(values)
    if hi == lo:
        return {"labels": [round(lo, 3)], "counts": [len(values)]}
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    return {"labels": [round(lo + i * width, 3) for i in range(bins)], "counts": counts}


def task_plots(conn: Connection, pk: int, sample: int = 2000) -> dict[str, dict[str, Any]]:
    """Per task: memory peak vs request (scatter), wall time and CPU efficiency histograms, failures."""
    plots: dict[str, dict[str, Any]] = {}
    tasks = [t for (t,) in conn.execute(select(Job.task).where(Job.dataset_pk == pk).distinct()) if t]
    for task in sorted(tasks):
        q = (
            select(Attempt.peak_rss_mb, Attempt.request_memory_mb, Attempt.wall_s, Attempt.cpu_efficiency)
            .where(Attempt.dataset_pk == pk, Attempt.task == task, Attempt.ended_at.is_not(None))
            .order_by(Attempt.id.desc())
            .limit(sample)
        )
        rows = conn.execute(q).all()
        failures = conn.execute(
            select(Attempt.failure, func.count())
            .where(Attempt.dataset_pk == pk, Attempt.task == task, Attempt.failure.is_not(None))
            .group_by(Attempt.failure)
        ).all()
        plots[task] = {
            "memory": [
                {"x": r.request_memory_mb, "y": r.peak_rss_mb}
                for r in rows
                if r.peak_rss_mb is not None and r.request_memory_mb is not None
            ],
            "wall": histogram([r.wall_s for r in rows if r.wall_s is not None]),
            "cpu": histogram([r.cpu_efficiency for r in rows if r.cpu_efficiency is not None]),
            "failures": {f: n for f, n in failures},
        }
    return plots


def hourly(conn: Connection, hours: int = 48, now: float | None = None) -> dict[str, list[Any]]:
    """Attempts finished (done) and failed per hour over the last hours."""
    now = now or time.time()
    start = math.floor(now / 3600 - hours + 1) * 3600
    bucket = func.floor(Attempt.ended_at / 3600)
    q = (
        select(bucket.label("h"), Attempt.state, func.count())
        .where(Attempt.ended_at >= start, Attempt.state.in_(("done", "failed")))
        .group_by(bucket, Attempt.state)
    )
    labels = [time.strftime("%m-%d %H:00", time.gmtime(start + i * 3600)) for i in range(hours)]
    done, failed = [0] * hours, [0] * hours
    for h, state, n in conn.execute(q):
        i = int(h) - int(start // 3600)
        if 0 <= i < hours:
            (done if state == "done" else failed)[i] += n
    return {"labels": labels, "done": done, "failed": failed}


def running_per_site(conn: Connection) -> dict[str, int]:
    """Running jobs per site, one (dataset_pk, state) index seek per dataset still active: there is no
    index on state alone, and a planner that sees few datasets would scan the whole table."""
    active = select(Dataset.id).where(Dataset.state.not_in(("done", "failed", "cancelled")))
    out: dict[str, int] = {}
    for pk in conn.execute(active).scalars():
        q = (
            select(Job.site, func.count())
            .where(Job.dataset_pk == pk, Job.state == "running")
            .group_by(Job.site)
        )
        for site, n in conn.execute(q):
            out[site or "?"] = out.get(site or "?", 0) + n
    return out


def totals(conn: Connection) -> dict[str, dict[str, int]]:
    """Jobs by state and datasets by state (for /metrics)."""
    # grouped by (dataset, state), the order of the (dataset_pk, state, ...) index: one pass, no sort
    jobs: dict[str, int] = {}
    for state, n in conn.execute(select(Job.state, func.count()).group_by(Job.dataset_pk, Job.state)):
        jobs[state] = jobs.get(state, 0) + n
    sets = {s: n for s, n in conn.execute(select(Dataset.state, func.count()).group_by(Dataset.state))}
    return {"jobs": jobs, "datasets": sets}
