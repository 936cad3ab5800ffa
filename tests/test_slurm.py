"""Slurm site: translation against expected files, the state table, the shared batch machinery, and runs on
the real one-node Slurm (marker `slurm`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from iceprod_dag.common.exceptions import ConfigError
from iceprod_dag.common.states import JobState
from iceprod_dag.dagman.parser import parse_dag
from iceprod_dag.plugins.batch import state as st
from iceprod_dag.plugins.batch.conformance import BatchConformance
from iceprod_dag.plugins.batch.jobdesc import JobRequest, node_request
from iceprod_dag.plugins.batch.translate import JobGroup, group_requests, hm, hms
from iceprod_dag.plugins.slurm import translate
from iceprod_dag.plugins.slurm.states import to_state
from iceprod_dag.sites.conformance import assert_matches_expected
from iceprod_dag.sites.registry import load_site

DATA = Path(__file__).resolve().parent / "data"
EXPECTED = DATA / "expected" / "slurm"

#: every state squeue/sacct document for Slurm 22.05
SLURM_STATES = (
    "BOOT_FAIL CANCELLED COMPLETED CONFIGURING COMPLETING DEADLINE FAILED NODE_FAIL OUT_OF_MEMORY PENDING "
    "PREEMPTED RUNNING RESV_DEL_HOLD REQUEUE_FED REQUEUE_HOLD REQUEUED RESIZING REVOKED SIGNALING SPECIAL_EXIT "
    "STAGE_OUT STOPPED SUSPENDED TIMEOUT"
).split()


class TestSlurmConformance(BatchConformance):
    site_name = "slurm"
    native_states = SLURM_STATES

    def submit_output_sample(self, group: JobGroup) -> str:
        return "4242;ci\n"


# ---------------------------------------------------------------- translation


@pytest.mark.parametrize("index", [0, 1], ids=["single-with-dependencies", "array-with-gpus"])
def test_job_scripts_match_expected_files(index: int) -> None:
    group = BatchConformance().sample_groups()[index]
    site = load_site("slurm")
    assert_matches_expected(EXPECTED / f"{group.name}.sh", site.script(group))


def test_requests_map_to_sbatch_options() -> None:
    single, wide = BatchConformance().sample_groups()
    opts = translate.sbatch_options(single, walltime_margin_s=300, partition="debug")
    assert "--cpus-per-task=1" in opts and "--mem=2048M" in opts and "--time=01:35:00" in opts
    assert "--dependency=afterok:101:102" in opts and "--partition=debug" in opts
    opts = translate.sbatch_options(wide)
    assert "--array=1-3" in opts and "--gres=gpu:1" in opts and "--cpus-per-task=4" in opts
    assert not any(o.startswith("--dependency") for o in opts)


def test_sbatch_squeue_and_sacct_output_parsing() -> None:
    assert translate.parse_sbatch("17\n", 1, False) == ["17"]
    assert translate.parse_sbatch("18;ci\n", 3, True) == ["18_1", "18_2", "18_3"]
    with pytest.raises(ValueError, match="no job id"):
        translate.parse_sbatch("sbatch: error: Batch job submission failed\n", 1, False)
    assert translate.parse_squeue("18_1|RUNNING|None\n18_2|PENDING|Dependency\n") == {
        "18_1": ("RUNNING", "None"),
        "18_2": ("PENDING", "Dependency"),
    }
    rows = translate.parse_sacct(
        "21|work.0|COMPLETED|0:0|a|b|00:00:01|localhost\n21.batch|batch|x|0:0|a|b|c|d\n",
        translate.SACCT_FIELDS,
    )
    assert list(rows) == ["21"] and rows["21"]["State"] == "COMPLETED"
    assert translate.dependency_token("18_2", whole_array=False) == "18_2"
    assert translate.dependency_token("18_2", whole_array=True) == "18"


def test_state_table_is_explicit_and_unknown_is_unknown() -> None:
    assert to_state("PENDING") is JobState.IDLE
    assert to_state("CANCELLED by 0") is JobState.CANCELLED
    assert to_state("OUT_OF_MEMORY") is JobState.FAILED
    assert to_state("SOMETHING_NEW") is JobState.UNKNOWN


# ---------------------------------------------------------------- shared batch machinery


def test_submit_description_with_vars_job_and_retry(tmp_path: Path) -> None:
    (tmp_path / "gen.sub").write_text(
        "executable = pilot.pyz\n"
        'arguments = "run --spec specs/gen.json --job $(job) --attempt $(retry)"\n'
        "request_cpus = 2\nrequest_memory = 2 GB\nrequest_disk = 512000\nrequest_gpus = 1\n"
        "output = logs/$(JOB).out\ninitialdir = work\n+IceProdWalltime = 5400\nqueue\n"
    )
    (tmp_path / "x.dag").write_text('JOB gen_3 gen.sub\nVARS gen_3 job="3" retry="$(RETRY)"\n')
    dag = parse_dag(tmp_path / "x.dag")
    req = node_request(dag, "gen_3", 1, tmp_path, site="slurm")
    assert req.argv == (
        "pilot.pyz",
        "run",
        "--spec",
        "specs/gen.json",
        "--job",
        "3",
        "--attempt",
        "1",
        "--site",
        "slurm",
    )
    assert (req.cpus, req.memory_mb, req.disk_mb, req.gpus, req.walltime_s) == (2, 2048, 500, 1, 5400)
    # VARS job="3" is the macro job, and macro names ignore case: $(JOB) is 3 too, as on the real pool
    assert (req.stdout, req.stderr, req.stdin) == ("work/logs/3.out", None, None)
    more = node_request(dag, "gen_3", 2, tmp_path, memory_mb=3000)
    assert more.memory_mb == 3000 and more.argv[-2:] == ("--memory-mb", "3000")


def test_a_submit_description_without_executable_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "bad.sub").write_text("arguments = x\nqueue\n")
    (tmp_path / "x.dag").write_text("JOB n bad.sub\n")
    with pytest.raises(ConfigError, match="no executable") as e:
        node_request(parse_dag(tmp_path / "x.dag"), "n", 0, tmp_path)
    assert e.value.path == str(tmp_path / "bad.sub")


def test_wide_layers_become_arrays_split_at_max_array() -> None:
    def req(node: str) -> JobRequest:
        return JobRequest(node, 0, ("pilot.pyz", "run"))

    items = [(req(f"gen_{i}"), (), ()) for i in range(2500)]
    items += [(req("merge_0"), ("1",), ("gen_0",)), (req("merge_1"), ("2",), ("gen_1",))]
    groups = group_requests(items, "/run", max_array=1000)
    assert [len(g.requests) for g in groups] == [1000, 1000, 500, 1, 1]
    assert groups[3].depends_on == ("1",) and groups[3].parents == ("gen_0",)


def test_time_formats() -> None:
    assert hms(5400) == "01:30:00" and hms(100 * 3600) == "100:00:00"
    assert hm(5400) == "1:30" and hm(61) == "0:02"


def test_rescue_state_round_trips(tmp_path: Path) -> None:
    state = st.RunState(site="slurm", options={"poll_interval": 1})
    state.node("a").status = st.DONE
    state.node("b").jobs["0"] = "17_2"
    st.save(tmp_path, state)
    assert st.load(tmp_path) == state
    assert st.load(tmp_path / "nothing") is None


# ---------------------------------------------------------------- the real Slurm


def _site(db: Path, **options: object):  # type: ignore[no-untyped-def]
    return load_site("slurm", {"poll_interval": 0.5, "db": f"sqlite:///{db}", **options})


def _squeue_ids() -> set[str]:
    out = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


@pytest.mark.slurm
def test_small_dataset_runs_to_completion_on_slurm(slurm_cluster, small_dataset, tmp_path: Path) -> None:
    run = small_dataset()
    site = _site(tmp_path / "stats.db")
    assert site.submit(run, wait=True) == 0
    status = site.status(run)
    assert status.finished and status.exit_code == 0
    assert set(status.counts()) == {"done"}
    recs = {p.stem: json.loads(p.read_text()) for p in (run / "stats").glob("*.json")}
    for job in range(3):
        assert recs[f"flaky_{job}.0"]["exit_code"] != 0 and recs[f"flaky_{job}.1"]["pilot_exit_code"] == 0
        over, retried = recs[f"hungry_{job}.0"], recs[f"hungry_{job}.1"]
        assert over["failure"] == "over_memory" and over["pilot_exit_code"] == 5
        assert retried["request"]["memory_mb"] == over["next_memory_mb"] > 100
        assert retried["site"] == "slurm"
    assert len(recs) == 18  # 3 gen + 6 flaky + 6 hungry + 3 merge
    assert (run / "dataset.done").read_text().startswith("dag_status=0")
    # stats: every pilot record plus the batch accounting of every attempt
    assert site.collect(run) == 18
    assert site.collect(run) == 0
    import sqlite3

    with sqlite3.connect(tmp_path / "stats.db") as db:
        assert db.execute("select count(*) from attempts").fetchone()[0] == 18
        ads = db.execute("select count(*) from job_ads").fetchone()[0]
    assert ads >= 18


@pytest.mark.slurm
def test_cancel_then_resubmit_skips_done_nodes(slurm_cluster, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(DATA / "batch" / "smalldag", run)
    (run / "slow").write_text("")  # work_* sleep while this exists
    site = _site(tmp_path / "stats.db")
    assert site.submit(run) is None  # detached watcher
    info = json.loads((run / "run.json").read_text())
    assert info["site"] == "slurm"

    def gen_done_work_queued() -> bool:
        state = st.load(run)
        return (
            bool(state) and state.node("gen").status == st.DONE and state.node("work_0").status == st.QUEUED
        )

    deadline = time.monotonic() + 60
    while not gen_done_work_queued():
        assert time.monotonic() < deadline, "gen never finished"
        time.sleep(0.5)
    site.cancel(run)
    state = st.load(run)
    assert state is not None and state.finished and state.node("work_0").status == st.WAITING
    queued_ids = {s.job_id for s in state.nodes.values() if s.job_id and s.status == st.QUEUED}
    assert not queued_ids
    gen_jobs = dict(state.node("gen").jobs)
    ours = {j for s in state.nodes.values() for j in s.jobs.values()}
    deadline = time.monotonic() + 20
    while ours & _squeue_ids():  # cancelled running jobs show as completing for a moment
        assert time.monotonic() < deadline, f"still queued after cancel: {ours & _squeue_ids()}"
        time.sleep(0.5)

    (run / "slow").unlink()
    assert site.submit(run, wait=True) == 0
    state = st.load(run)
    assert state is not None and state.submissions == 2
    assert state.node("gen").jobs == gen_jobs  # done before the cancel: not run again
    assert all(s.status == st.DONE for s in state.nodes.values())
    assert (run / "scripts.log").read_text().splitlines() == ["pre merge", "post merge 0"]


@pytest.mark.slurm
def test_cli_submit_status_watch_on_slurm(slurm_cluster, tmp_path: Path) -> None:
    """`iceprod-dag submit --site slurm` returns at once (a watcher follows the run); `status` and `watch`
    work on the run folder as they do for Condor."""
    run = tmp_path / "run"
    shutil.copytree(DATA / "batch" / "smalldag", run)
    env = {**os.environ, "ICEPROD_DAG_DB": f"sqlite:///{tmp_path / 'stats.db'}"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["iceprod-dag", *args], capture_output=True, text=True, timeout=180, env=env)

    proc = cli("submit", str(run / "dataset.dag"), "--site", "slurm")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run / "run.json").read_text())["site"] == "slurm"
    proc = cli("status", str(run), "--json")
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)["nodes"]) == {
        "gen",
        "work_0",
        "work_1",
        "work_2",
        "flaky",
        "hungry",
        "merge",
        "FINAL",
    }
    proc = cli("-q", "watch", str(run), "--timeout", "150")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert (run / "dataset.done").exists()
    proc = cli("status", str(run), "--json")
    assert json.loads(proc.stdout)["counts"] == {"done": 8}
