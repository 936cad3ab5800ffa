"""Suspend, resume or retry a submitted run through the site that runs it, with DAGMan's own semantics.

- suspend writes DAGMan's halt file (``<dag>.halt``): no new node job and no PRE script starts, running
  jobs finish and their POST scripts run. condor_dagman and the local engine honour it, and so does the batch
  sites' watcher. Once nothing runs, DAGMan (and the local engine) ends the DAG halted with a rescue DAG.
- resume removes the halt file. A driver still running carries on in place ("released"); one that ended
  halted is resubmitted from its rescue DAG ("resubmitted").
- retry_failed resubmits an ended run: DAGMan's rescue DAG keeps the done nodes, the failed ones run again.

Each function returns what was done on the site, one word: halted, released, resubmitted, none. A site that
cannot do it, or a run whose state does not allow it (suspend of an ended run, resume of one not suspended,
retry of a running one), raises ActionRefusedError and changes nothing: the CLI exits 2 and the web API
answers 409, each with its reason.

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
from iceprod_dag.common.exceptions import ActionRefusedError, RunNotFoundError, SiteError
from iceprod_dag.sites.base import Action, RunStatus, Site
from iceprod_dag.sites.runinfo import run_info, site_for

log = logging.getLogger(__name__)

#: seconds resume waits for a driver that is ending halted (its FINAL node runs) before resubmitting it
ENDING_TIMEOUT_S = 30.0

HALTED = "halted"
RELEASED = "released"
RESUBMITTED = "resubmitted"
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
    """Halt the run's DAG: nothing new starts, what runs finishes. 'halted'; refused if the DAG has ended."""
    run_dir = Path(run_dir)
    site, info, status = _open(run_dir)
    site.require(Action.SUSPEND)
    if status.finished:
        raise ActionRefusedError("suspend", _ended(run_dir, status) + "; nothing runs to suspend")
    path = halt_path(run_dir, info)
    try:
        path.touch()
    except OSError as exc:
        raise SiteError(f"cannot write the halt file {path}: {exc}") from exc
    log.info("halted %s on site %s (%s)", run_dir, site.name, path)
    return HALTED


def resume(run_dir: Path) -> str:
    """Undo suspend: 'released' if the DAG still runs, 'resubmitted' if it had ended halted.

    Refused (and nothing changed) when the run is not suspended, or ended without being halted."""
    run_dir = Path(run_dir)
    site, info, status = _open(run_dir)
    site.require(Action.SUSPEND)
    path = halt_path(run_dir, info)
    was_halted = path.exists()
    ended_halted = status.finished and bool(info.get("halted") or was_halted) and status.exit_code != 0
    if not was_halted and not ended_halted:
        reason = _ended(run_dir, status) if status.finished else f"{run_dir} is not suspended"
        raise ActionRefusedError("resume", reason)
    if status.finished and not ended_halted:
        raise ActionRefusedError(
            "resume", _ended(run_dir, status) + " (its halt file stays until a resubmit)"
        )
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
        return RELEASED
    _resubmit(site, run_dir)
    return RESUBMITTED


def retry_failed(run_dir: Path) -> str:
    """Resubmit an ended run from its rescue DAG: its failed (and never run) nodes run again."""
    run_dir = Path(run_dir)
    site, _, status = _open(run_dir)
    if not status.finished:
        raise ActionRefusedError(
            "retry",
            f"{run_dir}: the DAG is still running on site {site.name!r}; DAGMan retries failed nodes from"
            " the rescue DAG once it ends (wait for it, or remove it first)",
        )
    if status.exit_code == 0:
        return NONE  # every node succeeded: nothing to retry
    _resubmit(site, run_dir)
    return RESUBMITTED


def resubmit(run_dir: Path) -> str:
    """Run an ended run again from its rescue DAG (`iceprod-dag resubmit`): done nodes do not run again."""
    run_dir = Path(run_dir)
    site, _, status = _open(run_dir)
    site.require(Action.RESUBMIT)
    if not status.finished:
        raise ActionRefusedError(
            "resubmit", f"{run_dir}: the DAG is still running on site {site.name!r}; remove it first"
        )
    _resubmit(site, run_dir)
    return RESUBMITTED


def _ended(run_dir: Path, status: RunStatus) -> str:
    return f"{run_dir}: the DAG has ended (exit status {status.exit_code})"


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
    """The one way an ended run is run again (resubmit, retry, resume of a halted run): a resubmitted DAG
    starts unhalted, as DAGMan's does."""
    site.require(Action.RESUBMIT)
    halt_path(run_dir).unlink(missing_ok=True)
    site.resubmit(run_dir)
    log.info("resubmitted %s on site %s", run_dir, site.name)
