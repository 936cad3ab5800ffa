"""The run state of a local DAG's nodes, and the two interfaces the engine drives (executor, recorder)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from iceprod_dag.dagman.model import Node
from iceprod_dag.plugins.local.executor import Exit, Launch

if TYPE_CHECKING:
    from iceprod_dag.plugins.local.engine import DagEngine


class DagStatus(enum.IntEnum):
    """$DAG_STATUS values, as condor_dagman defines them."""

    OK = 0
    ERROR = 1
    NODE_FAILED = 2
    ABORT = 3
    RM = 4
    CYCLE = 5
    HALTED = 6


class NodeState(enum.Enum):
    """Where one node is in its life (the node status file's states)."""

    NOT_READY = "not_ready"
    READY = "ready"
    PRERUN = "prerun"
    SUBMITTED = "submitted"
    POSTRUN = "postrun"
    DONE = "done"
    ERROR = "error"
    FUTILE = "futile"


class Executor(Protocol):
    """Starts and reaps processes (see executor.ProcessExecutor)."""

    def fits(self, cpus: int, memory_mb: int) -> bool: ...
    def start(self, launch: Launch) -> None: ...
    def wait(self, timeout: float | None) -> list[Exit]: ...
    def active(self) -> int: ...
    def kill_all(self) -> None: ...


class Recorder(Protocol):
    """Writes what happens to disk as it happens (see state.RunRecorder)."""

    def pre_started(self, node: Node, retry: int) -> None: ...
    def pre_finished(self, node: Node, exit: Exit) -> None: ...
    def job_started(self, node: Node, attempt: int, cluster: int, launch: Launch) -> None: ...
    def job_finished(self, node: Node, attempt: int, cluster: int, launch: Launch, exit: Exit) -> None: ...
    def post_started(self, node: Node, cluster: int) -> None: ...
    def post_finished(self, node: Node, cluster: int, exit: Exit) -> None: ...
    def node_finished(self, node: Node, ok: bool) -> None: ...
    def flush(self, engine: DagEngine, force: bool = False) -> None: ...


#: builds the process of one attempt of a node's job (jobs.JobFactory)
JobBuilder = Callable[[Node, int], Launch]


class NodeRun:
    """Mutable run state of one node."""

    __slots__ = (
        "node",
        "state",
        "waiting",
        "retries",
        "attempt_base",
        "cluster",
        "pre_rc",
        "job_rc",
        "launch",
        "seq",
    )

    def __init__(self, node: Node) -> None:
        self.node = node
        self.state = NodeState.NOT_READY
        self.waiting = len(node.parents)  # parents not yet done
        self.retries = 0  # retries used in this run
        self.attempt_base = 0  # attempts made by earlier runs of this DAG (resume)
        self.cluster = 0
        self.pre_rc = -1
        self.job_rc = 0
        self.launch: Launch | None = None
        self.seq = 0

    @property
    def attempt(self) -> int:
        return self.attempt_base + self.retries
