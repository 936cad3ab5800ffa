"""BatchSite: the Site contract for batch systems, run by a submit-side watcher; each system adds its commands.

A subclass supplies the pure translation and batched commands (system.py). Following the DAG is the one DAG
engine's job (iceprod_dag.dagman.engine), which the watcher (watcher.py) runs over the batch executor.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import RunNotFoundError, SiteError
from iceprod_dag.common.states import JobState
from iceprod_dag.plugins.batch import state as st
from iceprod_dag.plugins.batch.collect import collect_run
from iceprod_dag.plugins.batch.system import BatchSystem
from iceprod_dag.plugins.batch.watcher import Watcher
from iceprod_dag.sites.base import Action, RunStatus, Site
from iceprod_dag.sites.runinfo import update_run_info
from iceprod_dag.sites.runlock import ENDING_WAIT_S, RunLock

log = logging.getLogger(__name__)


class BatchSite(Site, BatchSystem):
    """A batch system (Slurm, Grid Engine, PBS, LSF) driven by the shared watcher.

    Options (all optional): ``python`` (interpreter of pilot.pyz on workers), ``max_array`` (elements per
    array job), ``poll_interval`` (watcher seconds between polls), ``command_timeout`` (seconds),
    ``env`` (extra environment for the batch commands, e.g. SLURM_CONF), ``submit_as_user`` (tests only: run
    the batch commands through ``runuser -u USER --``), ``queue`` (partition / queue), ``extra_args``.
    """

    #: the watcher honours DAGMan's halt file (iceprod_dag.sites.runcontrol suspends and resumes with it)
    capabilities: ClassVar[frozenset[Action]] = frozenset({Action.SUSPEND, Action.RESUBMIT})

    # ---------------------------------------------------------------- the Site contract

    def submit(self, run_dir: Path, wait: bool = False) -> int | None:
        run_dir = _run_dir(run_dir)
        # the watcher runs the folder and holds its lock (the detached one inherits our open lock file), so a
        # second submit is refused; a watcher that has recorded the run's end gets a moment to exit
        before = st.load(run_dir)
        wait_s = ENDING_WAIT_S if before and before.finished else 0.0
        with RunLock(run_dir).acquire(wait_s=wait_s, handing_over=not wait) as lock:
            watcher = Watcher(self, run_dir)
            watcher.prepare()
            if wait:
                _record_watcher(run_dir, self.name, os.getpid(), self.options)
                return watcher.run()
            log_path = run_dir / names.BATCH_WATCHER_LOG
            log_path.parent.mkdir(parents=True, exist_ok=True)
            pid = lock.start_holder(
                [sys.executable, "-m", "iceprod_dag.plugins.batch.watcher", str(run_dir)], log_path
            )
        watcher.adopt(pid)
        _record_watcher(run_dir, self.name, pid, self.options)
        log.info("watcher of %s started as pid %d (log %s)", run_dir, pid, log_path)
        return None

    def resubmit(self, run_dir: Path) -> None:
        """Continue a stopped or failed run in the background: done nodes are not run again."""
        self.submit(run_dir, wait=False)

    def status(self, run_dir: Path) -> RunStatus:
        run_dir = _run_dir(run_dir)
        state = st.load(run_dir)
        if state is None:
            raise RunNotFoundError(f"{run_dir}: not submitted to a batch site (no {names.BATCH_STATE})")
        queued = {n: s.job_id for n, s in state.nodes.items() if s.status == st.QUEUED and s.job_id}
        live = self.query_jobs(sorted(set(queued.values()))) if queued else {}
        nodes: dict[str, JobState] = {}
        reasons: dict[str, str] = {}
        for name, ns in state.nodes.items():
            if ns.status == st.QUEUED:
                found = live.get(ns.job_id or "")
                nodes[name] = found[0] if found else JobState.UNKNOWN
            else:
                nodes[name] = {
                    st.WAITING: JobState.PENDING,
                    st.DONE: JobState.DONE,
                    st.FAILED: JobState.FAILED,
                }[ns.status]
            if ns.reason:
                reasons[name] = ns.reason
        return RunStatus(nodes=nodes, finished=state.finished, exit_code=state.exit_code, reasons=reasons)

    def cancel(self, run_dir: Path) -> None:
        run_dir = _run_dir(run_dir)
        state = st.load(run_dir)
        if state is None:
            raise RunNotFoundError(f"{run_dir}: not submitted to a batch site (no {names.BATCH_STATE})")
        _stop_watcher(state)
        state = st.load(run_dir) or state  # the watcher removed its jobs and saved on its way out
        # jobs left by a watcher that died: each array once by its id (all its elements are ours)
        ids = sorted(
            {self.array_id(s.job_id) for s in state.nodes.values() if s.status == st.QUEUED and s.job_id}
        )
        if ids:
            self.cancel_jobs(ids)
        for ns in state.nodes.values():
            if ns.status == st.QUEUED:
                ns.status, ns.job_id, ns.reason = st.WAITING, None, "cancelled"
        state.watcher_pid = None
        if not state.finished:
            state.finished, state.exit_code = True, 1
        st.save(run_dir, state)
        log.info("cancelled %s: %d batch jobs removed", run_dir, len(ids))

    def collect(self, run_dir: Path) -> int:
        return collect_run(self, _run_dir(run_dir))


def _run_dir(run_dir: Path | str) -> Path:
    path = Path(run_dir).resolve()
    if not path.is_dir():
        raise RunNotFoundError(f"{path}: no such run folder")
    try:
        names.find_dag_file(str(path))
    except FileNotFoundError as exc:
        raise RunNotFoundError(str(exc)) from None
    return path


def _record_watcher(run_dir: Path, site: str, pid: int, options: Mapping[str, Any]) -> None:
    """run.json: which site follows the run, with which options (the CLI's status/remove/resubmit read it)."""
    update_run_info(
        run_dir,
        site=site,
        options=dict(options),
        watcher_pid=pid,
        watcher_host=socket.gethostname(),
        state=names.BATCH_STATE,
    )


def _stop_watcher(state: st.RunState, timeout: float = 30.0) -> None:
    if not st.watcher_alive(state) or state.watcher_pid == os.getpid():
        return
    pid = state.watcher_pid
    assert pid is not None
    if state.watcher_host not in (None, socket.gethostname()):
        raise SiteError(f"the run's watcher runs on {state.watcher_host}, not here: cancel it there")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        except ChildProcessError:
            pass
        if not st.watcher_alive(state):
            return
        time.sleep(0.1)
    raise SiteError(f"the run's watcher (pid {pid}) did not stop within {timeout:g} s")
