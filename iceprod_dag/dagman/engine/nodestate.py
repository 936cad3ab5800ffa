"""The run state of a DAG's nodes as the engine keeps it, and the read-only view recorders get of it."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Protocol

from iceprod_dag.dagman.engine.executor import Launch
from iceprod_dag.dagman.model import Dag, Node


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


class JobEnd(enum.Enum):
    """How the node's last job ended, as its POST script's macros tell it."""

    EXIT = "exit"  # it ran and exited (any code, or a signal)
    ABORTED = "aborted"  # removed, lost, or could not start
    NONE = "none"  # never submitted (its PRE script failed, DAGMAN_ALWAYS_RUN_POST)


#: $RETURN of a POST script run after a failed PRE script (DAGMAN_ALWAYS_RUN_POST), as condor_dagman sets it
PRE_FAILED_RETURN = -1004


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
        "job_end",
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
        self.job_end = JobEnd.EXIT
        self.launch: Launch | None = None
        self.seq = 0

    @property
    def attempt(self) -> int:
        return self.attempt_base + self.retries


class RunView(Protocol):
    """What a recorder may read of a running DAG (DagEngine provides it)."""

    @property
    def dag(self) -> Dag: ...
    @property
    def runs(self) -> Mapping[str, NodeRun]: ...
    @property
    def finished(self) -> bool: ...
    @property
    def exit_status(self) -> int | None: ...
    @property
    def failed(self) -> list[str]: ...
