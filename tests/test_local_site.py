"""The local site as the CLI uses it: registry, compiled runs through the pilot, detach, status, cancel."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from iceprod_dag.common.exceptions import RunNotFoundError
from iceprod_dag.common.states import JobState
from iceprod_dag.sites.conformance import SiteConformance
from iceprod_dag.sites.registry import load_site

DATASET = """\
name: tiny
dataset_id: 9
jobs: {jobs}
tasks:
  - name: gen
    command: "{gen}"
    requirements: {{cpus: 1, memory: "10 MB"}}
  - name: proc
    depends: [gen]
    command: "echo proc $(job)"
    requirements: {{cpus: 1, memory: "10 MB"}}
"""


class TestLocalConformance(SiteConformance):
    site_name = "local"


def compile_run(tmp_path: Path, jobs: int = 3, gen: str = "echo gen $(job)") -> Path:
    (tmp_path / "d.yaml").write_text(DATASET.format(jobs=jobs, gen=gen))
    run = tmp_path / "run"
    subprocess.run(["iceprod-dag", "compile", str(tmp_path / "d.yaml"), "-o", str(run)], check=True)
    return run


def test_compiled_dataset_runs_through_the_pilot_and_records_every_attempt(tmp_path: Path) -> None:
    run = compile_run(tmp_path)
    db = f"sqlite:///{tmp_path / 'stats.sqlite'}"
    site = load_site("local", {"db": db, "quiet": True})
    assert site.submit(run, wait=True) == 0
    assert (run / "dataset.done").exists()  # the FINAL node's PRE script
    for node in ("gen_0", "gen_2", "proc_1"):
        assert (run / "stats" / f"{node}.0.json").exists()
        assert (run / "history" / f"{node}.0.ad").exists()
    assert (run / "logs" / "gen_1" / "0" / "stdout").read_text().strip() == "gen 1"
    with sqlite3.connect(tmp_path / "stats.sqlite") as conn:
        rows = conn.execute("select state, count(*) from attempts group by 1").fetchall()
        ads = conn.execute("select count(*) from job_ads").fetchone()[0]
    assert rows == [("done", 6)] and ads == 6
    status = site.status(run)
    assert status.finished and status.exit_code == 0
    assert status.nodes["proc_2"] is JobState.DONE
    assert site.collect(run) == 0  # everything was recorded during the run already


def test_pilot_failures_are_retried_with_the_next_attempt(tmp_path: Path) -> None:
    flag = tmp_path / "again"  # jobs run in a scratch folder: keep the flag outside it
    run = compile_run(tmp_path, jobs=1, gen=f"test -e {flag} || {{ touch {flag}; exit 1; }}")
    site = load_site("local", {"db": f"sqlite:///{tmp_path / 'stats.sqlite'}", "quiet": True})
    assert site.submit(run, wait=True) == 0
    with sqlite3.connect(tmp_path / "stats.sqlite") as conn:
        q = "select j.node, a.attempt, a.state from attempts a join jobs j on a.job_pk = j.id order by 1, 2"
        rows = conn.execute(q).fetchall()
    assert rows == [("gen_0", 0, "failed"), ("gen_0", 1, "done"), ("proc_0", 0, "done")]


@pytest.mark.slow
def test_detached_run_can_be_followed_and_cancelled(tmp_path: Path) -> None:
    run = compile_run(tmp_path, jobs=4, gen="sleep 30")
    site = load_site("local", {"db": f"sqlite:///{tmp_path / 'stats.sqlite'}", "cpus": 2})
    assert site.submit(run, wait=False) is None
    deadline = time.time() + 30
    while time.time() < deadline:
        nodes = site.status(run).nodes
        if sum(1 for s in nodes.values() if s is JobState.RUNNING) == 2:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the detached engine never ran 2 jobs: {(run / 'local.out').read_text()[-2000:]}")
    assert not site.status(run).finished
    site.cancel(run)
    status = site.status(run)
    assert status.finished and status.exit_code == 2  # DAGMan's exit when removed; a resubmit resumes it
    # the killed jobs; nothing shows as running; 6 nodes and FINAL never started
    assert status.counts() == {"cancelled": 2, "pending": 7}
    assert (run / "dataset.dag.rescue001").exists()


def test_unknown_run_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RunNotFoundError):
        load_site("local").submit(tmp_path / "nope", wait=True)
