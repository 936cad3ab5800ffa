"""DAGMan's knobs from the DAG's CONFIG file, honoured by the one engine on every site; judged from the files
the jobs and scripts write (DAGMAN_ALWAYS_RUN_POST against a DAG recorded on the real pool)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from iceprod_dag.common.exceptions import DagSyntaxError
from iceprod_dag.dagman.engine.knobs import Knobs, read_knobs
from iceprod_dag.dagman.parser import parse_dag
from iceprod_dag.sites.registry import load_site

TRUTH = Path(__file__).resolve().parent / "data" / "dagman_truth" / "always_run_post"
SITES = ["local", pytest.param("slurm", marks=pytest.mark.slurm)]


def submit(site: str, run: Path, tmp_path: Path, request) -> int | None:  # type: ignore[no-untyped-def]
    options: dict[str, object] = {"db": f"sqlite:///{tmp_path / f'{site}.sqlite'}", "quiet": True}
    if site != "local":
        request.getfixturevalue("slurm_cluster")
        options["poll_interval"] = 0.5
    return load_site(site, options).submit(run, wait=True)


@pytest.mark.parametrize("site", SITES)
def test_always_run_post_as_real_dagman(site: str, tmp_path: Path, request) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    shutil.copytree(TRUTH, run)
    assert submit(site, run, tmp_path, request) == 1  # A's POST passed -1004 on: A failed
    # PRE A and PRE B run at once, on the pool as here: compare without their order
    assert sorted((run / "macros.txt").read_text().splitlines()) == sorted(
        (TRUTH / "truth.txt").read_text().splitlines()
    )
    assert [p.name for p in run.glob("job.*")] == ["job.sub"]  # no job ran
    rescue = (run / "m.dag.rescue001").read_text().splitlines()
    assert "DONE B" in rescue and "DONE A" not in rescue


LIMITED = """\
CONFIG limits.config
JOB A job.sub
JOB B job.sub
JOB C job.sub
JOB D job.sub
SCRIPT PRE ALL_NODES step.sh pre
SCRIPT POST ALL_NODES step.sh post
"""
# a lock folder per kind: mkdir is atomic, so two at once leave a line in overlaps.<kind>
STEP = """\
mkdir lock.$1 2>/dev/null || echo "$*" >> overlaps.$1
sleep 0.3
echo "$*" >> ran.$1
rmdir lock.$1 2>/dev/null
exit 0
"""
JOB = 'executable = /bin/sh\narguments = "step.sh job"\nrequest_memory = 10\nqueue\n'


@pytest.mark.parametrize("site", SITES)
def test_script_and_job_limits_hold(site: str, tmp_path: Path, request) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    run.mkdir()
    (run / "limited.dag").write_text(LIMITED)
    (run / "limits.config").write_text(
        "# DAGMan knobs\nDAGMAN_MAX_PRE_SCRIPTS = 1\ndagman_max_post_scripts = 1\nDAGMAN_MAX_JOBS_SUBMITTED = 1\n"
    )
    (run / "job.sub").write_text(JOB)
    step = run / "step.sh"
    step.write_text("#!/bin/sh\n" + STEP)
    step.chmod(0o755)
    assert submit(site, run, tmp_path, request) == 0
    for kind in ("pre", "job", "post"):
        assert len((run / f"ran.{kind}").read_text().splitlines()) == 4
        assert not (run / f"overlaps.{kind}").exists(), (run / f"overlaps.{kind}").read_text()


def test_config_file_defaults_and_errors(tmp_path: Path) -> None:
    (tmp_path / "a.dag").write_text("JOB A a.sub\n")
    assert read_knobs(parse_dag(tmp_path / "a.dag")) == Knobs(max_pre_scripts=20, max_post_scripts=20)
    (tmp_path / "b.dag").write_text("CONFIG b.config\nJOB A a.sub\n")
    (tmp_path / "b.config").write_text("DAGMAN_ALWAYS_RUN_POST = true\nOTHER_KNOB = 3\n")
    assert read_knobs(parse_dag(tmp_path / "b.dag")).always_run_post
    (tmp_path / "b.config").write_text("\nDAGMAN_MAX_PRE_SCRIPTS = many\n")
    with pytest.raises(DagSyntaxError, match=r"b\.config:2: DAGMAN_MAX_PRE_SCRIPTS must be a whole number"):
        read_knobs(parse_dag(tmp_path / "b.dag"))
