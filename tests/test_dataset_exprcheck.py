"""`validate` and `compile` resolve every expression a task uses for the first and last job: undefined
parameters and expressions that cannot evaluate are reported with file, line and field, before anything runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from iceprod_dag.common.exceptions import ConfigError
from iceprod_dag.dataset.loader import load_dataset

BROKEN = """\
name: chain
jobs: 4
parameters:
  outfile: "out_$(job).txt"
  ratio: "$eval(10 / ($(job) - 3))"
  uses_ratio: "r$(ratio)"
tasks:
  - name: make
    command: "seq $(nevent) > $(outfile)"
  - name: use
    depends: [make]
    command: "wc -l $(outfile) $sprintf('%d-%d', $(job))"
    data:
      - url: "file:///tmp/$(missing)/x"
"""


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from iceprod_dag.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
    )


def test_undefined_and_unevaluable_expressions_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "chain.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ConfigError) as info:
        load_dataset(path)
    problems = info.value.problems
    assert problems[0].startswith(f"{path}:5 parameters.ratio: cannot evaluate for job 3: ")
    assert "division by zero" in problems[0]
    # uses_ratio fails only through ratio: reported once, where ratio is defined
    assert not any("uses_ratio" in p for p in problems)
    assert problems[1].startswith(f"{path}:9 tasks[0].command: undefined parameter $(nevent): ")
    assert problems[2].startswith(f"{path}:12 tasks[1].command: cannot evaluate for job 0: ")
    assert "takes 2 values, got 1" in problems[2]
    assert problems[3].startswith(f"{path}:14 tasks[1].data[0].url: undefined parameter $(missing): ")
    assert len(problems) == 4


@pytest.mark.parametrize("command", ["validate", "compile"])
def test_validate_and_compile_refuse_with_exit_2(tmp_path: Path, command: str) -> None:
    path = tmp_path / "chain.yaml"
    path.write_text(BROKEN)
    args = [command, str(path)] + (["-o", str(tmp_path / "run")] if command == "compile" else [])
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert f"{path}:9 tasks[0].command: undefined parameter $(nevent)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_worker_values_task_parameters_and_computed_names_pass(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        """\
name: fine
jobs: 3
parameters:
  seed: "$eval($(dataset) * 1000 + $(job))"
  "Tarball::0": a.tar
  "Tarball::1": b.tar
tasks:
  - name: gen
    iterations: 2
    parameters:
      nevent: 100
    command: "gen --seed $(seed) -n $(nevent) $(Tarball::$(iter)) $system(site) $args(extra) $environ(HOME)"
"""
    )
    assert load_dataset(path).name == "fine"
