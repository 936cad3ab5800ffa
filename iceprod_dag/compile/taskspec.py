"""The per-task spec file the pilot reads (docs/contracts.md): written once per task, resolved per job."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from iceprod_dag.dataset.model import Dataset, Task

SPEC_FORMAT = 1


def task_spec(dataset: Dataset, task: Task) -> dict[str, Any]:
    """The spec of one task; expressions stay unresolved so one file serves every job."""
    req = task.requirements
    return {
        "format": SPEC_FORMAT,
        "dataset": {
            "name": dataset.name,
            "dataset_id": dataset.dataset_id,
            "jobs": dataset.jobs,
            "description": dataset.description,
            "parameters": dataset.parameters,
        },
        "task": {
            "name": task.name,
            "modules": [dataclasses.asdict(m) for m in task.modules],
            "iterations": task.iterations,
            "parameters": task.parameters,
            "requirements": {
                "cpus": req.cpus,
                "memory_mb": req.memory_mb,
                "disk_mb": req.disk_mb,
                "gpus": req.gpus,
                "walltime_s": req.walltime_s,
            },
            "data": [dataclasses.asdict(d) for d in task.data],
        },
        "pilot": {
            "memory_allowance": dataset.pilot.memory_allowance,
            "learn_factor": dataset.pilot.learn_factor,
            "sample_interval_s": dataset.pilot.sample_interval_s,
            "kill_grace_s": dataset.pilot.kill_grace_s,
            "transfer_retries": dataset.pilot.transfer_retries,
            "stderr_tail_lines": dataset.pilot.stderr_tail_lines,
        },
    }


def task_spec_json(dataset: Dataset, task: Task) -> str:
    """Canonical JSON (sorted keys) so the same dataset always gives byte-identical specs."""
    return json.dumps(task_spec(dataset, task), sort_keys=True, indent=1) + "\n"
