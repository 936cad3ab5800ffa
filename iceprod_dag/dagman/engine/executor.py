"""What the engine asks an executor to run (Launch), how it ended (Exit), and the executor's obligations."""

from __future__ import annotations

import abc
import dataclasses
import re
from collections.abc import Callable

from iceprod_dag.dagman.model import Node

_CLUSTER = re.compile(r"\$\((Cluster|ClusterId|Process|ProcId)\)", re.IGNORECASE)


@dataclasses.dataclass
class Launch:
    """One thing to run: a node's job attempt or one of its scripts."""

    argv: list[str]
    cwd: str
    key: str = ""
    env: dict[str, str] | None = None  # None: inherit the engine's environment
    stdout: str | None = None
    stderr: str | None = None
    cpus: int = 1
    memory_mb: int = 0
    script: bool = False
    cluster: int = 0
    #: what the job ClassAd, the stats database and the executor want to know (Cmd, Args, batch request...)
    info: dict[str, object] = dataclasses.field(default_factory=dict)

    def set_cluster(self, cluster: int) -> None:
        """Give the attempt its id and substitute $(Cluster)/$(Process) in its output paths and arguments."""
        self.cluster = cluster

        def sub(text: str) -> str:
            return _CLUSTER.sub(
                lambda m: "0" if m.group(1).lower().startswith("proc") else str(cluster), text
            )

        if self.stdout and "$(" in self.stdout:
            self.stdout = sub(self.stdout)
        if self.stderr and "$(" in self.stderr:
            self.stderr = sub(self.stderr)
        self.argv = [sub(a) if "$(" in a else a for a in self.argv]


@dataclasses.dataclass
class Exit:
    """How one launch ended."""

    key: str
    pid: int
    exit_code: int | None  # None when killed by a signal, or lost
    signal: int | None
    start: float
    end: float
    user_cpu: float = 0.0
    sys_cpu: float = 0.0
    maxrss_kb: int = 0
    error: str | None = None  # it could not be started, or ended without a result

    @property
    def value(self) -> int:
        """DAGMan's $RETURN: the exit code, or minus the signal number."""
        if self.exit_code is not None:
            return self.exit_code
        return -(self.signal or 1)


class Executor(abc.ABC):
    """Runs the engine's launches: jobs where the site runs jobs, scripts on the submit host.

    Every launch given to start() is reported exactly once by wait(), whatever happens to it (ends, fails to
    start, is lost, is killed by kill_all), with the launch's key.
    """

    @abc.abstractmethod
    def fits(self, cpus: int, memory_mb: int) -> bool:
        """Whether a job asking for cpus and memory may start now (False: the engine tries again later)."""

    @abc.abstractmethod
    def start(self, launch: Launch) -> None:
        """Start a job or, if launch.script, a PRE/POST script; never raises for a launch that fails."""

    @abc.abstractmethod
    def wait(self, timeout: float | None) -> list[Exit]:
        """Poll and reap: the launches that ended, waiting up to timeout seconds for at least one."""

    @abc.abstractmethod
    def active(self) -> int:
        """How many launches started and not yet reported by wait()."""

    @abc.abstractmethod
    def kill_all(self) -> None:
        """Cancel every running launch (abort, interrupt); wait() still reports each of them."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the executor holds (after the run; nothing of the run is left running)."""


#: builds the launch of one attempt of a node's job
JobBuilder = Callable[[Node, int], Launch]
