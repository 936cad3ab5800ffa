"""One DAG engine on every site: the same hand-written DAG (PRE/POST, RETRY, a failing node, a FINAL node, the
halt file) runs on the local site and on Slurm with the same outcome, judged from the files its jobs and
scripts write, not from any engine's logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iceprod_dag.common import names
from iceprod_dag.plugins.batch import state as st
from iceprod_dag.sites.registry import load_site

DAG = """\
JOB A job.sub
JOB B job.sub
JOB C job.sub
JOB D job.sub
FINAL F job.sub
VARS A name="A"
VARS B name="B"
VARS C name="C"
VARS D name="D"
VARS F name="F"
SCRIPT PRE B step.sh pre $JOB $RETRY
SCRIPT POST B step.sh post $JOB $RETURN
SCRIPT POST F step.sh final $JOB $DAG_STATUS $FAILED_COUNT
RETRY B 2
RETRY C 1
PARENT A CHILD B C
PARENT B C CHILD D
"""
SUBMIT = 'executable = /bin/sh\narguments = "job.sh $(name)"\nrequest_memory = 10\nqueue\n'
# each attempt counts itself in attempts.NODE; B fails its first attempt, C every attempt
JOB = """\
n=$(( $(cat attempts.$1 2>/dev/null || echo 0) + 1 ))
echo $n > attempts.$1
case "$1" in
  B) [ $n -ge 2 ] || exit 3 ;;
  C) exit 5 ;;
esac
exit 0
"""
# scripts log their arguments, one file per kind and node; a POST passes the job's $RETURN on
STEP = """\
echo "$*" >> steps.$1.$2
[ "$1" = post ] && exit $3
exit 0
"""


def write_run(run: Path) -> None:
    run.mkdir()
    (run / "diff.dag").write_text(DAG)
    (run / "job.sub").write_text(SUBMIT)
    (run / "job.sh").write_text(JOB)
    step = run / "step.sh"
    step.write_text("#!/bin/sh\n" + STEP)
    step.chmod(0o755)


def outcome(run: Path) -> dict[str, object]:
    """What happened, from the files the jobs and scripts wrote."""
    attempts = {p.name.split(".", 1)[1]: int(p.read_text()) for p in run.glob("attempts.*")}
    steps = {p.name.split(".", 1)[1]: p.read_text().splitlines() for p in run.glob("steps.*")}
    return {"attempts": attempts, "steps": steps}


def run_on(site: str, run: Path, tmp_path: Path) -> tuple[int | None, dict[str, object]]:
    options: dict[str, object] = {"db": f"sqlite:///{tmp_path / f'{site}.sqlite'}", "quiet": True}
    if site != "local":
        options["poll_interval"] = 0.5
    status = load_site(site, options).submit(run, wait=True)
    return status, outcome(run)


#: what DAGMan does with this DAG: B's PRE runs before each of its 2 attempts, its POST passes 3 then 0 on;
#: C fails both attempts, so D never runs; the FINAL node sees $DAG_STATUS 2 (a node failed), 1 failed node,
#: and its success makes the DAG's exit status 0
EXPECTED = {
    "attempts": {"A": 1, "B": 2, "C": 2, "F": 1},
    "steps": {
        "pre.B": ["pre B 0", "pre B 1"],
        "post.B": ["post B 3", "post B 0"],
        "final.F": ["final F 2 1"],
    },
}


def test_the_local_site_runs_the_dag_as_dagman_does(tmp_path: Path) -> None:
    run = tmp_path / "local"
    write_run(run)
    assert run_on("local", run, tmp_path) == (0, EXPECTED)


@pytest.mark.slurm
def test_slurm_and_local_give_the_same_outcome(slurm_cluster, tmp_path: Path) -> None:
    local, slurm = tmp_path / "local", tmp_path / "slurm"
    write_run(local)
    write_run(slurm)
    assert run_on("slurm", slurm, tmp_path) == run_on("local", local, tmp_path) == (0, EXPECTED)
    state = st.load(slurm)  # and the attempts were Slurm jobs
    assert (
        state is not None and len(state.node("C").jobs) == 2 and len(set(state.node("B").jobs.values())) == 2
    )


HALTING_DAG = """\
JOB A a.sub
JOB B b.sub
SCRIPT POST A /bin/sh post.sh
SCRIPT PRE B /bin/sh pre.sh
PARENT A CHILD B
"""
SH = "executable = /bin/sh\narguments = \"-c '{cmd}'\"\nrequest_memory = 10\nqueue\n"


@pytest.mark.parametrize("site", ["local", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_the_halt_file_holds_back_new_work_on_every_site(site: str, tmp_path: Path, request) -> None:  # type: ignore[no-untyped-def]
    """Halted by node A's own job (as HTCondor's test does): A finishes and its POST script runs, B's PRE script
    does not; with nothing running the DAG ends halted. Submitting again removes the file and goes on."""
    if site == "slurm":
        request.getfixturevalue("slurm_cluster")
    run = tmp_path / "run"
    run.mkdir()
    (run / "test.dag").write_text(HALTING_DAG)
    (run / "a.sub").write_text(SH.format(cmd="touch test.dag.halt; sleep 0.3; echo A >> order.txt"))
    (run / "b.sub").write_text(SH.format(cmd="echo B >> order.txt"))
    (run / "post.sh").write_text("echo postA >> order.txt\n")
    (run / "pre.sh").write_text("echo preB >> order.txt\n")
    assert run_on(site, run, tmp_path)[0] == 1  # DAGMan's EXIT_ERROR for a halted DAG
    assert (run / "order.txt").read_text().split() == ["A", "postA"]
    assert (run / "test.dag.halt").exists() and (run / "test.dag.rescue001").exists()
    assert json.loads((run / names.RUN_INFO).read_text())["halted"] is True
    assert run_on(site, run, tmp_path)[0] == 0
    assert (run / "order.txt").read_text().split() == ["A", "postA", "preB", "B"]
    assert not (run / "test.dag.halt").exists()
