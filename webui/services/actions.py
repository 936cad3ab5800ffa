"""What the UI and API change: submit a dataset, suspend/resume/retry it, and hand work to pilots.

Stats rows are written through ``iceprod_dag.stats.ingest`` (so stale updates are refused in one place);
the few state changes ingest has no call for are single Core updates here.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import IceprodDagError, StaleUpdateError
from iceprod_dag.dataset.limits import InputLimits
from iceprod_dag.stats import ingest
from iceprod_dag.stats.db import writer
from iceprod_dag.stats.models import Attempt, Dataset, Job
from iceprod_dag.webui.services.accounts import Principal, owner_for, set_private

log = logging.getLogger(__name__)

PRODUCTION_PRIORITY = 10
#: dataset states in which pilots get no new work
NO_WORK_STATES = ("suspended", "cancelled", "done", "failed")


def submit(
    engine: Engine,
    who: Principal,
    data: Any,
    runs_dir: Path,
    private: bool = False,
    source: str = "<submitted dataset>",
    lines: Any = None,
    limits: InputLimits | None = None,
) -> int:
    """Validate a dataset (ConfigError names every bad field), compile it into a new run folder under
    ``runs_dir`` and record it with all its jobs pending; returns the dataset's id."""
    from iceprod_dag.compile.compiler import compile_dataset
    from iceprod_dag.dataset.loader import dataset_to_json, load_dataset_dict

    dataset = load_dataset_dict(data, source, lines, limits)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset.name)[:80] or "dataset"
    run_dir = (
        runs_dir / f"{slug}-{dataset.dataset_id}-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**6}"
    )
    run_dir.mkdir(parents=True)
    compile_dataset(dataset, run_dir, with_pilot=False)

    nodes = [
        (names.node_name(t.name, j), t.name, j)
        for t in dataset.topological_tasks()
        for j in range(dataset.jobs)
    ]
    pk = ingest.register_dataset(
        engine,
        run_dir=run_dir,
        site="server",
        name=dataset.name,
        dataset_id=dataset.dataset_id,
        owner=owner_for(who),
        description=dataset.description,
        jobs=dataset.jobs,
        config=json.loads(dataset_to_json(dataset)),
        state="submitted",
        nodes=nodes,
    )
    set_private(engine, pk, private, PRODUCTION_PRIORITY if who.role == "production" else 0)
    log.info("user %s submitted dataset %s (%d nodes) as %s", who.name, dataset.name, len(nodes), run_dir)
    return pk


#: the dataset actions of the UI and API -> the state a suspend or resume records
ACTION_STATES = {"suspend": "suspended", "resume": "running"}


def site_run(ds: dict[str, Any]) -> Path | None:
    """The run folder of a dataset a site runs (submitted with ``iceprod-dag submit``), if it is here."""
    if ds.get("site") in (None, "server") or not ds.get("run_dir"):
        return None
    run_dir = Path(ds["run_dir"])
    return run_dir if (run_dir / names.RUN_INFO).is_file() else None


def control(engine: Engine, ds: dict[str, Any], action: str) -> dict[str, Any]:
    """Suspend, resume or retry-failed a dataset: on its site first (runcontrol: the DAG is halted,
    released or resubmitted), then in the database. Pilots of the server see the state alone.

    Returns the answer of the API: ``state`` (or ``retried``), and for a site's dataset ``site`` and
    ``site_action``. SiteError (subclass of IceprodDagError) when the site cannot do it."""
    from iceprod_dag.sites import runcontrol

    answer: dict[str, Any] = {}
    run_dir = site_run(ds)
    if run_dir is not None:
        do = {
            "suspend": runcontrol.suspend,
            "resume": runcontrol.resume,
            "retry-failed": runcontrol.retry_failed,
        }
        answer = {"site": ds["site"], "site_action": do[action](run_dir)}
    elif ds.get("site") not in (None, "server"):
        answer = {"site": ds["site"], "site_action": runcontrol.NONE}  # run folder not on this machine
    if action == "retry-failed":
        return {"retried": retry_failed(engine, int(ds["id"])), **answer}
    set_state(engine, int(ds["id"]), ACTION_STATES[action])
    return {"state": ACTION_STATES[action], **answer}


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
    order: list[str] = []
    pending = list(parents)
    while pending:
        ready = [t for t in pending if all(p in order for p in parents[t])]
        if not ready:
            break
        order += ready
        pending = [t for t in pending if t not in order]
    return order


