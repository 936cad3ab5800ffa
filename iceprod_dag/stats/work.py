"""The work of a server dataset (run by the web server's pilots) in the stats database: claims, heartbeats, lost
attempts; and the state changes operators ask for on any dataset (suspend, resume, retry failed jobs).

A dataset's state follows its jobs: ``submitted`` until the first claim, ``running`` then, and ``done`` (or
``failed``, if a job failed) when every job has finished (``reports.SETTLE_SQL``, run by the report paths).
An attempt whose pilot stopped heartbeating for the heartbeat timeout is lost: it is recorded failed
(``lost``: its pilot died, or lost its way to the server) and its job is pending again, at the next claim or at the next
``settle_lost`` of the server's background thread, whichever comes first.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import ConfigError, StaleUpdateError, UnknownNodeError
from iceprod_dag.common.graph import topological_order
from iceprod_dag.common.states import FailureCategory, JobState
from iceprod_dag.stats import reports
from iceprod_dag.stats.db import writer
from iceprod_dag.stats.models import Attempt, Dataset, Job

#: dataset states in which pilots get no new work
NO_WORK_STATES = ("suspended", "cancelled", "done", "failed")
#: the site name of datasets run by the web server's pilots
SERVER_SITE = "server"
LOST = FailureCategory.LOST.value


def set_state(engine: Engine, pk: int, state: str) -> None:
    with writer(engine).begin() as conn:
        conn.execute(update(Dataset).where(Dataset.id == pk).values(state=state, updated_at=time.time()))


def retry_failed(engine: Engine, pk: int) -> int:
    """Make every failed job of a dataset pending again (its next attempt number follows the last)."""
    with writer(engine).begin() as conn:
        done = conn.execute(
            update(Job)
            .where(Job.dataset_pk == pk, Job.state == "failed")
            .values(state="pending", updated_at=time.time())
        )
        conn.execute(
            update(Dataset)
            .where(Dataset.id == pk, Dataset.state == "failed")
            .values(state="running", updated_at=time.time())
        )
    return int(done.rowcount or 0)


# ---------------------------------------------------------------- pilots


def _parents(config: dict[str, Any] | None) -> dict[str, list[str]]:
    tasks = (config or {}).get("tasks") or []
    return {t["name"]: list(t.get("depends") or []) for t in tasks if isinstance(t, dict) and "name" in t}


def _topo(parents: dict[str, list[str]]) -> list[str]:
    try:
        return topological_order(parents)
    except ConfigError:
        return []  # a stored config with a broken graph: claim from any task


def _apply_queued(conn: Connection) -> None:
    """Reports queued in the inbox (SQLite) go first, in this transaction: a parent's report may be there."""
    if conn.dialect.name == "sqlite":
        reports.apply_queued_first(conn.connection.driver_connection.cursor())  # type: ignore[union-attr]


def claim(engine: Engine, ds: dict[str, Any], host: str | None, timeout_s: float) -> dict[str, Any] | None:
    """Give one runnable job of the dataset to a pilot: pending, and whose parents in the same job are done.
    Attempts silent for ``timeout_s`` are settled as lost first. Returns a pilot WorkItem as a dict."""
    if ds["state"] in NO_WORK_STATES:
        return None
    parents = _parents(ds.get("config"))
    now = time.time()
    with writer(engine).begin() as conn:
        _apply_queued(conn)
        _settle_lost(conn, ds["id"], now - timeout_s, now)
        tasks: list[str | None] = list(_topo(parents)) or [None]
        for task in tasks:
            q = select(Job.id, Job.node, Job.task, Job.job_index, Job.last_attempt).where(
                Job.dataset_pk == ds["id"], Job.state == JobState.PENDING.value
            )
            if task is not None:
                q = q.where(Job.task == task)
            for job in conn.execute(q.order_by(Job.job_index, Job.id).limit(200)).all():
                if parents.get(job.task or "") and not _parents_done(
                    conn, ds["id"], parents[job.task], job.job_index
                ):
                    continue
                # the conditional update makes the claim atomic even across server processes
                taken = conn.execute(
                    update(Job)
                    .where(Job.id == job.id, Job.last_attempt == job.last_attempt)
                    .values(state=JobState.RUNNING.value, last_attempt=job.last_attempt + 1, updated_at=now)
                )
                if taken.rowcount == 1:
                    conn.execute(
                        update(Dataset)
                        .where(Dataset.id == ds["id"], Dataset.state == "submitted")
                        .values(state="running", updated_at=now)
                    )
                    return _work_item(conn, ds, job, job.last_attempt + 1, host, now)
    return None


