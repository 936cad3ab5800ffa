"""BatchSite: the Site contract for batch systems, run by a submit-side watcher; each system adds its commands.

A subclass supplies the pure translation (job script, submit command line, output parsing) and three batched
commands (query, cancel, accounting). Following the DAG (dependencies, PRE/POST, RETRY, rescue state) is the
watcher's job, shared by every batch system (plugins/batch/watcher.py).
"""

from __future__ import annotations

import abc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import RunNotFoundError, SiteError
from iceprod_dag.common.states import JobState
from iceprod_dag.plugins.batch import state as st
from iceprod_dag.plugins.batch.translate import JobGroup
from iceprod_dag.sites.base import Action, RunStatus, Site
from iceprod_dag.sites.runner import run_command

log = logging.getLogger(__name__)


class BatchSite(Site):
    """A batch system (Slurm, Grid Engine, PBS, LSF) driven by the shared watcher.

    Options (all optional): ``python`` (interpreter of pilot.pyz on workers), ``max_array`` (elements per
    array job), ``poll_interval`` (watcher seconds between polls), ``command_timeout`` (seconds),
    ``env`` (extra environment for the batch commands, e.g. SLURM_CONF), ``submit_as_user`` (tests only: run
    the batch commands through ``runuser -u USER --``), ``queue`` (partition / queue), ``extra_args``.
    """

    #: native state -> our state; anything not in it maps to UNKNOWN
    native_states: ClassVar[Mapping[str, JobState]]
    #: exit code the job script uses for a failed attempt, if the system needs one (Grid Engine: 100)
    fail_exit: ClassVar[int | None] = None
    #: the watcher honours DAGMan's halt file (iceprod_dag.sites.runcontrol suspends and resumes with it)
    capabilities: ClassVar[frozenset[Action]] = frozenset({Action.SUSPEND, Action.RESUBMIT})

    # ---------------------------------------------------------------- pure translation (per system)

    @abc.abstractmethod
    def script(self, group: JobGroup) -> str:
        """The job script of a group (a single job or an array job)."""

    @abc.abstractmethod
    def submit_argv(self, group: JobGroup, script_path: Path) -> list[str]:
        """The command line that submits script_path (dependencies included)."""

    def submit_input(self, group: JobGroup, script_path: Path) -> str | None:
        """What the submit command reads on stdin (LSF's `bsub < script`); nothing by default."""
        return None

    @abc.abstractmethod
    def parse_submit(self, stdout: str, group: JobGroup) -> list[str]:
        """The batch job id of every element of the group, from the submit command's output."""

    @abc.abstractmethod
    def dependency_token(self, job_id: str, whole_array: bool) -> str:
        """How another job names job_id in its dependency list (the whole array if whole_array)."""

    @abc.abstractmethod
    def array_id(self, job_id: str) -> str:
        """The id of the array job an element belongs to (its own id for a single job)."""

    # ---------------------------------------------------------------- batched commands (per system)

    @abc.abstractmethod
    def query_jobs(self, job_ids: Sequence[str]) -> dict[str, tuple[JobState, str]]:
        """(state, native state) of every listed job the system still knows; absent jobs are left out."""

    @abc.abstractmethod
    def cancel_jobs(self, job_ids: Sequence[str]) -> None:
        """Remove the jobs from the system; jobs that already ended are not an error."""

    @abc.abstractmethod
    def accounting(self, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Accounting of ended jobs (sacct, qacct...) keyed by job id; jobs without a record are left out."""

    # ---------------------------------------------------------------- shared helpers

    def state_of(self, native: str) -> JobState:
        """Our state for a native state string, by the explicit table (unknown -> UNKNOWN)."""
        return self.native_states.get(native.strip(), JobState.UNKNOWN)

    @property
    def timeout(self) -> float:
        return float(self.options.get("command_timeout", 60))

    @property
    def watch_interval(self) -> float:
        return float(self.options.get("poll_interval", self.poll_interval))

    def command(self, argv: Sequence[str], input: str | None = None, cwd: str | None = None) -> str:
        """Run a batch command (as submit_as_user if set) with the site's environment; its stdout."""
        argv = list(argv)
        user = self.options.get("submit_as_user")
        env = {str(k): str(v) for k, v in (self.options.get("env") or {}).items()}
        if user:
            # runuser resets the environment: carry ours (SGE_ROOT, SLURM_CONF...) across explicitly
            keep = {k: v for k, v in os.environ.items() if k.startswith(("SGE_", "SLURM_", "PATH"))}
            argv = [
                "runuser",
                "-u",
                str(user),
                "--",
                "env",
                *[f"{k}={v}" for k, v in {**keep, **env}.items()],
                *argv,
            ]
        return run_command(argv, self.timeout, input=input, env=env or None, cwd=cwd).stdout

    def whole_arrays(self, state: st.RunState, job_ids: Sequence[str]) -> list[str]:
        """job_ids with every array whose elements are all listed named once by its array id (one scancel
        argument for 1,000 elements)."""
        wanted = set(job_ids)
        members: dict[str, set[str]] = {}
        for ns in state.nodes.values():
            for job_id in ns.jobs.values():
                members.setdefault(self.array_id(job_id), set()).add(job_id)
        out: set[str] = set()
        for aid, elements in members.items():
            mine = elements & wanted
            if not mine:
                continue
            out.update([aid] if mine == elements and len(elements) > 1 else mine)
        out.update(wanted - {j for e in members.values() for j in e})
        return sorted(out)

    # ---------------------------------------------------------------- the Site contract

    def submit(self, run_dir: Path, wait: bool = False) -> int | None:
        from iceprod_dag.plugins.batch.watcher import Watcher

        run_dir = _run_dir(run_dir)
        watcher = Watcher(self, run_dir)
        watcher.prepare()
        if wait:
            _write_run_info(run_dir, self.name, os.getpid(), self.options)
            return watcher.run()
        log_path = run_dir / names.BATCH_WATCHER_LOG
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "iceprod_dag.plugins.batch.watcher", str(run_dir)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                cwd=run_dir,
            )
        watcher.adopt(proc.pid)
        _write_run_info(run_dir, self.name, proc.pid, self.options)
        log.info("watcher of %s started as pid %d (log %s)", run_dir, proc.pid, log_path)
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
        state = st.load(run_dir) or state  # the watcher saved on its way out
        ids = self.whole_arrays(
            state, [s.job_id for s in state.nodes.values() if s.status == st.QUEUED and s.job_id]
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
        from iceprod_dag.plugins.batch.collect import collect_run

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


def _write_run_info(run_dir: Path, site: str, pid: int, options: Mapping[str, Any]) -> None:
    """run.json: which site follows the run, with which options (the CLI's status/remove/resubmit read it)."""
    path = run_dir / names.RUN_INFO
    try:
        info = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        info = {}
    info.update(
        {
            "site": site,
            "options": dict(options),
            "watcher_pid": pid,
            "watcher_host": socket.gethostname(),
            "state": names.BATCH_STATE,
        }
    )
    path.write_text(json.dumps(info, indent=1, sort_keys=True))


def watcher_alive(state: st.RunState) -> bool:
    """Whether the run's watcher process is running on this host."""
    if not state.watcher_pid or state.watcher_host not in (None, socket.gethostname()):
        return False
    try:
        os.kill(state.watcher_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        with open(f"/proc/{state.watcher_pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _stop_watcher(state: st.RunState, timeout: float = 30.0) -> None:
    if not watcher_alive(state) or state.watcher_pid == os.getpid():
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
        if not watcher_alive(state):
            return
        time.sleep(0.1)
    raise SiteError(f"the run's watcher (pid {pid}) did not stop within {timeout:g} s")
