"""A hand-written DAG on the real pool (.ci/services/htcondor-up.sh): `iceprod-dag submit X.dag --site condor`
with plain submit files running /bin/sh scripts in a folder under /srv/htc that belongs to the job user, then
`iceprod-dag watch` to the end and `iceprod-dag status`. One DAG (about 20 s): a diamond whose node B fails
once and is retried by DAGMan, so the job ads (no IceProdAttempt here) are numbered by their order.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from iceprod_dag.stats.models import Dataset, Job, JobAd

pytestmark = pytest.mark.condor

DIAMOND = Path(__file__).resolve().parent / "data" / "condor" / "diamond"
JOB_UID = 2000


def _cli(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iceprod-dag", *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_hand_written_dag_submit_watch_status(
    tmp_path: Path, condor_pool: dict[str, str], condor_run_root: Path
) -> None:
    env = {**os.environ, **condor_pool, "ICEPROD_DAG_DB": f"sqlite:///{tmp_path / 'stats.sqlite'}"}
    run = condor_run_root / "diamond"
    shutil.copytree(DIAMOND, run)
    for path in (run, *run.iterdir()):
        os.chown(path, JOB_UID, -1)
    # no run_root: the DAG runs where the user wrote it
    site = tmp_path / "site.yaml"
    site.write_text('name: test-pool\ncollector: "127.0.0.1:9618"\n')

    proc = _cli(["submit", str(run / "diamond.dag"), "--site", "condor", "--site-config", str(site)], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(run)
    info = json.loads((run / "run.json").read_text())
    assert info["site"] == "condor" and info["submit_dir"] == str(run)
    assert info["dag"] == str(run / "diamond.dag")

    watch = _cli(["watch", str(run), "--timeout", "180"], env)
    assert watch.returncode == 0, watch.stdout + watch.stderr
    assert "DAG finished with exit status 0" in watch.stdout

    status = _cli(["status", str(run), "--json"], env)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["finished"] and data["exit_code"] == 0
    assert data["nodes"] == {"A": "done", "B": "done", "C": "done", "D": "done"}
    # the jobs ran the user's scripts, in the DAG's order (D checks B's and C's outputs)
    assert (run / "D.out").read_text() == "D done\n"
    assert (run / "B.failed").exists()  # B's first attempt (its output files belong to the retry now)

    # watch collected the job ads: B's two attempts numbered by their order, the first one failed
    assert (run / "history" / "B.0.ad").exists() and (run / "history" / "B.1.ad").exists()
    engine = create_engine(env["ICEPROD_DAG_DB"])
    with engine.connect() as conn:
        rows = conn.execute(
            select(Job.node, JobAd.attempt, JobAd.attributes).join(JobAd, JobAd.job_pk == Job.id)
        ).all()
    ads = {(node, attempt): attrs for node, attempt, attrs in rows}
    assert set(ads) == {("A", 0), ("B", 0), ("B", 1), ("C", 0), ("D", 0)}
    assert ads[("B", 0)]["ExitCode"] == 3 and ads[("B", 1)]["ExitCode"] == 0
    assert all(attrs["DAGNodeName"] == node for (node, _), attrs in ads.items())
    with engine.connect() as conn:  # watch saw DAGMan end: the dataset does not stay `submitted`
        assert conn.execute(select(Dataset.state)).scalars().all() == ["done"]
