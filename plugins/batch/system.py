"""What the engine's batch executor needs of a batch system: pure translation and batched commands.

A batch site (site.py) is a Site that is also a BatchSystem; each system (Slurm, Grid Engine, PBS, LSF)
supplies the job script, the submit command line and its output parsing, and three batched commands (query,
cancel, accounting). The executor, the watcher and collect depend on this contract only.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from iceprod_dag.common.states import JobState
from iceprod_dag.plugins.batch.translate import JobGroup
from iceprod_dag.sites.runner import run_command


class BatchSystem(abc.ABC):
    """Translation and batched commands of one batch system."""

    name: ClassVar[str]
    poll_interval: ClassVar[float]
    options: dict[str, Any]

    #: native state -> our state; anything not in it maps to UNKNOWN
    native_states: ClassVar[Mapping[str, JobState]]
    #: exit code the job script uses for a failed attempt, if the system needs one (Grid Engine: 100)
    fail_exit: ClassVar[int | None] = None

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
