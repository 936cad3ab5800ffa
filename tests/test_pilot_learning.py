"""Resource learning on real sites: a job killed over its memory or wall time is retried asking for more.

The dataset is the issue's: a 400 MB job asking for 128 MB, and a 4 s job asking for 2 s of wall time. Every
site (local, Slurm, Grid Engine) must kill both over their limit (request plus allowance) and retry them with
1.5 x the measured peak (learn_factor), after which they succeed.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from iceprod_dag.plugins.batch.translate import hms
from iceprod_dag.sites.registry import load_site

LEARN = """\
name: learn
jobs: 1
options:
  retries: 3
tasks:
  - name: hog
    command: "python3 -c \\"b = bytearray(400*1024*1024); b[::4096] = b'x'*len(b[::4096]); import time; time.sleep(3)\\""
    requirements: {cpus: 1, memory: 128 MB, walltime: 1m}
  - name: slow
    command: "sleep 4"
    requirements: {cpus: 1, memory: 64 MB, walltime: 2s}
"""


def compile_learn(base: Path) -> Path:
    (base / "learn.yaml").write_text(LEARN)
    run = base / "run"
    proc = subprocess.run(
        ["iceprod-dag", "compile", str(base / "learn.yaml"), "-o", str(run)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return run


def records(run: Path, node: str) -> list[dict]:
    found = sorted((run / "stats").glob(f"{node}.*.json"), key=lambda p: int(p.stem.rsplit(".", 1)[1]))
    return [json.loads(p.read_text()) for p in found]


def check_learned(run: Path, site: str) -> None:
    hog = records(run, "hog_0")
    first = hog[0]
    assert first["failure"] == "over_memory", first
    assert first["memory_limit_mb"] == 160.0, "request plus the 25% allowance, not the machine's memory"
    assert first["peak_memory_mb"] > 160 and first["site"] == site
    assert abs(first["next_memory_mb"] - 1.5 * first["peak_memory_mb"]) <= 1  # the record's peak is rounded
    for before, after in zip(hog, hog[1:], strict=False):
        assert after["request"]["memory_mb"] == before["next_memory_mb"], "each retry asks for 1.5 x the peak"
    last = hog[-1]
    assert last["failure"] is None, last
    assert last["peak_memory_mb"] > 400 and last["memory_limit_mb"] > last["peak_memory_mb"]
    if first["peak_memory_mb"] >= 400:  # killed after it had touched all of it: the 600 MB
        assert len(hog) == 2 and last["request"]["memory_mb"] >= 600
    slow = records(run, "slow_0")
    assert slow[0]["failure"] == "over_time" and slow[0]["walltime_limit_s"] == 2
    assert slow[0]["memory_limit_mb"] == 80.0
    assert abs(slow[0]["next_walltime_s"] - 1.5 * slow[0]["wall_s"]) <= 1
    assert slow[1]["request"]["walltime_s"] == slow[0]["next_walltime_s"]
    assert slow[-1]["failure"] is None and slow[-1]["wall_s"] >= 4


@pytest.mark.slow
def test_local_site_kills_and_learns(tmp_path: Path) -> None:
    (tmp_path / "learn.yaml").write_text(LEARN)
    run = tmp_path / "run"
    proc = subprocess.run(
        ["iceprod-dag", "-q", "submit", str(tmp_path / "learn.yaml"), "--run-dir", str(run)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ICEPROD_DAG_HOME": str(tmp_path / "home")},  # not the user's stats database
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    check_learned(run, "local")


@pytest.mark.slurm
def test_slurm_kills_and_learns(slurm_cluster, tmp_path: Path) -> None:
    run = compile_learn(tmp_path)
    site = load_site("slurm", {"poll_interval": 0.5, "db": f"sqlite:///{tmp_path / 'stats.db'}"})
    assert site.submit(run, wait=True) == 0
    check_learned(run, "slurm")
    # the batch request of each retry carries what was learned, and so does the pilot's command line
    memory = int(records(run, "hog_0")[0]["next_memory_mb"])
    script = (run / "batch" / "scripts" / "hog_0.1.sh").read_text()
    assert f"#SBATCH --mem={memory}M" in script and f"--memory-mb {memory}" in script
    walltime = int(records(run, "slow_0")[0]["next_walltime_s"])
    script = (run / "batch" / "scripts" / "slow_0.1.sh").read_text()
    assert f"#SBATCH --time={hms(walltime + 300)}" in script and f"--walltime {walltime}s" in script


@pytest.mark.sge
def test_grid_engine_kills_and_learns(sge_cluster, tmp_path: Path) -> None:
    user = "htcuser"
    base = Path(tempfile.mkdtemp(prefix="iceprod-sge-learn-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        run = compile_learn(base)
        for sub in ("batch", "batch/exit", "batch/out", "batch/scripts", "stats", "logs"):
            (run / sub).mkdir(parents=True, exist_ok=True)
        pw = pwd.getpwnam(user)
        for root, dirs, files in os.walk(base):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.chown(name, pw.pw_uid, pw.pw_gid)
        # h_vmem caps address space: a generous factor lets the pilot's kill (with its record) act first
        options = {"poll_interval": 0.5, "submit_as_user": user, "vmem_factor": 8}
        site = load_site("sge", {**options, "db": f"sqlite:///{tmp_path / 'stats.db'}"})
        assert site.submit(run, wait=True) == 0
        check_learned(run, "sge")
        memory = int(records(run, "hog_0")[0]["next_memory_mb"])
        script = (run / "batch" / "scripts" / "hog_0.1.sh").read_text()
        assert f"-l h_vmem={memory * 8}M" in script and f"--memory-mb {memory}" in script
        walltime = int(records(run, "slow_0")[0]["next_walltime_s"])
        assert f"--walltime {walltime}s" in (run / "batch" / "scripts" / "slow_0.1.sh").read_text()
    finally:
        shutil.rmtree(base, ignore_errors=True)
