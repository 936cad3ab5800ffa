"""The validate, compile and config docs commands, run as a user would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from iceprod_dag.dataset.schemadocs import generate_docs


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from iceprod_dag.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def test_validate_reports_all_errors_and_exits_2_without_writing(data_dir: Path, tmp_path: Path) -> None:
    bad = data_dir / "datasets" / "bad.yaml"
    result = run_cli("validate", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 6
    assert f"{bad}:10 tasks[0].colour: unknown field 'colour'" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_validate_ok(data_dir: Path) -> None:
    result = run_cli("validate", str(data_dir / "datasets" / "chain.yaml"))
    assert result.returncode == 0, result.stderr
    assert "ok (3 jobs x 3 tasks)" in result.stdout


def test_compile_bad_dataset_exits_2_and_writes_nothing(data_dir: Path, tmp_path: Path) -> None:
    result = run_cli("compile", str(data_dir / "datasets" / "bad.yaml"), "-o", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "unknown field 'colour'" in result.stderr
    assert not (tmp_path / "run").exists()


def test_compile_writes_the_run_folder(data_dir: Path, tmp_path: Path) -> None:
    result = run_cli("-q", "compile", str(data_dir / "datasets" / "chain.yaml"), "-o", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert "(10 nodes)" in result.stdout
    assert (tmp_path / "run" / "dataset.dag").exists()
    assert (tmp_path / "run" / "pilot.pyz").exists()


def test_every_command_has_help() -> None:
    top = run_cli("--help")
    assert top.returncode == 0
    commands = [line.split()[0] for line in top.stdout.split("Commands:")[1].splitlines() if line.strip()]
    assert {"validate", "compile", "submit", "config"} <= set(commands)
    for command in commands:
        result = run_cli(command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage:" in result.stdout


def test_committed_config_docs_match_the_schemas(repo_dir: Path) -> None:
    committed = (repo_dir / "docs" / "config.md").read_text(encoding="utf-8")
    assert committed == generate_docs(), (
        "docs/config.md drifted: run `iceprod-dag config docs -o docs/config.md`"
    )


def test_docs_cover_every_schema_property(repo_dir: Path) -> None:
    text = generate_docs()
    for field in (
        "`tasks[].requirements.memory`",
        "`options.pilot.memory_allowance`",
        "`tasks[].data[].checksum`",
    ):
        assert field in text


def test_compile_accepts_an_iceprod_json_config(data_dir: Path, tmp_path: Path) -> None:
    config = data_dir / "iceprod" / "corsika_le.json"
    result = run_cli("-q", "compile", str(config), "--jobs", "5", "-o", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    dag = (tmp_path / "run" / "dataset.dag").read_text()
    assert dag.count("\nJOB ") == 15  # 5 jobs x 3 tasks
