"""Every script macro DAGMan documents, as real DAGMan expands it: the scripts of a recorded DAG (PRE/POST,
RETRY, a failing node, a futile child, a FINAL node) write their arguments, and the local site (and Slurm)
must write what the real pool wrote (tests/data/dagman_truth/script_macros)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from iceprod_dag.sites.registry import load_site

CASE = Path(__file__).resolve().parent / "data" / "dagman_truth" / "script_macros"
#: fields of a script line: kind, then the macros in m.dag's order
FIELDS = ("kind", "JOB", "RETRY", "MAX_RETRIES", "NODE_COUNT", "QUEUED_COUNT", "DONE_COUNT", "FAILED_COUNT",
          "FUTILE_COUNT", "DAGID", "DAG_STATUS", "CLUSTERID", "JOBID", "JOB_COUNT", "JOB_ABORT_COUNT", "SUCCESS",
          "RETURN", "EXIT_CODES", "EXIT_CODE_COUNTS", "PRE_SCRIPT_RETURN")  # fmt: skip


def normalised(text: str) -> list[dict[str, str]]:
    """The lines as field -> value, with the run's own ids replaced after checking how they relate."""
    out = []
    for line in text.splitlines():
        row = dict(zip(FIELDS, line.split(), strict=False))
        dag_id = int(row.pop("DAGID"))
        if "CLUSTERID" in row:
            cluster = int(row.pop("CLUSTERID"))
            assert row.pop("JOBID") == f"{cluster}.0" and cluster > dag_id, line
        out.append(row)
    return out


def run_case(site: str, run: Path, tmp_path: Path) -> int | None:
    shutil.copytree(CASE, run)
    options: dict[str, object] = {"db": f"sqlite:///{tmp_path / f'{site}.sqlite'}", "quiet": True}
    if site != "local":
        options["poll_interval"] = 0.5
    return load_site(site, options).submit(run, wait=True)


def test_the_truth_is_what_the_pool_wrote() -> None:
    truth = normalised((CASE / "truth.txt").read_text())
    assert [(r["kind"], r["JOB"]) for r in truth] == [
        ("PRE", "A"), ("POST", "A"), ("PRE", "B"), ("POST", "B"), ("PRE", "B"), ("POST", "B"), ("POST", "F")
    ]  # fmt: skip


@pytest.mark.parametrize("site", ["local", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_script_macros_match_real_dagman(site: str, tmp_path: Path, request) -> None:  # type: ignore[no-untyped-def]
    if site == "slurm":
        request.getfixturevalue("slurm_cluster")
    run = tmp_path / "run"
    assert run_case(site, run, tmp_path) == 0  # the FINAL node succeeded: DAGMan exited 0
    assert normalised((run / "macros.txt").read_text()) == normalised((CASE / "truth.txt").read_text())
