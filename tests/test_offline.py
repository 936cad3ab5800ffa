"""Offline production: jobs run through the real pilot into a folder, resumable, with no server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iceprod_dag.common.exceptions import ConfigError
from iceprod_dag.compile.compiler import compile_dataset
from iceprod_dag.dataset.loader import load_dataset_dict
from iceprod_dag.sites.offline import parse_job_range, run_offline


def test_parse_job_range() -> None:
    assert parse_job_range("0-2,5", 10) == [0, 1, 2, 5]
    assert parse_job_range(None, 3) == [0, 1, 2]
    with pytest.raises(ConfigError, match="job 10 is outside"):
        parse_job_range("8-10", 10)
    with pytest.raises(ConfigError, match="--jobs"):
        parse_job_range("a-b", 10)


def test_runs_in_order_skips_dependents_of_failures_and_resumes(tmp_path: Path) -> None:
    marker = tmp_path / "count"
    dataset = load_dataset_dict(
        {
            "name": "off",
            "jobs": 2,
            "options": {"retries": 1, "pilot": {"sample_interval": 0.05}},
            "tasks": [
                {"name": "gen", "command": f"echo x >> {marker}; test $(job) -eq 0"},
                {"name": "use", "command": "echo used $(job)", "depends": ["gen"]},
            ],
        }
    )
    run = tmp_path / "run"
    compile_dataset(dataset, run)
    result = run_offline(dataset, run, [0, 1])
    assert result.succeeded == ["gen_0", "use_0"]
    assert result.failed == ["gen_1"]
    assert result.skipped == ["use_1"]
    # gen_1 ran twice (one retry); every attempt has its own record
    assert json.loads((run / "stats" / "gen_1.1.json").read_text())["failure"] == "task_failed"
    assert (run / "logs" / "use_0" / "0" / "stdout").read_text() == "used 0\n"
    runs_before = marker.read_text().count("x")
    again = run_offline(dataset, run, [0])
    assert again.skipped == ["gen_0", "use_0"] and not again.succeeded
    assert marker.read_text().count("x") == runs_before


def test_unknown_task_is_named(tmp_path: Path) -> None:
    dataset = load_dataset_dict({"name": "off", "jobs": 1, "tasks": [{"name": "a", "command": "true"}]})
    with pytest.raises(ConfigError, match="unknown task 'b'"):
        run_offline(dataset, tmp_path, [0], task_name="b")
