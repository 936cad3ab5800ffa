"""The site contract: the small abstract base class every site plugin implements.

A site takes a compiled run folder (see iceprod_dag.common.names) and runs its DAG: translate, submit,
report status in one batched call, cancel, and collect the finished attempts' statistics.
Translation is pure (text in, text out); only ``submit``, ``status``, ``cancel`` and ``collect``
touch the batch system, through ``iceprod_dag.sites.runner.run_command``.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from iceprod_dag.common.states import JobState


@dataclasses.dataclass(frozen=True)
class RunStatus:
    """A snapshot of one run: node states, and whether the DAG as a whole has ended."""

    nodes: Mapping[str, JobState]
    finished: bool = False
    #: DAGMan's exit status once finished: 0 success, 1 failure, or an ABORT-DAG-ON RETURN value
    exit_code: int | None = None
    #: free-form reasons for held/failed nodes, keyed by node name
    reasons: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for state in self.nodes.values():
            counts[state.value] = counts.get(state.value, 0) + 1
        return counts


class Site(abc.ABC):
    """One kind of batch system that can run a compiled DAG."""

    #: the name users type after --site; matches the entry point name exactly
    name: ClassVar[str]
    #: seconds between status polls when following a run
    poll_interval: ClassVar[float] = 5.0

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = dict(options or {})

    @abc.abstractmethod
    def submit(self, run_dir: Path, wait: bool = False) -> int | None:
        """Start the run's DAG; with wait=True block until it ends and return DAGMan's exit status."""

    @abc.abstractmethod
    def status(self, run_dir: Path) -> RunStatus:
        """The state of every node of the run, in one batched query."""

    @abc.abstractmethod
    def cancel(self, run_dir: Path) -> None:
        """Stop the run; what completed stays recorded and a resubmit continues from it."""

    @abc.abstractmethod
    def collect(self, run_dir: Path) -> int:
        """Load finished attempts' stats records and job ads into the stats database; return how many are new."""
