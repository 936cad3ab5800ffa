"""The site contract: the small abstract base class every site plugin implements.

A site takes a compiled run folder (see iceprod_dag.common.names) and runs its DAG: translate, submit,
report status in one batched call, cancel, and collect the finished attempts' statistics.
Translation is pure (text in, text out); only ``submit``, ``status``, ``cancel`` and ``collect``
touch the batch system, through ``iceprod_dag.sites.runner.run_command``.

Beyond those four obligations a site declares, in ``capabilities``, which optional actions it does (see
Action). Each action has one method here that refuses with ActionRefusedError; a site that declares the
action overrides it, and the registry refuses a plugin whose declaration and methods disagree. Callers never
probe for methods: they call them, and a refusal reads the same from the CLI (exit 2), the API (409) and the UI.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from iceprod_dag.common.exceptions import ActionRefusedError
from iceprod_dag.common.states import JobState


class Action(enum.Enum):
    """An optional action a site may declare in ``Site.capabilities``."""

    #: its DAG driver honours DAGMan's halt file (iceprod_dag.sites.runcontrol writes and removes it)
    SUSPEND = "suspend"
    #: ``hold``: hold the run's jobs (and its DAG driver) until released
    HOLD = "hold"
    #: ``release``: release what ``hold`` held
    RELEASE = "release"
    #: ``resubmit``: run an ended run again from its rescue DAG (done nodes do not run again)
    RESUBMIT = "resubmit"
    #: ``throughput_per_min``: nodes finished per minute, from the site's own record of the run
    THROUGHPUT = "throughput"


#: the Site method that carries each action (SUSPEND has none: runcontrol writes the halt file itself)
ACTION_METHODS: Mapping[Action, str] = {
    Action.HOLD: "hold",
    Action.RELEASE: "release",
    Action.RESUBMIT: "resubmit",
    Action.THROUGHPUT: "throughput_per_min",
}


@dataclasses.dataclass(frozen=True)
class RunStatus:
    """A snapshot of one run: node states, and whether the DAG as a whole has ended."""

    nodes: Mapping[str, JobState]
    finished: bool = False
    #: DAGMan's exit status once finished: 0 success, 1 failure, or an ABORT-DAG-ON RETURN value
    exit_code: int | None = None
    #: free-form reasons for held/failed nodes, keyed by node name
    reasons: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: the DAG ended halted (suspended with DAGMan's halt file): `resume` continues it from its rescue DAG
    halted: bool = False

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
    #: the optional actions this site does; every other one is refused with ActionRefusedError
    capabilities: ClassVar[frozenset[Action]] = frozenset()

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

    # ------------------------------------------------------------------ optional actions (see Action)

    def can(self, action: Action) -> bool:
        """Whether this site declares the action."""
        return action in self.capabilities

    def require(self, action: Action) -> None:
        """Refuse (ActionRefusedError) unless this site declares the action."""
        if action not in self.capabilities:
            self.refuse(action)

    def refuse(self, action: Action) -> NoReturn:
        """The one refusal of an action this site does not declare."""
        raise ActionRefusedError(action.value, f"site {self.name!r} does not support {action.value!r}")

    def hold(self, run_dir: Path) -> None:
        """Hold the run's jobs and its DAG driver: nothing runs until ``release``."""
        self.refuse(Action.HOLD)

    def release(self, run_dir: Path) -> None:
        """Release what ``hold`` held."""
        self.refuse(Action.RELEASE)

    def resubmit(self, run_dir: Path) -> int | None:
        """Run an ended run again from its rescue DAG, in the background; done nodes do not run again.

        Callers go through iceprod_dag.sites.runcontrol.resubmit, which refuses a run that still runs."""
        self.refuse(Action.RESUBMIT)

    def throughput_per_min(self, run_dir: Path) -> float:
        """Nodes finished per minute over the run so far."""
        self.refuse(Action.THROUGHPUT)
