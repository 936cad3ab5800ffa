"""Hand-written DAGs that use DAGMan's node macros in their submit files, judged against a real pool.

tests/data/dagman/<case>/ holds a DAG written as Condor users write them (``arguments = "job.sh $(JOB)"``,
``output = $(JOB).out``, a FINAL node reading $(DAG_STATUS) and $(FAILED_COUNT), HTCondor's quoting rules) and
``recorded.json``: what its jobs wrote and DAGMan's exit code when it ran on the real HTCondor pool. The same DAG
then runs on the local site, Slurm and Grid Engine, and must leave the same files with the same contents.

The condor test checks that the recording still holds on the live pool; ``RECORD_DAGMAN=1`` rewrites it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iceprod_dag.common import names
from iceprod_dag.sites.registry import load_site

CASES = Path(__file__).parent / "data" / "dagman"
CASE_DAGS = {"macros": "diamond.dag", "failing": "failing.dag", "quoting": "quoting.dag"}
JOB_UID = 2000  # the pool's job user; Grid Engine's test user is the same htcuser
_DAGMAN_ID = re.compile(r"dagman=(\d*)")


def outcome(run: Path, dag: str, exit_code: int, dagman_job_id: int | None) -> dict[str, Any]:
    """What the DAG's jobs wrote (their *.out and *.err files) and the DAG's exit code, comparable across runs."""

    def normal(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            ok = m.group(1) == "" if dagman_job_id is None else m.group(1) == str(dagman_job_id)
            return "dagman=<DAGManJobId>" if ok else m.group(0)

        return _DAGMAN_ID.sub(one, text)

    files = {
        p.name: normal(p.read_text())
        for p in sorted(run.iterdir())
        if p.is_file() and p.suffix in (".out", ".err") and not p.name.startswith(dag)
    }
    return {"exit_code": exit_code, "files": files}


def recorded(case: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CASES / case / "recorded.json").read_text())
    return data


def _copy_case(case: str, dest: Path, uid: int | None = None) -> Path:
    run = dest / case
    shutil.copytree(CASES / case, run, ignore=shutil.ignore_patterns("recorded.json"))
    shutil.copy2(CASES / "job.sh", run)  # the one script every case's jobs run
    if uid is not None:
        for path in (dest, run, *run.iterdir()):
            os.chown(path, uid, -1)
    return run


# ---- the real pool --------------------------------------------------------------------------------------------


def _run_on_pool(run: Path, dag: str, timeout: float = 300) -> tuple[int, int]:
    """Submit the DAG with condor_submit_dag's own description; (DAGMan's cluster id, its exit code)."""
    import htcondor2  # type: ignore[import-untyped]

    sub = htcondor2.Submit.from_dag(str(run / dag), {"force": True})
    sub["on_exit_remove"] = "true"  # a failed DAG leaves the queue instead of restarting on its rescue DAG
    sub["initialdir"] = str(run)  # DAGMan runs in the DAG's folder (the job user cannot enter ours)
    cluster = int(htcondor2.Schedd().submit(sub).cluster())
    out = run / f"{dag}.dagman.out"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"EXITING WITH STATUS (\d+)", out.read_text()) if out.exists() else None
        if m:
            return cluster, int(m.group(1))
        time.sleep(1)
    htcondor2.Schedd().act(htcondor2.JobAction.Remove, f"ClusterId == {cluster}")
    raise AssertionError(f"{dag} did not finish on the pool within {timeout:g} s")


@pytest.mark.condor
@pytest.mark.parametrize("case", sorted(CASE_DAGS))
def test_recording_holds_on_the_real_pool(
    case: str, condor_pool: dict[str, str], condor_run_root: Path
) -> None:
    run = _copy_case(case, condor_run_root, JOB_UID)
    dag = CASE_DAGS[case]
    cluster, exit_code = _run_on_pool(run, dag)
    got = outcome(run, dag, exit_code, cluster)
    if os.environ.get("RECORD_DAGMAN"):
        (CASES / case / "recorded.json").write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    assert got == recorded(case)


# ---- our sites ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASE_DAGS))
def test_local_site_runs_it_as_the_pool_did(case: str, tmp_path: Path) -> None:
    run = _copy_case(case, tmp_path)
    site = load_site("local", {"db": f"sqlite:///{tmp_path / 'stats.sqlite'}"})
    status = site.submit(run, wait=True)
    info = json.loads((run / "run.json").read_text())
    assert outcome(run, CASE_DAGS[case], status or 0, info["cluster"]) == recorded(case)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder batch jobs (Grid Engine's run as htcuser) can reach; pytest's tmp folders are root's."""
    path = Path(tempfile.mkdtemp(prefix="iceprod-dagman-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slurm
@pytest.mark.parametrize("case", sorted(CASE_DAGS))
def test_slurm_runs_it_as_the_pool_did(case: str, slurm_cluster: object, shared_dir: Path) -> None:
    run = _copy_case(case, shared_dir)
    site = load_site("slurm", {"poll_interval": 0.5, "db": f"sqlite:///{shared_dir / 'stats.sqlite'}"})
    status = site.submit(run, wait=True)
    # a batch site has no DAGMan job: $(DAGManJobId) is undefined there, so it expands to nothing
    assert outcome(run, CASE_DAGS[case], status or 0, None) == recorded(case)


@pytest.mark.sge
@pytest.mark.parametrize("case", sorted(CASE_DAGS))
def test_grid_engine_runs_it_as_the_pool_did(case: str, sge_cluster: object, shared_dir: Path) -> None:
    run = _copy_case(case, shared_dir, JOB_UID)
    for sub in (names.BATCH_DIR, names.BATCH_EXIT_DIR, names.BATCH_OUT_DIR, names.BATCH_SCRIPTS_DIR):
        (run / sub).mkdir(exist_ok=True)
        os.chown(run / sub, JOB_UID, -1)  # the jobs (run as htcuser) write their exit markers there
    options = {
        "poll_interval": 0.5,
        "submit_as_user": "htcuser",
        "db": f"sqlite:///{shared_dir / 's.sqlite'}",
    }
    site = load_site("sge", options)
    status = site.submit(run, wait=True)
    assert outcome(run, CASE_DAGS[case], status or 0, None) == recorded(case)
