"""The local site: run a DAG on this machine with the local DAGMan (engine.py).

``submit(run_dir, wait=True)`` runs the engine in this process (with a live progress display unless quiet)
and returns DAGMan's exit status; ``wait=False`` starts it as a detached process
(``python -m iceprod_dag.plugins.local RUNDIR``) and returns. Submitting a run again resumes it: its newest
rescue DAG plus its node event log say which nodes are done, and they do not run again.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import RunNotFoundError, SiteError
from iceprod_dag.common.states import DAG_REMOVED_EXIT, JobState
from iceprod_dag.dagman.nodestatus import read_node_status
from iceprod_dag.plugins.local.runner import collect_records, lock_run, read_run_info, run_dag
from iceprod_dag.sites.base import Action, RunStatus, Site
from iceprod_dag.sites.runinfo import update_run_info
from iceprod_dag.sites.runlock import RunLock

logger = logging.getLogger(__name__)


class LocalSite(Site):
    """Runs DAGs on this machine, packing jobs within its cpus and memory (or the configured limits).

    Options: ``cpus``, ``memory_mb`` (limits), ``db`` (stats database URL), ``quiet`` (no progress display).
    """

    name: ClassVar[str] = "local"
    poll_interval: ClassVar[float] = 1.0
    #: the engine honours DAGMan's halt file (iceprod_dag.sites.runcontrol suspends and resumes with it);
    #: a resubmit is a submit of the same folder: the engine resumes from its rescue DAG and event log
    capabilities: ClassVar[frozenset[Action]] = frozenset({Action.SUSPEND, Action.RESUBMIT})

    def submit(self, run_dir: Path, wait: bool = False) -> int | None:
        """Run the DAG here (wait=True) or in a detached engine; either holds the run folder's lock, so a
        second submit of the same folder is refused (RunLockedError, naming the pid) while one runs."""
        run_dir = Path(run_dir).resolve()
        if not self.options.get("dag_file"):
            _dag_file(run_dir)
        lock = lock_run(run_dir, handing_over=not wait)
        try:
            # the options later controls (suspend, resume, retry) rebuild the site with, as other sites keep them
            kept = {
                k: self.options[k] for k in ("cpus", "memory_mb", "db", "dag_file") if self.options.get(k)
            }
            if kept.get("dag_file"):
                kept["dag_file"] = str(Path(kept["dag_file"]).resolve())
            update_run_info(run_dir, site=self.name, options={**kept, "quiet": True})
            if wait:
                return run_dag(run_dir, **self._engine_options(), lock=lock)
            self._detach(run_dir, lock)
            return None
        finally:
            lock.release()  # a no-op once run_dag released it or the engine took it over

    def resubmit(self, run_dir: Path) -> None:
        """Start the engine again on the run in the background: its rescue DAG says which nodes are done."""
        self.submit(run_dir, wait=False)

    def _engine_options(self) -> dict[str, Any]:
        o = self.options
        return {
            "cpus": o.get("cpus"),
            "memory_mb": o.get("memory_mb"),
            "db_url": o.get("db"),
            "progress": not o.get("quiet", False),
            "dag_file": o.get("dag_file"),
        }

    def _detach(self, run_dir: Path, lock: RunLock) -> None:
        """Start the engine as a detached process that inherits the run folder's lock from us."""
        cmd = [sys.executable, "-m", "iceprod_dag.plugins.local", str(run_dir), "--lock-fd", str(lock.fd)]
        opts = self._engine_options()
        for flag, key in (
            ("--cpus", "cpus"),
            ("--memory-mb", "memory_mb"),
            ("--db", "db_url"),
            ("--dag", "dag_file"),
        ):
            if opts[key]:
                cmd += [flag, str(opts[key])]
        log = run_dir / "local.out"
        pid = lock.start_holder(cmd, log)
        # the run is live from now on, not from when the engine gets going: a status or watch in between must
        # not read the previous run's end
        update_run_info(run_dir, pid=pid, exit_code=None, halted=False)
        logger.info("started the local engine for %s as pid %d (output in %s)", run_dir, pid, log)
        return None

    def status(self, run_dir: Path) -> RunStatus:
        """The engine's node status file, read with the one codec. The FINAL node is a node as DAGMan reports
        it (counted, and failed when the DAG failed), except in a halted run: it runs again at the resume, so
        it is pending, not failed. An engine that ended without an exit status was stopped
        (remove, SIGTERM) or died: the DAG reports DAGMan's removed exit, and the jobs the file still shows as
        running were killed with it."""
        run_dir = Path(run_dir)
        info = read_run_info(run_dir)
        dag_file = info.get("dag") or _dag_file(run_dir)
        status_path = Path(info.get("status_file") or names.status_file(str(dag_file)))
        exit_code = info.get("exit_code")
        finished = exit_code is not None or not _alive(info.get("pid"))
        if finished and exit_code is None:
            exit_code = DAG_REMOVED_EXIT  # a resubmit resumes it from its rescue DAG and event log
        halted = finished and bool(info.get("halted"))
        finals = set(info.get("final_nodes") or ())
        nodes: dict[str, JobState] = {}
        reasons: dict[str, str] = {}
        if status_path.exists():
            for entry in read_node_status(status_path).nodes:
                if halted and entry.node in finals:
                    nodes[entry.node] = JobState.PENDING
                    continue
                state = entry.job_state
                if finished and not state.finished and state is not JobState.PENDING:
                    state = JobState.CANCELLED
                    reasons[entry.node] = "removed: its job was stopped with the local engine"
                elif entry.details and state in (JobState.FAILED, JobState.CANCELLED, JobState.HELD):
                    reasons[entry.node] = entry.details
                nodes[entry.node] = state
        return RunStatus(nodes=nodes, finished=finished, exit_code=exit_code, reasons=reasons, halted=halted)

    def cancel(self, run_dir: Path) -> None:
        info = read_run_info(Path(run_dir))
        if not info:
            _dag_file(Path(run_dir))
        pid = int(info.get("pid") or 0)
        if not _alive(pid):
            return
        os.kill(pid, signal.SIGTERM)  # the engine kills its jobs and writes a rescue DAG
        deadline = time.time() + 30
        while time.time() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            raise SiteError(f"the local engine (pid {pid}) of {run_dir} did not stop within 30 s")

    def collect(self, run_dir: Path) -> int:
        return collect_records(Path(run_dir), self.options.get("db"))


def _dag_file(run_dir: Path) -> str:
    if not run_dir.is_dir():
        raise RunNotFoundError(f"{run_dir}: no such run folder")
    try:
        return names.find_dag_file(str(run_dir))
    except FileNotFoundError as exc:
        raise RunNotFoundError(str(exc)) from exc


def _alive(pid: Any) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as dead
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
