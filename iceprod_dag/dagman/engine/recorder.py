"""The recorder: what a site writes as the engine moves nodes on (logs, status, rescue state, stats)."""

from __future__ import annotations

import abc

from iceprod_dag.dagman.engine.executor import Exit, Launch
from iceprod_dag.dagman.engine.nodestate import RunView
from iceprod_dag.dagman.model import Node


class Recorder(abc.ABC):
    """Told of every step of every node as it happens; flush() ends a scheduling round."""

    @abc.abstractmethod
    def pre_started(self, node: Node, retry: int) -> None:
        """A PRE script starts."""

    @abc.abstractmethod
    def pre_finished(self, node: Node, exit: Exit) -> None:
        """A PRE script ended."""

    @abc.abstractmethod
    def job_started(self, node: Node, attempt: int, cluster: int, launch: Launch) -> None:
        """An attempt of a node's job was handed to the executor."""

    @abc.abstractmethod
    def job_finished(self, node: Node, attempt: int, cluster: int, launch: Launch, exit: Exit) -> None:
        """An attempt ended (or was killed, or lost)."""

    @abc.abstractmethod
    def post_started(self, node: Node, cluster: int) -> None:
        """A POST script starts."""

    @abc.abstractmethod
    def post_finished(self, node: Node, cluster: int, exit: Exit) -> None:
        """A POST script ended."""

    @abc.abstractmethod
    def node_finished(self, node: Node, ok: bool) -> None:
        """A node is done, or failed for good."""

    @abc.abstractmethod
    def flush(self, run: RunView, force: bool = False) -> None:
        """End of a round: make what was recorded durable (force: the run is ending)."""
