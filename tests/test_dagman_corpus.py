"""The DAGMan conformance corpus replayed on our sites and compared with what the real DAGMan did.

tests/dagman_corpus/ holds hand-written cases (cases/<name>/case.dag) and a seeded generator of 200 more
(gen-NNN); ``scripts/record-dagman-truth.py`` ran each on the real HTCondor pool and committed its
``truth.json``: per node state, attempts and PRE/JOB/POST steps with exit codes (as the jobs and scripts
wrote them in steps.log), the DAG edges whose order was observed, the concurrency of MAXJOBS categories,
DAGMan's exit status and the rescue DAG's DONE lines. Here the local site replays every recorded case (in
parallel processes), Slurm and Grid Engine a sample, and the pool itself a few, so the recording stays honest.
A case without a recording is skipped with that reason; a known disagreement is a strict xfail naming it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from dagman_corpus import corpus

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import IceprodDagError
from iceprod_dag.sites.registry import load_site

JOB_UID = 2000
CASES = corpus.case_names()

# Where the local engine disagrees with the recorded DAGMan, and why (each a strict xfail).
KNOWN: dict[str, str] = {
    "macros_not_whole_word": "DAGMan 23.9 expands a script macro only as a whole argument (ret=$RETURN stays); "
    "the engine expands it inside words",
}

# Where a batch site (Slurm, Grid Engine) disagrees while the local site agrees.
BATCH_KNOWN: dict[str, str] = {
    "final_rescues_exit": "the batch site writes no rescue DAG when a successful FINAL node makes a failed DAG "
    "exit 0 (DAGMan and the local site write one, without the failed node's DONE)",
}

SAMPLE = [
    "retry_succeeds_second",
    "pre_fails_uses_retry",
    "post_fail_reruns_node",
    "abort_beats_retry",
    "final_rescues_exit",
    "rescue_done_lines",
]
LIVE = ["abort_beats_retry", "final_rescues_exit", "pre_skip"]


def _marks(case: str, known: dict[str, str]) -> list[pytest.MarkDecorator]:
    if corpus.truth(case) is None:
        return [pytest.mark.skip(reason=f"{case}: no truth.json recorded on the pool yet")]
    if case in known:
        return [pytest.mark.xfail(strict=True, reason=known[case])]
    return []


def _params(cases: list[str], known: dict[str, str] = KNOWN) -> list[Any]:
    return [pytest.param(c, marks=_marks(c, known), id=c) for c in cases]


def _replay(site_name: str, case: str, dest: Path, options: dict[str, Any], uid: int | None = None) -> Any:
    run = corpus.materialize(case, dest, uid)
    if uid is not None:
        for sub in (names.BATCH_DIR, names.BATCH_EXIT_DIR, names.BATCH_OUT_DIR, names.BATCH_SCRIPTS_DIR):
            (run / sub).mkdir(exist_ok=True)
            os.chown(run / sub, uid, -1)
    site = load_site(site_name, {**options, "dag_file": str(run / corpus.DAG), "quiet": True})
    try:
        status = site.submit(run, wait=True)
    except IceprodDagError as exc:  # a refused DAG: agrees only where DAGMan refused it too
        return corpus.comparable({"refused": str(exc)}, case)
    return corpus.comparable(corpus.outcome(run, status or 0), case)


def _local(case: str, dest: str) -> Any:
    return _replay("local", case, Path(dest), {"db": f"sqlite:///{Path(dest) / (case + '.sqlite')}"})


@pytest.fixture(scope="module")
def local_results() -> Iterator[dict[str, Any]]:
    """Every recorded case run on the local site, two at a time in worker processes (the engine is
    a process, jobs are trivial): {case: outcome or the error}."""
    dest = tempfile.mkdtemp(prefix="iceprod-corpus-")
    todo = [c for c in CASES if corpus.truth(c) is not None]
    with ProcessPoolExecutor(max_workers=4) as pool:
        futures = {c: pool.submit(_local, c, dest) for c in todo}
        results = {}
        for c, f in futures.items():
            try:
                results[c] = f.result(timeout=300)
            except Exception as exc:  # reported by the case's own test
                results[c] = f"error: {type(exc).__name__}: {exc}"
    yield results
    shutil.rmtree(dest, ignore_errors=True)


def _expected(case: str) -> dict[str, Any]:
    truth = corpus.truth(case)
    assert truth is not None
    truth.pop("recorded_on", None)
    return corpus.comparable(truth, case)


@pytest.mark.parametrize("case", _params(CASES))
def test_local_agrees_with_dagman(case: str, local_results: dict[str, Any]) -> None:
    assert local_results[case] == _expected(case)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder batch jobs (Grid Engine's run as htcuser) can reach; pytest's tmp folders are root's."""
    path = Path(tempfile.mkdtemp(prefix="iceprod-corpus-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slurm
@pytest.mark.parametrize("case", _params(SAMPLE, {**KNOWN, **BATCH_KNOWN}))
def test_slurm_agrees_with_dagman(case: str, slurm_cluster: object, shared_dir: Path) -> None:
    options = {"poll_interval": 0.5, "db": f"sqlite:///{shared_dir / 's.sqlite'}"}
    assert _replay("slurm", case, shared_dir, options) == _expected(case)


@pytest.mark.sge
@pytest.mark.parametrize("case", _params(SAMPLE, {**KNOWN, **BATCH_KNOWN}))
def test_grid_engine_agrees_with_dagman(case: str, sge_cluster: object, shared_dir: Path) -> None:
    options = {
        "poll_interval": 0.5,
        "submit_as_user": "htcuser",
        "db": f"sqlite:///{shared_dir / 's.sqlite'}",
    }
    assert _replay("sge", case, shared_dir, options, JOB_UID) == _expected(case)


@pytest.mark.condor
@pytest.mark.parametrize("case", [pytest.param(c, id=c) for c in LIVE])
def test_recording_holds_on_the_pool(case: str, condor_pool: dict[str, str], condor_run_root: Path) -> None:
    """The pool still does what truth.json says (run as scripts/record-dagman-truth.py runs it)."""
    import importlib.util
    import time

    if corpus.truth(case) is None:
        pytest.skip(f"{case}: no truth.json recorded on the pool yet")
    spec = importlib.util.spec_from_file_location(
        "record_dagman_truth", Path(__file__).parent.parent / "scripts" / "record-dagman-truth.py"
    )
    assert spec and spec.loader
    recorder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recorder)
    run = corpus.materialize(case, condor_run_root, JOB_UID)
    recorder.submit(run)
    deadline = time.monotonic() + 300
    while (status := corpus.pool_exit_status(run)) is None and time.monotonic() < deadline:
        time.sleep(1)
    assert status is not None, f"{case} did not finish on the pool in 300 s"
    time.sleep(1)
    assert corpus.comparable(corpus.outcome(run, status), case) == _expected(case)
