"""Offline production: run jobs of a dataset through the pilot with no server and no batch system.

Stats records and logs are written to the run folder exactly as a site would leave them, so
`iceprod-dag import-stats FOLDER` loads them later. A job whose attempt already succeeded is skipped,
so running again resumes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import ConfigError
from iceprod_dag.dataset.model import Dataset, Task
from iceprod_dag.dataset.prestage import apply_prestage
from iceprod_dag.pilot import exitcodes

log = logging.getLogger(__name__)


@dataclasses.dataclass
class OfflineResult:
    """What an offline run did."""

    succeeded: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)


def parse_job_range(text: str | None, jobs: int) -> list[int]:
    """ "0-9,12" -> [0..9, 12]; None means every job. Out-of-range indexes are an error naming them."""
    if not text:
        return list(range(jobs))
    selected: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                selected.update(range(low, high + 1))
            else:
                selected.add(int(part))
        except ValueError:
            raise ConfigError(f"--jobs: expected ranges like 0-9,12, got {text!r}") from None
    bad = sorted(j for j in selected if not 0 <= j < jobs)
    if bad:
        raise ConfigError(f"--jobs: job {bad[0]} is outside the dataset's 0-{jobs - 1}")
    return sorted(selected)


def _succeeded_before(run_dir: Path, node: str) -> bool:
    for record in (run_dir / names.STATS_DIR).glob(f"{node}.*.json"):
        try:
            if json.loads(record.read_text()).get("pilot_exit_code") == exitcodes.SUCCESS:
                return True
        except (OSError, ValueError):
            continue
    return False


def _next_attempt(run_dir: Path, node: str) -> int:
    attempts = [
        int(p.name[len(node) + 1 : -len(".json")])
        for p in (run_dir / names.STATS_DIR).glob(f"{node}.*.json")
        if p.name[len(node) + 1 : -len(".json")].isdigit()
    ]
    return max(attempts, default=-1) + 1


def _previous_memory(run_dir: Path, node: str, attempt: int) -> int | None:
    """1.5x the peak of an earlier over-memory attempt, as the pilot suggested in its record."""
    path = run_dir / names.stats_record(node, attempt - 1)
    try:
        value = json.loads(path.read_text()).get("next_memory_mb")
    except (OSError, ValueError):
        return None
    return int(value) if value else None


def run_job_task(run_dir: Path, task: Task, job: int, site: str = "offline") -> bool:
    """Run one node with its retries through the pilot; True when an attempt succeeded."""
    node = names.node_name(task.name, job)
    for _ in range(task.retries + 1):
        attempt = _next_attempt(run_dir, node)
        command = [
            sys.executable,
            names.PILOT_ZIPAPP,
            "run",
            "--spec",
            names.spec_file(task.name),
            "--job",
            str(job),
            "--attempt",
            str(attempt),
            "--site",
            site,
        ]
        memory = _previous_memory(run_dir, node, attempt) if attempt else None
        if memory:
            command += ["--memory-mb", str(memory)]
        code = subprocess.run(command, cwd=run_dir).returncode
        log.info("%s attempt %d: exit %d", node, attempt, code)
        if code == exitcodes.SUCCESS:
            return True
        if code == exitcodes.PERMANENT:
            return False
    return False


def run_offline(
    dataset: Dataset,
    run_dir: Path,
    jobs: Iterable[int],
    task_name: str | None = None,
    on_node: Callable[[str, bool], None] | None = None,
) -> OfflineResult:
    """Run the chosen jobs (and task) in dependency order; a failed task skips its dependents in that job."""
    dataset = apply_prestage(dataset)
    if task_name is not None and task_name not in {t.name for t in dataset.tasks}:
        known = ", ".join(t.name for t in dataset.tasks)
        raise ConfigError(f"--task: unknown task {task_name!r} (tasks: {known})")
    tasks = [t for t in dataset.topological_tasks() if task_name is None or t.name == task_name]
    result = OfflineResult()
    for job in jobs:
        failed_tasks: set[str] = set()
        for task in tasks:
            node = names.node_name(task.name, job)
            if _succeeded_before(run_dir, node) or failed_tasks & set(task.depends):
                result.skipped.append(node)
                if failed_tasks & set(task.depends):
                    failed_tasks.add(task.name)
                continue
            ok = run_job_task(run_dir, task, job)
            (result.succeeded if ok else result.failed).append(node)
            if not ok:
                failed_tasks.add(task.name)
            if on_node:
                on_node(node, ok)
    return result
