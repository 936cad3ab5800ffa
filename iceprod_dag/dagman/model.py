"""The in-memory form of a DAGMan DAG file: what the parser builds and every site's engine walks."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass
class Script:
    """A PRE or POST script of a node (SCRIPT [DEFER status time] PRE|POST node executable args...)."""

    kind: str  # "PRE" | "POST" | "HOLD"
    command: str  # executable and arguments, macros ($JOB, $RETRY, $RETURN...) not yet expanded
    defer_status: int | None = None
    defer_time: int | None = None
    debug_file: str | None = None  # SCRIPT ... DEBUG file STDOUT|STDERR|ALL
    debug_type: str | None = None


@dataclasses.dataclass
class Node:
    """One node: a job (submit file) plus everything the DAG file says about it."""

    name: str
    submit_file: str
    directory: str | None = None
    noop: bool = False
    done: bool = False
    final: bool = False
    vars: dict[str, str] = dataclasses.field(default_factory=dict)
    retry: int = 0
    unless_exit: int | None = None
    priority: int = 0
    category: str | None = None
    pre: Script | None = None
    post: Script | None = None
    pre_skip: int | None = None
    abort_dag_on: tuple[int, int | None] | None = None  # (exit value, RETURN value or None)
    parents: list[str] = dataclasses.field(default_factory=list)
    children: list[str] = dataclasses.field(default_factory=list)
    line: int = 0  # line of the JOB/FINAL command, for error messages
    vars_append: frozenset[str] = frozenset()  # names set by VARS ... APPEND (DAGMan's default is PREPEND)


@dataclasses.dataclass
class Dag:
    """A parsed DAG file."""

    path: Path
    nodes: dict[str, Node] = dataclasses.field(default_factory=dict)
    max_jobs: dict[str, int] = dataclasses.field(default_factory=dict)  # CATEGORY name -> MAXJOBS limit
    node_status_file: str | None = None
    node_status_interval: int | None = None
    node_status_always_update: bool = False
    jobstate_log: str | None = None
    dot_file: str | None = None
    dot_update: bool = False
    dot_overwrite: bool = True
    dot_include: str | None = None
    config_file: str | None = None
    final: str | None = None  # name of the FINAL node
    rescue_file: Path | None = None  # the rescue DAG applied by load_rescue, if any

    @property
    def directory(self) -> Path:
        return self.path.parent

    def roots(self) -> list[Node]:
        return [n for n in self.nodes.values() if not n.parents and not n.final]

    def find_cycle(self) -> list[str] | None:
        """The nodes of one cycle in parent -> child order, or None when the graph is acyclic (Kahn's sort)."""
        nodes = self.nodes
        indeg = {name: len(n.parents) for name, n in nodes.items()}
        ready = [name for name, d in indeg.items() if d == 0]
        seen = 0
        while ready:
            name = ready.pop()
            seen += 1
            for c in nodes[name].children:
                indeg[c] -= 1
                if indeg[c] == 0:
                    ready.append(c)
        if seen == len(nodes):
            return None
        # every node left has a parent that is also left: walking up parents must close a loop
        left = {name for name, d in indeg.items() if d > 0}
        path: list[str] = []
        index: dict[str, int] = {}
        cur = next(iter(left))
        while cur not in index:
            index[cur] = len(path)
            path.append(cur)
            cur = next(p for p in nodes[cur].parents if p in left)
        return list(reversed(path[index[cur] :]))
