"""Shared fixtures: paths to test data, and the real services started by .ci/services scripts."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def repo_dir() -> Path:
    return REPO


@pytest.fixture
def pilot_spec(tmp_path: Path):
    """Factory writing a pilot task spec (docs/contracts.md) to tmp_path; returns its path as a string."""
    import json

    def write(
        modules: list | None = None,
        command: str | None = None,
        requirements: dict | None = None,
        data: list | None = None,
        pilot: dict | None = None,
        name: str = "gen",
        **task: object,
    ) -> str:
        if command is not None:
            modules = [{"name": "cmd", "executable": "/bin/sh", "args": ["-c", command], "env": {}}]
        spec = {
            "format": 1,
            "dataset": {"name": "demo", "dataset_id": 20001, "jobs": 10, "parameters": {"seed": "$(job)"}},
            "task": {
                "name": name,
                "modules": modules or [],
                "iterations": 1,
                "parameters": {},
                "requirements": {"cpus": 1, "memory_mb": 100, "disk_mb": 100, "gpus": 0, "walltime_s": 60,
                                 **(requirements or {})},
                "data": data or [],
                **task,
            },
            "pilot": {"memory_allowance": 0.25, "sample_interval_s": 0.05, "kill_grace_s": 1.0,
                      "transfer_retries": 1, "transfer_backoff_s": 0.01, "stderr_tail_lines": 5, **(pilot or {})},
        }
        path = tmp_path / "specs" / f"{name}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(spec))
        return str(path)

    return write