def claim(engine: Engine, ds: dict[str, Any], host: str | None, timeout_s: float) -> dict[str, Any] | None:
    """Give one runnable job of the dataset to a pilot: pending, or running with no heartbeat for
    ``timeout_s``, and whose parents in the same job are done. Returns a pilot WorkItem as a dict."""
    if ds["state"] in NO_WORK_STATES:
        return None
    parents = _parents(ds.get("config"))
    now = time.time()
    with writer(engine).begin() as conn:
        tasks: list[str | None] = list(_topo(parents)) or [None]
        for task in tasks:
            q = select(Job.id, Job.node, Job.task, Job.job_index, Job.last_attempt).where(
                Job.dataset_pk == ds["id"], Job.state == "pending"
            )
            if task is not None:
                q = q.where(Job.task == task)
            # stalled jobs first: they were handed out before any pending one
            candidates = _stalled(conn, ds["id"], task, now - timeout_s)
            candidates += conn.execute(q.order_by(Job.job_index, Job.id).limit(200)).all()
            for job in candidates:
                if parents.get(job.task or "") and not _parents_done(
                    conn, ds["id"], parents[job.task], job.job_index
                ):
                    continue
                # the conditional update makes the claim atomic even across server processes
                taken = conn.execute(
                    update(Job)
                    .where(Job.id == job.id, Job.last_attempt == job.last_attempt)
                    .values(state="running", last_attempt=job.last_attempt + 1, updated_at=now)
                )
                if taken.rowcount == 1:
                    return _work_item(conn, ds, job, job.last_attempt + 1, host, now)
    return None


def _stalled(conn: Any, pk: int, task: str | None, before: float) -> list[Any]:
    q = (
        select(Job.id, Job.node, Job.task, Job.job_index, Job.last_attempt)
        .join(Attempt, (Attempt.job_pk == Job.id) & (Attempt.attempt == Job.last_attempt))
        .where(
            Job.dataset_pk == pk,
            Job.state == "running",
            Attempt.state == "running",
            Attempt.updated_at < before,
        )
    )
    if task is not None:
        q = q.where(Job.task == task)
    return list(conn.execute(q.limit(50)).all())


def _parents_done(conn: Any, pk: int, parent_tasks: list[str], job_index: int | None) -> bool:
    wanted = [names.node_name(t, job_index) for t in parent_tasks] if job_index is not None else []
    if not wanted:
        return True
    rows = conn.execute(select(Job.state).where(Job.dataset_pk == pk, Job.node.in_(wanted))).all()
    return len(rows) == len(wanted) and all(r.state == "done" for r in rows)


def _work_item(
    conn: Any, ds: dict[str, Any], job: Any, attempt: int, host: str | None, now: float
) -> dict[str, Any]:
    from sqlalchemy import insert

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
    """A pilot is still running this attempt; StaleUpdateError if a newer attempt superseded it."""
    now = time.time()
    with writer(engine).begin() as conn:
        job = conn.execute(
            select(Job.id, Job.last_attempt).where(Job.dataset_pk == ds_pk, Job.node == node)
        ).first()
        if job is None:
            raise IceprodDagError(f"field 'node': dataset {ds_pk} has no node {node!r}")
        if job.last_attempt != attempt:
            raise StaleUpdateError(f"{node}: attempt {attempt} was superseded by attempt {job.last_attempt}")
        done = conn.execute(
            update(Attempt)
            .where(Attempt.job_pk == job.id, Attempt.attempt == attempt, Attempt.state == "running")
            .values(updated_at=now)
        )
        if not done.rowcount:
            raise StaleUpdateError(f"{node}: attempt {attempt} is not running")
