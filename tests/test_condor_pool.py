"""The HTCondor site against the real pool (.ci/services/htcondor-up.sh): `iceprod-dag submit --site condor`
on a dataset with a fan-out and fan-in, a failure retried by DAGMan and an over-memory kill retried with a
bigger request; stats records and job ClassAds in the database; remove, hold/release and resubmit.

Each DAG takes about 20-40 s on the tuned pool, so there are only two runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from iceprod_dag.stats.models import Attempt, Job, JobAd

pytestmark = pytest.mark.condor

DATA = Path(__file__).resolve().parent / "data" / "condor"


def _site_config(tmp_path: Path, run_root: Path) -> Path:
    """The shipped local-condor config with this test's own run_root."""
    text = (Path(__file__).resolve().parent.parent / "config" / "sites" / "local-condor.yaml").read_text()
    path = tmp_path / "site.yaml"
    path.write_text(text.replace("run_root: /srv/htc/runs", f"run_root: {run_root}"))
    return path


def _cli(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iceprod-dag", *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def cli_env(condor_pool: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**os.environ, **condor_pool, "ICEPROD_DAG_DB": f"sqlite:///{tmp_path / 'stats.sqlite'}"}


def test_submit_dataset_follow_and_collect(
    tmp_path: Path, condor_run_root: Path, cli_env: dict[str, str]
) -> None:
    run = tmp_path / "run"
    site = _site_config(tmp_path, condor_run_root)
    proc = _cli(
        [
            "submit",
            str(DATA / "fanout.yaml"),
            "--site",
            "condor",
            "--site-config",
            str(site),
            "--run-dir",
            str(run),
            "--wait",
        ],
        cli_env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    info = json.loads((run / "run.json").read_text())
    assert info["site"] == "condor" and info["submit_dir"] == str(condor_run_root / "run")

    status = _cli(["status", str(run), "--json"], cli_env)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["finished"] and data["exit_code"] == 0
    assert data["counts"] == {"done": 8}

    engine = create_engine(cli_env["ICEPROD_DAG_DB"])
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Job.node, Attempt.attempt, Attempt.failure, Attempt.peak_rss_mb, Attempt.request_memory_mb
            ).join(Attempt, Attempt.job_pk == Job.id)
        ).all()
        ads = conn.execute(
            select(Job.node, JobAd.attempt, JobAd.attributes).join(JobAd, JobAd.job_pk == Job.id)
        )
        ads = {(node, attempt): attrs for node, attempt, attrs in ads}
    attempts = {(r.node, r.attempt): r for r in rows}
    # 2 jobs x (gen, merge once; flaky, hungry twice)
    assert len(attempts) == 12
    for job in (0, 1):
        assert attempts[(f"flaky_{job}", 0)].failure == "task_failed"
        assert attempts[(f"flaky_{job}", 1)].failure is None
        first, second = attempts[(f"hungry_{job}", 0)], attempts[(f"hungry_{job}", 1)]
        assert first.failure == "over_memory" and second.failure is None
        # the retry asked for what the killed attempt's record says (1.5x its peak), in the pilot and in
        # HTCondor's request
        record = json.loads((condor_run_root / "run" / "stats" / f"hungry_{job}.0.json").read_text())
        assert record["next_memory_mb"] >= 1.5 * 80 and first.peak_rss_mb > 80
        assert second.request_memory_mb == record["next_memory_mb"]
        assert ads[(f"hungry_{job}", 1)]["RequestMemory"] == pytest.approx(second.request_memory_mb, abs=1)
        assert ads[(f"hungry_{job}", 0)]["ExitCode"] == 5
    assert set(ads) == set(attempts)
    assert all(attrs["DAGNodeName"] == node for (node, _), attrs in ads.items())

    why = _cli(["dag", "why", str(run), "hungry_1"], cli_env)
    assert why.returncode == 0, why.stderr
    assert "state: done" in why.stdout and "IceProdAttempt = 1" in why.stdout
    why = _cli(["dag", "why", str(run), "flaky_0"], cli_env)
    assert "attempt 0" not in why.stdout and "| attempt 1" in why.stdout  # the last attempt's stderr tail


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def test_hold_release_remove_and_resubmit(
    tmp_path: Path, condor_run_root: Path, cli_env: dict[str, str]
) -> None:
    run = tmp_path / "run"
    site = _site_config(tmp_path, condor_run_root)
    proc = _cli(
        [
            "submit",
            str(DATA / "slow.yaml"),
            "--site",
            "condor",
            "--site-config",
            str(site),
            "--run-dir",
            str(run),
            "--detach",
        ],
        cli_env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    def states() -> dict[str, str]:
        out = _cli(["status", str(run), "--json"], cli_env)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    _wait_for(
        lambda: states()["nodes"].get("fast_0") == "done" and states()["nodes"].get("slow_0") == "running",
        120,
        "fast_0 done and slow_0 running",
    )
    assert _cli(["hold", str(run)], cli_env).returncode == 0
    _wait_for(lambda: states()["nodes"]["slow_0"] == "held", 60, "slow_0 held")
    assert "held: " in states()["reasons"]["slow_0"]
    assert _cli(["release", str(run)], cli_env).returncode == 0
    _wait_for(lambda: states()["nodes"]["slow_0"] in ("idle", "running"), 60, "slow_0 released")

    assert _cli(["remove", str(run)], cli_env).returncode == 0
    _wait_for(lambda: states()["finished"], 60, "the removed DAG to end")
    final = states()
    assert final["nodes"]["fast_0"] == "done" and final["nodes"]["slow_0"] != "done"
    submit_dir = condor_run_root / "run"
    # DAGMan writes its rescue DAG on its way out, after the removal is logged: resubmit waits for it

    resubmitted = _cli(["resubmit", str(run), "--wait"], cli_env, timeout=300)
    assert resubmitted.returncode == 0, resubmitted.stdout + resubmitted.stderr
    info = json.loads((run / "run.json").read_text())
    assert len(info["clusters"]) == 2
    # fast_0 completed before the removal: the rescue DAG does not run it again. The resubmitted DAGMan
    # usually starts a new nodes log, but may keep the old one (recovery mode): judge by cluster ids, every
    # node job of the second DAGMan comes after its own cluster
    log = (submit_dir / "dataset.dag.nodes.log").read_text()
    submits = re.findall(r"^000 \((\d+)\.\d+\.\d+\).*\n\s+DAG Node: (\S+)", log, re.MULTILINE)
    second = int(info["clusters"][1])
    rerun = {node for cluster, node in submits if int(cluster) > second}
    assert rerun == {"slow_0"}, submits
    assert "DONE fast_0" in Path(info["rescue"]).read_text()
    # attempt numbers go on after the removed attempt (DAGMan's own retry count starts again at 0)
    assert (submit_dir / "history" / "slow_0.0.ad").exists()
    assert json.loads((submit_dir / "stats" / "slow_0.1.json").read_text())["pilot_exit_code"] == 0
    assert "IceProdAttempt = 1" in (submit_dir / "history" / "slow_0.1.ad").read_text()
    assert json.loads(_cli(["status", str(run), "--json"], cli_env).stdout)["counts"] == {"done": 2}
