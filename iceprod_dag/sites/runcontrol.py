"""Suspend, resume or retry a submitted run through the site that runs it, with DAGMan's own semantics.

- suspend writes DAGMan's halt file (``<dag>.halt``): no new node job and no PRE script starts, running
  jobs finish and their POST scripts run. condor_dagman and the local engine honour it, and so does the batch
  sites' watcher. Once nothing runs, DAGMan (and the local engine) ends the DAG halted with a rescue DAG.
- resume removes the halt file. A driver still running carries on in place ("released"); one that ended
  halted is resubmitted from its rescue DAG ("resubmitted").
- retry_failed resubmits an ended run: DAGMan's rescue DAG keeps the done nodes, the failed ones run again.

Each function returns what was done on the site, one word: halted, released, resubmitted, ended, none.
A site that cannot do it raises SiteError (the web API answers 409 with its message).

HTCondor: the halt file, not ``condor_hold`` of the DAGMan job. Holding makes the schedd kill DAGMan, and the
release starts a new one that must recover its state from the logs; it also runs no POST script meanwhile, so
work that finished is not recorded until the release. The halt file needs no schedd round trip, keeps DAGMan
following its jobs, and is the same mechanism on every site (``iceprod-dag hold`` still holds everything).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import RunNotFoundError, SiteError
from iceprod_dag.sites.base import RunStatus, Site
from iceprod_dag.sites.runinfo import run_info, site_for

log = logging.getLogger(__name__)

#: seconds resume waits for a driver that is ending halted (its FINAL node runs) before resubmitting it
ENDING_TIMEOUT_S = 30.0

HALTED = "halted"
RELEASED = "released"
RESUBMITTED = "resubmitted"
ENDED = "ended"
NONE = "none"


def halt_path(run_dir: Path, info: dict[str, Any] | None = None) -> Path:
    """The halt file of a run: next to the DAG file its site runs (the condor site's copy in submit_dir)."""
    info = run_info(run_dir) if info is None else info
    dag = info.get("dag") or (info.get("options") or {}).get("dag_file")
    if not dag:
        try:
            dag = names.find_dag_file(str(run_dir))
        except FileNotFoundError as exc:
            raise RunNotFoundError(str(exc)) from exc
    return Path(names.halt_file(str(dag)))


def is_halted(run_dir: Path) -> bool:
    """Whether the run's halt file exists (it is suspended, or was when its driver ended)."""
    return halt_path(Path(run_dir)).exists()


def suspend(run_dir: Path) -> str:
    """Halt the run's DAG: nothing new starts, what runs finishes. 'halted', or 'ended' if the DAG is over."""
    run_dir = Path(run_dir)
    site, info, status = _open(run_dir)
    # a site declares it with ``honours_halt_file = True`` (condor, local and the batch sites do)
    if not getattr(site, "honours_halt_file", False):
        raise SiteError(f"site {site.name!r} cannot suspend a run (its DAG driver has no halt file)")
    if status.finished:
        return ENDED  # nothing left to hold back; retry_failed or a resubmit starts it again
    path = halt_path(run_dir, info)
    try:
        path.touch()
    except OSError as exc:
        raise SiteError(f"cannot write the halt file {path}: {exc}") from exc
    log.info("halted %s on site %s (%s)", run_dir, site.name, path)
    return HALTED


def resume(run_dir: Path) -> str:
    """Undo suspend: 'released' if the DAG still runs, 'resubmitted' if it had ended halted, else 'none'."""
    run_dir = Path(run_dir)
    site, info, status = _open(run_dir)
    path = halt_path(run_dir, info)
    was_halted = path.exists()
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise SiteError(f"cannot remove the halt file {path}: {exc}") from exc
    if not status.finished and run_info(run_dir).get("halted"):
        # the local engine had begun its halted exit (FINAL node): let it end, then resubmit
        status = _wait_ended(site, run_dir)
    if not status.finished:
        # the driver sees the file gone at its next round. (If DAGMan began its halted exit in the instant
        # before, the run shows as ended, halted: a second resume resubmits it.)
        log.info("released %s on site %s", run_dir, site.name)
        return RELEASED if was_halted else NONE
    if (was_halted or info.get("halted")) and status.exit_code != 0:
        _resubmit(site, run_dir)
        return RESUBMITTED
    return NONE


def retry_failed(run_dir: Path) -> str:
    """Resubmit an ended run from its rescue DAG: its failed (and never run) nodes run again."""
    run_dir = Path(run_dir)
    site, info, status = _open(run_dir)
    if not status.finished:
        raise SiteError(
            f"{run_dir}: the DAG is still running on site {site.name!r}; DAGMan retries failed nodes from"
            " the rescue DAG once it ends (wait for it, or remove it first)"
        )
    if status.exit_code == 0:
        return NONE  # every node succeeded: nothing to retry
    halt_path(run_dir, info).unlink(missing_ok=True)
    _resubmit(site, run_dir)
    return RESUBMITTED


def _open(run_dir: Path) -> tuple[Site, dict[str, Any], RunStatus]:
    info = run_info(run_dir)
    site = site_for(run_dir)
    return site, info, site.status(run_dir)


def _wait_ended(site: Site, run_dir: Path, timeout_s: float = ENDING_TIMEOUT_S) -> RunStatus:
    deadline = time.monotonic() + timeout_s
    while True:
        status = site.status(run_dir)
        if status.finished:
            return status
        if time.monotonic() > deadline:
            raise SiteError(
                f"{run_dir}: the halted DAG did not end within {timeout_s:.0f} s; resume it again later"
            )
        time.sleep(min(0.2, site.poll_interval))


def _resubmit(site: Site, run_dir: Path) -> None:
    # condor and the batch sites resubmit from the rescue DAG; the local site resumes by submitting again
    resubmit = getattr(site, "resubmit", None)
    if resubmit is not None:
        resubmit(run_dir)
    else:
        site.submit(run_dir, wait=False)
    log.info("resubmitted %s on site %s", run_dir, site.name)
