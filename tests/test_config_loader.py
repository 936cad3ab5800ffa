"""The dataset loader: schema checks, every problem reported with file, line and field, normalization."""

from __future__ import annotations

from pathlib import Path

import pytest

from iceprod_dag.common.exceptions import ConfigError
from iceprod_dag.dataset.loader import load_dataset, load_dataset_dict


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_dataset(path)
    return info.value.problems


def test_every_problem_is_reported_with_file_line_and_field(data_dir: Path) -> None:
    path = data_dir / "datasets" / "bad.yaml"
    problems = problems_of(path)
    assert f'{path}:8 tasks[0].requirements.memory: expected a size like "2 GB", got "lots"' in problems
    assert any(
        p.startswith(f"{path}:9 tasks[0].requirements.walltime: expected a duration") for p in problems
    )
    assert f"{path}:10 tasks[0].colour: unknown field 'colour'" in problems
    assert f"{path}:11 tasks[1]: give exactly one of 'command' or 'modules'" in problems
    assert any("cycle: a -> c -> a" in p for p in problems)
    assert any(p.startswith(f"{path}:17 tasks[2].category: unknown category 'nope'") for p in problems)
    assert len(problems) == 6


def test_unknown_field_suggests_the_close_name(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("name: x\njobs: 1\ntasks:\n  - name: t\n    command: 'true'\n    retires: 2\n")
    assert problems_of(path) == [
        f"{path}:6 tasks[0].retires: unknown field 'retires' (did you mean 'retries'?)"
    ]


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("name: x\njobs: [1\ntasks: []\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:") and "invalid YAML" in problem


def test_duplicate_keys_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("name: x\njobs: 1\njobs: 2\ntasks: [{name: t, command: 'true'}]\n")
    (problem,) = problems_of(path)
    assert problem == f"{path}:3: duplicate key 'jobs'"


def test_missing_required_and_wrong_types(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("name: 'has space'\njobs: many\n")
    problems = problems_of(path)
    assert any("'tasks' is required" in p for p in problems)
    assert f"{path}:2 jobs: expected integer, got str 'many'" in problems
    assert any(p.startswith(f"{path}:1 name:") and "pattern" in p for p in problems)


def test_normalizes_units_defaults_and_modules(data_dir: Path) -> None:
    dataset = load_dataset(data_dir / "datasets" / "chain.yaml")
    gen, proc, merge = dataset.tasks
    assert gen.requirements.memory_mb == 2048
    assert gen.requirements.disk_mb == 500
    assert gen.requirements.walltime_s == 5400
    assert gen.requirements.os == ("el9",)
    assert gen.retries == 3 and proc.retries == 0
    assert gen.modules[0].executable == "/bin/sh" and gen.modules[0].args == ["-c", "echo $(seed)"]
    assert proc.modules[0].args == ["a", "b c"] and proc.modules[0].env == {"X": "1"}
    assert proc.modules[0].name == "echo"
    assert merge.requirements.memory_mb == 1024 and merge.priority == 10
    assert dataset.categories == {"io": 2}
    assert [t.name for t in dataset.topological_tasks()] == ["gen", "proc", "merge"]


def test_non_mapping_document_is_refused() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_dataset_dict(["a"], source="x.yaml")


def test_example_datasets_are_valid(repo_dir: Path) -> None:
    examples = sorted((repo_dir / "config" / "examples").glob("*.yaml"))
    assert examples
    for path in examples:
        assert load_dataset(path).jobs >= 1
