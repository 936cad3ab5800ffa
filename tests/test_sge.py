"""Grid Engine site: translation against expected files, output parsing, the state table, and a run on the
real one-node Grid Engine (marker `sge`), submitted as a normal user since Grid Engine refuses root's jobs."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest

from iceprod_dag.common.states import JobState
from iceprod_dag.plugins.batch import state as st
from iceprod_dag.plugins.batch.conformance import BatchConformance
from iceprod_dag.plugins.batch.translate import JobGroup
from iceprod_dag.plugins.sge import translate
from iceprod_dag.plugins.sge.states import to_state
from iceprod_dag.sites.conformance import assert_matches_expected
from iceprod_dag.sites.registry import load_site

DATA = Path(__file__).resolve().parent / "data"
EXPECTED = DATA / "expected" / "sge"
SGE_USER = "htcuser"

#: qstat's documented state letter combinations
SGE_STATES = "qw hqw hRwq t r Rr Rt s ts S tS T tT Eqw Ehqw dr dt dRr dRt ds dS dT".split()

QSTAT_XML = """<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <job_list state="running">
      <JB_job_number>12</JB_job_number><JAT_prio>0.55500</JAT_prio><JB_name>gen.0</JB_name>
      <JB_owner>htcuser</JB_owner><state>r</state><slots>1</slots><tasks>1</tasks>
    </job_list>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>12</JB_job_number><state>qw</state><tasks>2-3:1</tasks>
    </job_list>
    <job_list state="pending">
      <JB_job_number>13</JB_job_number><state>hqw</state>
    </job_list>
    <job_list state="pending">
      <JB_job_number>14</JB_job_number><state>Eqw</state>
    </job_list>
  </job_info>
</job_info>
"""

QACCT = """==============================================================
qname        all.q
hostname     vm
jobname      gen.0
jobnumber    12
taskid       2
failed       0
exit_status  0
ru_wallclock 1s
maxvmem      10.5M
==============================================================
qname        all.q
jobname      flaky_0.0
jobnumber    13
taskid       undefined
failed       30  : application error returned
exit_status  100
"""


class TestSgeConformance(BatchConformance):
    site_name = "sge"
    native_states = SGE_STATES

    def submit_output_sample(self, group: JobGroup) -> str:
        return f"4242.1-{len(group.requests)}:1\n"


@pytest.mark.parametrize("index", [0, 1], ids=["single-with-dependencies", "array-with-gpus"])
def test_job_scripts_match_expected_files(index: int) -> None:
    group = BatchConformance().sample_groups()[index]
    assert_matches_expected(EXPECTED / f"{group.name}.sh", load_site("sge").script(group))


def test_requests_map_to_qsub_options() -> None:
    single, wide = BatchConformance().sample_groups()
    opts = translate.qsub_options(single, walltime_margin_s=0, vmem_factor=1.0)
    assert "-hold_jid 101,102" in opts and "-l h_rt=01:30:00" in opts and "-l h_vmem=2048M" in opts
    assert not any(o.startswith("-pe") for o in opts)
    opts = translate.qsub_options(wide, pe="mpi", vmem_factor=2.0)
    # h_vmem is per slot: 2 x 4000 MB over 4 slots
    assert "-t 1-3" in opts and "-pe mpi 4" in opts and "-l h_vmem=2000M" in opts and "-l gpu=1" in opts


def test_failed_attempts_exit_100_so_dependents_stay_held() -> None:
    script = load_site("sge").script(BatchConformance().sample_groups()[0])
    assert '[ "$rc" -eq 0 ] || exit 100' in script


def test_qsub_qstat_and_qacct_output_parsing() -> None:
    assert translate.parse_qsub("77\n", 1, False) == ["77"]
    assert translate.parse_qsub("78.1-3:1\n", 3, True) == ["78.1", "78.2", "78.3"]
    with pytest.raises(ValueError):
        translate.parse_qsub("Unable to run job: denied: host is not a submit host.\n", 1, False)
    assert translate.parse_qstat_xml(QSTAT_XML) == {
        "12.1": "r",
        "12.2": "qw",
        "12.3": "qw",
        "13": "hqw",
        "14": "Eqw",
    }
    rows = translate.parse_qacct(QACCT)
    assert rows["12.2"]["exit_status"] == "0" and rows["13"]["exit_status"] == "100"
    assert translate.dependency_token("78.2", whole_array=False) == "78"


def test_state_table() -> None:
    assert to_state("hqw") is JobState.IDLE  # waiting for -hold_jid parents, not held by a person
    assert to_state("Eqw") is JobState.HELD
    assert to_state("dr") is JobState.CANCELLED
    assert to_state("zz") is JobState.UNKNOWN


# ---------------------------------------------------------------- the real Grid Engine


def _give_to(user: str, path: Path) -> None:
    """The jobs run as `user`: they must read and write the run folder (the product never needs this)."""
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            os.chown(name, pw.pw_uid, pw.pw_gid)


@pytest.fixture
def user_dir():  # type: ignore[no-untyped-def]
    """A folder the job user can reach (pytest's own tmp folders are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="iceprod-sge-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.sge
def test_small_dataset_runs_to_completion_on_grid_engine(
    sge_cluster, small_dataset, user_dir: Path, tmp_path: Path
) -> None:
    run = small_dataset(user_dir)
    for sub in (
        st.state_path(run).parent,
        run / "batch" / "exit",
        run / "batch" / "out",
        run / "batch" / "scripts",
    ):
        sub.mkdir(parents=True, exist_ok=True)
    _give_to(SGE_USER, user_dir)
    db = tmp_path / "stats.db"
    # h_vmem caps address space, so a job asking for far more than its request gets MemoryError from Grid
    # Engine's limit before the pilot sees its resident memory grow: a generous factor lets the pilot's
    # over-memory kill (which records the peak and asks for more on retry) act first, as on the other sites
    options = {"poll_interval": 0.5, "submit_as_user": SGE_USER, "db": f"sqlite:///{db}", "vmem_factor": 8}
    site = load_site("sge", options)
    assert site.submit(run, wait=True) == 0
    status = site.status(run)
    assert status.finished and set(status.counts()) == {"done"}
    recs = {p.stem: json.loads(p.read_text()) for p in (run / "stats").glob("*.json")}
    assert len(recs) == 18
    for job in range(3):
        assert recs[f"flaky_{job}.0"]["exit_code"] != 0 and recs[f"flaky_{job}.1"]["pilot_exit_code"] == 0
        assert recs[f"hungry_{job}.0"]["failure"] == "over_memory"
        assert recs[f"hungry_{job}.1"]["request"]["memory_mb"] == recs[f"hungry_{job}.0"]["next_memory_mb"]
        assert recs[f"hungry_{job}.1"]["site"] == "sge"
    assert site.collect(run) == 18
    # qacct writes its record a few seconds after a job ends: collect again until every attempt has one
    deadline = time.monotonic() + 20
    while True:
        site.collect(run)
        with sqlite3.connect(db) as conn:
            ads = conn.execute("select count(*) from job_ads").fetchone()[0]
            attempts = conn.execute("select count(*) from attempts").fetchone()[0]
        if ads >= 18 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert attempts == 18 and ads >= 18
    ad = json.loads((run / "history" / "flaky_0.0.acct.json").read_text())
    assert ad["BatchSystem"] == "sge" and ad["AcctExitStatus"] == "100"
