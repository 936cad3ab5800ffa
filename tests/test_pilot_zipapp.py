"""The pilot zipapp: deterministic build, stdlib-only contents, runs a job with an isolated interpreter."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from iceprod_dag.cli.main import cli
from iceprod_dag.compile.pilotzip import build_bytes, build_zipapp
from iceprod_dag.pilot import exitcodes

# the oldest Python the pilot supports, when this machine has one (pyenv builds)
INTERPRETERS = [sys.executable] + sorted(
    glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3.8"))
)[:1]


def test_build_is_deterministic_and_stdlib_only(tmp_path: Path):
    assert build_bytes() == build_bytes()
    script = "import sys, hashlib; from iceprod_dag.compile.pilotzip import build_bytes; print(hashlib.sha256(build_bytes()).hexdigest())"
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == hashlib.sha256(build_bytes()).hexdigest(), "same bytes in another process"
    target = build_zipapp(tmp_path / "pilot.pyz")
    assert os.access(target, os.X_OK)
    with zipfile.ZipFile(target) as archive:
        listed = archive.namelist()
    assert "__main__.py" in listed and "iceprod_dag/pilot/runjob.py" in listed
    assert "iceprod_dag/common/expressions.py" in listed and "iceprod_dag/pilot/runjob.pyc" in listed
    assert not [
        n for n in listed if n.startswith(("iceprod_dag/cli", "iceprod_dag/stats", "iceprod_dag/plugins"))
    ]


@pytest.mark.parametrize("python", INTERPRETERS, ids=lambda p: os.path.basename(p))
def test_zipapp_runs_a_job_isolated(tmp_path: Path, pilot_spec, python: str):
    """`-I -S`: no user site, no site-packages (so no psutil), outside the repo: only the stdlib and the zipapp."""
    pyz = build_zipapp(tmp_path / "pilot.pyz")
    src = tmp_path / "in.txt"
    src.write_text("hello\n")
    data = [
        {"url": src.as_uri(), "local": "in.txt"},
        {"url": (tmp_path / "out").as_uri() + "/r$(job).txt", "local": "r.txt", "direction": "output"},
    ]
    spec = pilot_spec(command="cat in.txt > r.txt; echo job $(job)", data=data)
    run = tmp_path / "node"
    run.mkdir()
    env = {"PATH": os.environ["PATH"], "_CONDOR_SCRATCH_DIR": str(tmp_path)}
    cmd = [python, "-I", "-S", str(pyz), "run", "--spec", spec, "--job", "6", "--attempt", "1", "--site", "z"]
    done = subprocess.run(cmd, cwd=run, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    rec = json.loads((run / "stats/gen_6.1.json").read_text())
    assert rec["failure"] is None and rec["site"] == "z"
    assert (tmp_path / "out/r6.txt").read_text() == "hello\n"
    assert (run / "logs/gen_6/1/stdout").read_text() == "job 6\n"
    over = pilot_spec(command="exec sleep 5", requirements={"walltime_s": 0.2}, name="slow")
    cmd = [python, "-I", "-S", str(pyz), "run", "--spec", over, "--job", "0"]
    done = subprocess.run(cmd, cwd=run, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == exitcodes.OVER_TIME, done.stderr


@pytest.mark.parametrize("python", INTERPRETERS, ids=lambda p: os.path.basename(p))
def test_bytecode_is_used_by_the_same_python_only(tmp_path: Path, python: str):
    pyz = build_zipapp(tmp_path / "pilot.pyz")
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import iceprod_dag.pilot.runjob as m; print(m.__file__)"
    )
    done = subprocess.run([python, "-I", "-S", "-c", script, pyz], capture_output=True, text=True, check=True)
    same = python == sys.executable
    assert done.stdout.strip().endswith("runjob.pyc" if same else "runjob.py")


def test_cli_pilot_build_and_run(tmp_path: Path, pilot_spec, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["pilot", "build", "-o", str(tmp_path / "p.pyz")], obj={})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p.pyz").read_bytes() == build_bytes()
    spec = pilot_spec(command="exit 0")
    result = runner.invoke(cli, ["pilot", "run", "--spec", spec, "--job", "1"], obj={})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "stats/gen_1.0.json").exists()
