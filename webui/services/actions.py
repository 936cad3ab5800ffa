"""What the UI and API change: submit a dataset, suspend/resume/retry it.

Stats rows are written by ``iceprod_dag.stats`` only: ``ingest`` records the dataset, ``work`` changes its
state and hands its jobs to pilots.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import ActionRefusedError, QuotaError
from iceprod_dag.dataset.limits import InputLimits
from iceprod_dag.stats import ingest
from iceprod_dag.stats.work import retry_failed, set_state
from iceprod_dag.webui.services import queries
from iceprod_dag.webui.services.accounts import Principal, owner_for, set_private

log = logging.getLogger(__name__)

PRODUCTION_PRIORITY = 10


def submit(
    engine: Engine,
    who: Principal,
    data: Any,
    runs_dir: Path,
    private: bool = False,
    source: str = "<submitted dataset>",
    lines: Any = None,
    limits: InputLimits | None = None,
    quota: int | None = None,
) -> int:
    """Validate a dataset (ConfigError names every bad field), compile it into a new run folder under
    ``runs_dir`` and record it with all its jobs pending; returns the dataset's id.

    ``quota``: the most unfinished jobs (DAG nodes) the owner may have on the server; QuotaError past it."""
    from iceprod_dag.compile.compiler import compile_dataset
    from iceprod_dag.dataset.loader import dataset_to_json, load_dataset_dict

    dataset = load_dataset_dict(data, source, lines, limits)
    if quota is not None:
        _check_quota(engine, owner_for(who), dataset.jobs * len(dataset.tasks), quota)
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


def _check_quota(engine: Engine, owner: str, adding: int, quota: int) -> None:
    with engine.connect() as conn:
        unfinished = queries.unfinished_jobs(conn, owner)
    if unfinished + adding > quota:
        raise QuotaError(
            f"field 'jobs': {adding} more jobs would give {owner!r} {unfinished + adding} unfinished jobs on"
            f" the server, over the quota of {quota} (MAX_UNFINISHED_JOBS_PER_USER)"
        )


#: the dataset actions of the UI and API -> the state a suspend or resume records
ACTION_STATES = {"suspend": "suspended", "resume": "running"}


def site_run(ds: dict[str, Any]) -> Path | None:
    """The run folder of a dataset a site runs (submitted with ``iceprod-dag submit``), if it is here."""
    if ds.get("site") in (None, "server") or not ds.get("run_dir"):
        return None
    run_dir = Path(ds["run_dir"])
    return run_dir if (run_dir / names.RUN_INFO).is_file() else None


#: dataset states after which nothing runs: suspend and resume are refused
ENDED_STATES = ("done", "failed", "cancelled")


def refuse_by_state(ds: dict[str, Any], action: str) -> None:
    """ActionRefusedError when suspend or resume does not apply to the dataset's recorded state."""
    state = ds.get("state")
    if state in ENDED_STATES:
        raise ActionRefusedError(action, f"dataset {ds['id']} has ended ({state}); nothing runs to {action}")
    if action == "resume" and state != "suspended":
        raise ActionRefusedError(action, f"dataset {ds['id']} is not suspended ({state})")


def control(engine: Engine, ds: dict[str, Any], action: str) -> dict[str, Any]:
    """Suspend, resume or retry-failed a dataset: on its site first (runcontrol: the DAG is halted,
    released or resubmitted), then in the database. Pilots of the server see the state alone.

    Returns the answer of the API: ``state`` (or ``retried``), and for a site's dataset ``site`` and
    ``site_action``. SiteError (subclass of IceprodDagError) when the site cannot do it."""
    from iceprod_dag.sites import runcontrol

    answer: dict[str, Any] = {}
    run_dir = site_run(ds)
    if run_dir is None and action in ACTION_STATES:
        refuse_by_state(ds, action)  # with no run folder here, the database's state is all there is to go by
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
