"""PRE and POST scripts as DAGMan runs them: the command line with its $MACROS, found from the DAG's folder.

The macros and their values follow condor_dagman 23.9 as recorded on the real pool (tests/data/dagman_truth):
counts are the DAG's at the moment the script starts, $NODE_COUNT includes the FINAL node, $SUCCESS is
``True`` unless the job was aborted (a job that exits 3 still ran), $PRE_SCRIPT_RETURN is -1 without a PRE.
"""

from __future__ import annotations

import collections
import os
import re
import shlex
from collections.abc import Callable, Mapping
from typing import Protocol

from iceprod_dag.dagman.engine.executor import Launch
from iceprod_dag.dagman.engine.nodestate import DagStatus, JobEnd, NodeRun, NodeState
from iceprod_dag.dagman.model import Dag, Script

#: every script macro DAGMan documents; a name ends where a letter, digit or _ would continue it
#: ($JOB_COUNT is not $JOB followed by "_COUNT")
DAG_MACROS = (
    "NODE_COUNT",
    "QUEUED_COUNT",
    "DONE_COUNT",
    "FAILED_COUNT",
    "FUTILE_COUNT",
    "DAGID",
    "DAG_STATUS",
)
NODE_MACROS = ("JOB", "NODE_NAME", "RETRY", "MAX_RETRIES")
POST_MACROS = ("CLUSTERID", "JOBID", "JOB_COUNT", "JOB_ABORT_COUNT", "SUCCESS", "RETURN", "EXIT_CODES",
               "EXIT_CODE_COUNTS", "PRE_SCRIPT_RETURN")  # fmt: skip
_MACRO = re.compile(
    r"\$("
    + "|".join(sorted((*DAG_MACROS, *NODE_MACROS, *POST_MACROS), key=len, reverse=True))
    + r")(?![A-Za-z0-9_])"
)


def node_macros(run: NodeRun, kind: str) -> dict[str, str]:
    """The values of a node's own macros for its PRE or POST script."""
    values = {
        "JOB": run.node.name,
        "NODE_NAME": run.node.name,
        "RETRY": str(run.retries),
        "MAX_RETRIES": str(run.node.retry),
        "RETURN": str(run.job_rc),
        "PRE_SCRIPT_RETURN": str(run.pre_rc),
        "JOBID": "",
    }
    if kind == "POST":
        ran = run.job_end is JobEnd.EXIT
        values.update(
            CLUSTERID=str(run.cluster),
            JOBID=f"{run.cluster}.0",
            JOB_COUNT="0" if run.job_end is JobEnd.NONE else "1",  # one proc per node job (queue 1)
            JOB_ABORT_COUNT="1" if run.job_end is JobEnd.ABORTED else "0",
            SUCCESS="True" if ran else "False",
            EXIT_CODES=str(run.job_rc) if ran else "",
            EXIT_CODE_COUNTS=f"{run.job_rc}:1" if ran else "",
        )
    return values


class CountsView(Protocol):
    """What the DAG-wide macros count (DagEngine provides it)."""

    @property
    def runs(self) -> Mapping[str, NodeRun]: ...
    @property
    def running_jobs(self) -> int: ...
    @property
    def done_count(self) -> int: ...
    @property
    def failed(self) -> list[str]: ...
    @property
    def dag_cluster(self) -> int: ...
    @property
    def status(self) -> DagStatus: ...


def dag_macros(view: CountsView, command: str) -> dict[str, str]:
    """The DAG-wide script macros, counted now (DAGMan's values when the script starts)."""
    values = {
        "NODE_COUNT": str(len(view.runs)),
        "QUEUED_COUNT": str(view.running_jobs),
        "DONE_COUNT": str(view.done_count),
        "FAILED_COUNT": str(len(view.failed)),
        "DAGID": str(view.dag_cluster),
        "DAG_STATUS": str(int(view.status)),
    }
    if "$FUTILE_COUNT" in command:  # a walk over the failed nodes' descendants: only when asked
        values["FUTILE_COUNT"] = str(futile_count(view.runs, view.failed))
    return values


def futile_count(runs: Mapping[str, NodeRun], failed: list[str]) -> int:
    """Nodes that can never run because an ancestor failed for good."""
    seen: set[str] = set()
    todo = [c for name in failed for c in runs[name].node.children]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(runs[name].node.children)
    return sum(1 for name in seen if runs[name].state is not NodeState.DONE)


def script_launch(
    dag: Dag, run: NodeRun, script: Script, dag_macros: Callable[[str], Mapping[str, str]]
) -> Launch:
    """The launch of a node's script: macros expanded word by word, run in the node's DIR.

    dag_macros(command) gives the DAG-wide counts (it may skip the costly ones the command does not use).
    """
    macros = {**node_macros(run, script.kind), **dag_macros(script.command)}
    argv = [_MACRO.sub(lambda m: macros.get(m.group(1), m.group(0)), a) for a in shlex.split(script.command)]
    cwd = str(dag.directory / run.node.directory) if run.node.directory else str(dag.directory)
    if argv and not os.path.isabs(argv[0]) and os.path.exists(os.path.join(cwd, argv[0])):
        argv[0] = os.path.join(cwd, argv[0])  # DAGMan finds a script relative to the DAG's directory
    return Launch(argv=argv, cwd=cwd, key=f"{script.kind}:{run.node.name}", script=True)


class ScriptSlots:
    """DAGMAN_MAX_PRE_SCRIPTS and DAGMAN_MAX_POST_SCRIPTS: scripts beyond a limit wait for a slot, in order."""

    def __init__(self, max_pre: int, max_post: int) -> None:
        self._limit = {"PRE": max_pre, "POST": max_post}
        self._running = {"PRE": 0, "POST": 0}
        self._waiting: dict[str, collections.deque[NodeRun]] = {
            "PRE": collections.deque(),
            "POST": collections.deque(),
        }

    def take(self, kind: str) -> bool:
        """Take a slot for a script of kind; False if the limit is reached (park it instead)."""
        limit = self._limit.get(kind, 0)
        if limit and self._running[kind] >= limit:
            return False
        self._running[kind] = self._running.get(kind, 0) + 1
        return True

    def park(self, kind: str, run: NodeRun) -> None:
        self._waiting[kind].append(run)

    def release(self, kind: str) -> NodeRun | None:
        """A script of kind ended: free its slot; the node whose script may start now, if one waits."""
        self._running[kind] -= 1
        waiting = self._waiting[kind]
        return waiting.popleft() if waiting else None

    def waiting(self) -> int:
        return len(self._waiting["PRE"]) + len(self._waiting["POST"])

    def drop(self, kind: str) -> list[NodeRun]:
        """Forget the scripts of kind still waiting (abort, halt); their nodes."""
        dropped = list(self._waiting[kind])
        self._waiting[kind].clear()
        return dropped
