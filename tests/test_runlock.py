"""One process runs a run folder (issue 16, item 6) and only a complete compile is ever resumed (item 8).

Real `iceprod-dag` processes on the local site; jobs wait on a gate file the test opens, so nothing depends on
how long anything takes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_runcontrol import started, wait_for

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import RunLockedError
from iceprod_dag.sites.runlock import RunLock

DATASET = """\
name: gated
dataset_id: 9
jobs: {jobs}
tasks:
  - name: a
    command: "{command}"
    requirements: {{cpus: 1, memory: "10 MB"}}
"""


def write_dataset(tmp_path: Path, jobs: int = 2) -> tuple[Path, Path]:
    """A dataset whose jobs run until the returned gate file exists."""
    gate = tmp_path / "gate-open"  # jobs run in a scratch folder: keep the flag outside it
    script = tmp_path / "gate.sh"
    script.write_text(f"while [ ! -e {gate} ]; do sleep 0.05; done\n")
    source = tmp_path / "gated.yaml"
    source.write_text(DATASET.format(jobs=jobs, command=f"sh {script}"))
    return source, gate


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-c", "from iceprod_dag.cli.main import main; main()", *args]


def cli_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "ICEPROD_DAG_HOME": str(tmp_path / "home")}


def submit(tmp_path: Path, source: Path, run: Path, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_argv("-q", "submit", str(source), "--run-dir", str(run), *flags),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(tmp_path),
    )


def node_starts(run: Path) -> list[str]:
    """Nodes whose job was started, once per start, in name order."""
    return sorted(started(run))


def run_info(run: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((run / names.RUN_INFO).read_text()))
    except (OSError, ValueError):
        return {}


def test_a_second_lock_on_a_run_folder_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    with RunLock(tmp_path).acquire():
        with pytest.raises(RunLockedError) as info:
            RunLock(tmp_path).acquire()
        assert info.value.pid == os.getpid() and info.value.exit_code == 2
        assert f"process {os.getpid()}" in str(info.value)
    RunLock(tmp_path).acquire().release()  # released with its holder


@pytest.mark.parametrize("site", ["local", "condor", "slurm", "sge", "pbs", "lsf"])
def test_every_site_refuses_a_folder_another_process_runs(tmp_path: Path, site: str) -> None:
    """Checked before any batch system is asked: the lock is the first thing a submit takes."""
    from iceprod_dag.compile.compiler import compile_dataset
    from iceprod_dag.dataset.loader import load_dataset
    from iceprod_dag.sites.registry import load_site

    source, _ = write_dataset(tmp_path)
    run = tmp_path / "run"
    compile_dataset(load_dataset(source), run, with_pilot=False)
    with RunLock(run).acquire():
        with pytest.raises(RunLockedError, match=f"is being run by process {os.getpid()}"):
            load_site(site, {"db": f"sqlite:///{tmp_path / 's.sqlite'}"}).submit(run, wait=False)
    assert not (run / names.RUN_INFO).exists()  # refused before anything was written


def test_two_submits_at_once_run_the_folder_once(tmp_path: Path) -> None:
    source, gate = write_dataset(tmp_path)
    run = tmp_path / "run"
    first, second = submit(tmp_path, source, run, "--detach"), submit(tmp_path, source, run, "--detach")
    outcomes = sorted([(p.wait(120), p.communicate()[1]) for p in (first, second)])
    assert [code for code, _ in outcomes] == [0, 2], outcomes
    engine = int((run / names.RUN_LOCK).read_text())
    assert run_info(run)["pid"] == engine
    assert f"is being run by process {engine}" in outcomes[1][1]
    wait_for("both jobs starting", lambda: node_starts(run) == ["a_0", "a_1"], run)
    gate.touch()
    wait_for("the run ending", lambda: run_info(run).get("exit_code") == 0, run)
    assert node_starts(run) == ["a_0", "a_1"]  # each node ran once
    assert sorted(p.name for p in (run / names.STATS_DIR).iterdir()) == ["a_0.0.json", "a_1.0.json"]


def test_a_submit_while_a_foreground_run_holds_the_folder_is_refused(tmp_path: Path) -> None:
    source, gate = write_dataset(tmp_path)
    run = tmp_path / "run"
    first = submit(tmp_path, source, run, "--wait")
    wait_for("the first run starting its jobs", lambda: node_starts(run) == ["a_0", "a_1"], run)
    later = submit(tmp_path, source, run, "--wait")
    assert later.wait(120) == 2
    assert f"is being run by process {first.pid}" in later.communicate()[1]
    gate.touch()
    assert first.wait(120) == 0, first.communicate()
    again = submit(tmp_path, source, run, "--wait")  # the holder has ended: the folder is free
    assert again.wait(120) == 0, again.communicate()
    assert node_starts(run) == ["a_0", "a_1"]  # and its resume ran nothing again


def test_a_compile_killed_midway_is_never_resumed(tmp_path: Path) -> None:
    """kill -9 while the DAG is being written: no run folder appears, and the next submit compiles afresh
    instead of resuming a truncated DAG."""
    from iceprod_dag.cli.submit_cmd import prepare_run_dir

    jobs = 300_000
    source, _ = write_dataset(tmp_path, jobs=jobs)
    run = tmp_path / "run"
    compiling = subprocess.Popen(
        cli_argv("-q", "compile", str(source), "-o", str(run)), env=cli_env(tmp_path)
    )

    def dag_being_written() -> bool:
        return any(
            (p / names.DAG_FILE).exists() and (p / names.DAG_FILE).stat().st_size > 0
            for p in tmp_path.glob(names.COMPILING_PREFIX + "*")
        )

    wait_for("the DAG being written", dag_being_written, run, timeout=120)
    os.kill(compiling.pid, signal.SIGKILL)
    assert compiling.wait(30) == -signal.SIGKILL
    assert not run.exists(), "a killed compile left a run folder behind"

    assert len(list(tmp_path.glob(names.COMPILING_PREFIX + "*"))) == 1  # what the killed compile left
    prepare_run_dir(source, run, quiet=True)
    assert not list(tmp_path.glob(names.COMPILING_PREFIX + "*"))  # removed: its process is gone
    lines = (run / names.DAG_FILE).read_text().splitlines()
    assert sum(1 for line in lines if line.startswith("JOB ")) == jobs
    assert f"FINAL {names.FINAL_NODE} {names.FINAL_SUBMIT} NOOP" in lines


def test_compiling_again_into_a_compiled_folder_replaces_it_whole(tmp_path: Path) -> None:
    from iceprod_dag.compile.compiler import compile_dataset
    from iceprod_dag.dataset.loader import load_dataset

    source, _ = write_dataset(tmp_path, jobs=3)
    run = tmp_path / "run"
    compile_dataset(load_dataset(source), run, with_pilot=False)
    source.write_text(source.read_text().replace("jobs: 3", "jobs: 1"))
    compile_dataset(load_dataset(source), run, with_pilot=False)
    assert "JOB a_2 " not in (run / names.DAG_FILE).read_text()
    assert json.loads((run / names.DATASET_FILE).read_text())["jobs"] == 1
    assert not list(tmp_path.glob(names.COMPILING_PREFIX + "*"))  # no temporary folder left
