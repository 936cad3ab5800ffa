"""What `submit` and `watch` print when a run ends: done and failed per task, the failed nodes, and the
`dag why` command that explains the first of them."""

from __future__ import annotations

import json
from pathlib import Path

from iceprod_dag.common import names
from iceprod_dag.common.states import JobState
from iceprod_dag.sites.base import RunStatus

#: failed nodes listed by name before "... and N more"
LISTED = 20


def _task_of(node: str) -> str:
    split = names.split_node_name(node)
    return split[0] if split else node


def _declared_tasks(run_dir: Path) -> list[str]:
    """The dataset's tasks as declared (dependencies come first), from the run's dataset.json if it has one."""
    try:
        data = json.loads((run_dir / names.DATASET_FILE).read_text(encoding="utf-8"))
        return [str(t["name"]) for t in data.get("tasks") or []]
    except (OSError, ValueError, TypeError, KeyError):
        return []  # a hand-written DAG


def run_summary(run_dir: Path, status: RunStatus) -> str:
    """The lines of the summary: tasks in the dataset's order, then other nodes in natural order."""
    per_task: dict[str, dict[str, int]] = {
        t: {"done": 0, "failed": 0, "other": 0} for t in _declared_tasks(run_dir)
    }
    failed: list[str] = []
    for node in sorted(status.nodes, key=names.natural_key):
        state = status.nodes[node]
        counts = per_task.setdefault(_task_of(node), {"done": 0, "failed": 0, "other": 0})
        if state is JobState.DONE:
            counts["done"] += 1
        elif state is JobState.FAILED:
            counts["failed"] += 1
            failed.append(node)
        else:
            counts["other"] += 1
    lines = []
    if status.finished:
        lines.append(f"DAG finished with exit status {status.exit_code}")
    else:
        lines.append("DAG still running")
    width = max([len(t) for t in per_task] + [4])
    lines.append(f"  {'task':<{width}}  {'done':>6}  {'failed':>6}  {'other':>6}")
    for task, c in per_task.items():
        if not any(c.values()):
            continue
        lines.append(f"  {task:<{width}}  {c['done']:>6}  {c['failed']:>6}  {c['other']:>6}")
    # the failed task jobs first: a FINAL node fails because they did
    failed.sort(key=lambda node: names.split_node_name(node) is None)
    if failed:
        shown = ", ".join(failed[:LISTED]) + (
            f" ... and {len(failed) - LISTED} more" if len(failed) > LISTED else ""
        )
        lines.append(f"failed nodes ({len(failed)}): {shown}")
        lines.append(f"why: iceprod-dag dag why {run_dir} {failed[0]}")
    return "\n".join(lines)
