"""The watcher's rescue state: one JSON file in the run folder, rewritten atomically after every change.

Everything the watcher knows lives here, so a watcher that stops (cancel, crash, reboot) can be started
again from disk alone: done nodes are skipped, nodes still queued in the batch system are followed again.
"""

from __future__ import annotations

import dataclasses
import json
import os
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
    failures: int = 0  # failed attempts counted against RETRY since the last (re)submit
    job_id: str | None = None
    memory_mb: int | None = None  # request override for the next attempt (after an over-memory kill)
    walltime_s: int | None = None  # likewise after an over-time kill
    disk_mb: int | None = None  # likewise after an over-disk kill
    exit_codes: list[int | None] = dataclasses.field(default_factory=list)
    reason: str = ""
    missing_polls: int = 0  # polls the job was absent from the queue without an exit marker
    missing_since: float | None = None  # when the job was first seen ended without an exit marker
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

    def signature(self) -> int:
        """Changes whenever a node changes status, attempt or job: cheap enough to compute every poll."""
        return hash(tuple((n, s.status, s.attempt, s.job_id, s.missing_polls) for n, s in self.nodes.items()))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunState:
        nodes = {k: NodeState(**v) for k, v in data.get("nodes", {}).items()}
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
