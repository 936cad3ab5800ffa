"""A batch run's state: one JSON file in the run folder, rewritten atomically when a round changed it.

The watcher's recorder (recorder.py) keeps it in step with the engine; status, cancel and collect read it, and
a resubmitted run starts from it: done nodes are skipped, attempt numbers continue.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from iceprod_dag.common import names

WAITING = "waiting"  # not in the batch system: parents not done yet, or ready to (re)submit
QUEUED = "queued"  # submitted, job_id known, result not yet seen
DONE = "done"
FAILED = "failed"  # failed with no retries left (or PRE failed for good)
STATUSES = (WAITING, QUEUED, DONE, FAILED)


@dataclasses.dataclass
class NodeState:
    """Where one node is: its status, current attempt, batch job id and failure history."""

    status: str = WAITING
    attempt: int = 0  # attempt number of the current/last job; grows across resubmits (stats never collide)
    job_id: str | None = None
    exit_codes: list[int | None] = dataclasses.field(default_factory=list)
    reason: str = ""
    jobs: dict[str, str] = dataclasses.field(default_factory=dict)  # attempt -> batch job id, for accounting
    acct_ids: dict[str, str] = dataclasses.field(default_factory=dict)  # attempt -> id in the accounting


@dataclasses.dataclass
class RunState:
    """The state of one run on a batch site."""

    site: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    nodes: dict[str, NodeState] = dataclasses.field(default_factory=dict)
    watcher_pid: int | None = None
    watcher_host: str | None = None
    started: float = dataclasses.field(default_factory=time.time)
    finished: bool = False
    exit_code: int | None = None
    submissions: int = 0  # how many times the run was (re)submitted

    def node(self, name: str) -> NodeState:
        found = self.nodes.get(name)
        if found is None:
            found = self.nodes[name] = NodeState()
        return found

    def to_json(self) -> dict[str, Any]:
        # shallow: dataclasses.asdict deep-copies every field, too slow for 10,000 nodes saved after each submit
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["nodes"] = {name: vars(ns) for name, ns in self.nodes.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunState:
        known = {f.name for f in dataclasses.fields(NodeState)}
        # fields an older version wrote and this one no longer keeps are dropped
        nodes = {
            k: NodeState(**{f: x for f, x in v.items() if f in known})
            for k, v in data.get("nodes", {}).items()
        }
        return cls(**{**data, "nodes": nodes})


def state_path(run_dir: Path) -> Path:
    return Path(run_dir) / names.BATCH_STATE


def load(run_dir: Path) -> RunState | None:
    """The run's state, or None if the run was never submitted to a batch site."""
    path = state_path(run_dir)
    try:
        return RunState.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def save(run_dir: Path, state: RunState) -> None:
    """Write atomically: a reader (status, a restarted watcher) never sees half a file."""
    path = state_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # compact: json's C encoder only runs without indent (a 10,000-node state is written in milliseconds)
    tmp.write_text(json.dumps(state.to_json(), separators=(",", ":")))
    os.replace(tmp, path)


def exit_marker(run_dir: Path, node: str, attempt: int) -> Path:
    """Where the job script writes the pilot's exit code when an attempt ends."""
    return Path(run_dir) / names.BATCH_EXIT_DIR / f"{node}.{attempt}"


def done_marker(run_dir: Path, node: str) -> Path:
    """Present once a node succeeded; a child's job script checks its parents' before starting."""
    return Path(run_dir) / names.BATCH_EXIT_DIR / f"{node}.done"


def read_exit(run_dir: Path, node: str, attempt: int) -> tuple[int | None, str]:
    """(exit code, accounting id) an attempt's job script recorded; (None, "") if it has not ended or was killed."""
    try:
        words = exit_marker(run_dir, node, attempt).read_text().split()
        return int(words[0]), (words[1] if len(words) > 1 else "")
    except (FileNotFoundError, ValueError, IndexError):
        return None, ""


def watcher_alive(state: RunState) -> bool:
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