def settle_lost(engine: Engine, timeout_s: float) -> int:
    """Settle the lost attempts of every server dataset still running; returns how many."""
    now = time.time()
    with writer(engine).begin() as conn:
        pks = conn.scalars(
            select(Dataset.id).where(Dataset.site == SERVER_SITE, Dataset.state.in_(("submitted", "running")))
        ).all()
        return sum(_settle_lost(conn, pk, now - timeout_s, now) for pk in pks)


def _settle_lost(conn: Connection, pk: int, before: float, now: float) -> int:
    """Running attempts of a dataset with no heartbeat since ``before``: failed (lost), their jobs pending."""
    lost = conn.execute(
        select(Job.id, Attempt.id.label("attempt_id"), Attempt.started_at)
        .join(Attempt, (Attempt.job_pk == Job.id) & (Attempt.attempt == Job.last_attempt))
        .where(
            Job.dataset_pk == pk,
            Job.state == JobState.RUNNING.value,
            Attempt.state == JobState.RUNNING.value,
            Attempt.updated_at < before,
        )
    ).all()
    if not lost:
        return 0
    conn.execute(
        update(Attempt).where(Attempt.id == bindparam("b_id")),
        [
            {"b_id": r.attempt_id, "state": JobState.FAILED.value, "failure": LOST, "ended_at": now,
             "wall_s": now - r.started_at if r.started_at else None, "updated_at": now}
            for r in lost
        ],
    )  # fmt: skip
    conn.execute(
        update(Job).where(Job.id == bindparam("b_id")),
        [
            {"b_id": r.id, "state": JobState.PENDING.value, "last_failure": LOST, "updated_at": now}
            for r in lost
        ],
    )
    return len(lost)


def _parents_done(conn: Any, pk: int, parent_tasks: list[str], job_index: int | None) -> bool:
    wanted = [names.node_name(t, job_index) for t in parent_tasks] if job_index is not None else []
    if not wanted:
        return True
    rows = conn.execute(select(Job.state).where(Job.dataset_pk == pk, Job.node.in_(wanted))).all()
    return len(rows) == len(wanted) and all(r.state == "done" for r in rows)


def _work_item(
    conn: Any, ds: dict[str, Any], job: Any, attempt: int, host: str | None, now: float
) -> dict[str, Any]:
    prev = conn.execute(
        select(Attempt.next_memory_mb).where(Attempt.job_pk == job.id, Attempt.attempt == attempt - 1)
    ).scalar()
    conn.execute(
        insert(Attempt).values(
            job_pk=job.id,
            dataset_pk=ds["id"],
            task=job.task,
            attempt=attempt,
            state="running",
            started_at=now,
            host=host,
            site=ds["site"],
            updated_at=now,
        )
    )
    conn.execute(
        update(Job).where(Job.id == job.id).values(attempts=Job.attempts + 1, host=host, site=ds["site"])
    )
    spec_rel = names.spec_file(job.task) if job.task else None
    spec_text = None
    if spec_rel and (Path(ds["run_dir"]) / spec_rel).is_file():
        spec_text = (Path(ds["run_dir"]) / spec_rel).read_text(encoding="utf-8")
    return {
        "id": f"{ds['id']}:{job.node}:{attempt}",
        "dataset": ds["id"],
        "node": job.node,
        "task": job.task,
        "job": job.job_index,
        "attempt": attempt,
        "spec": spec_rel,
        "spec_json": spec_text,
        "memory_mb": prev,
        "stats": names.stats_record(job.node, attempt),
        "logdir": names.attempt_log_dir(job.node, attempt),
    }


def heartbeat(engine: Engine, ds_pk: int, node: str, attempt: int) -> None:
    """A pilot is still running this attempt; StaleUpdateError if a newer attempt superseded it (or it was
    settled as lost), UnknownNodeError if the dataset has no such node."""
    now = time.time()
    with writer(engine).begin() as conn:
        job = conn.execute(
            select(Job.id, Job.last_attempt).where(Job.dataset_pk == ds_pk, Job.node == node)
        ).first()
        if job is None:
            raise UnknownNodeError(f"field 'node': dataset {ds_pk} has no node {node!r}")
        if job.last_attempt != attempt:
            raise StaleUpdateError(f"{node}: attempt {attempt} was superseded by attempt {job.last_attempt}")
        done = conn.execute(
            update(Attempt)
            .where(Attempt.job_pk == job.id, Attempt.attempt == attempt, Attempt.state == "running")
            .values(updated_at=now)
        )
        if not done.rowcount:
            raise StaleUpdateError(f"{node}: attempt {attempt} is not running")


def has_node(engine: Engine, ds_pk: int, node: str) -> bool:
    with engine.connect() as conn:
        return conn.scalar(select(Job.id).where(Job.dataset_pk == ds_pk, Job.node == node)) is not None
