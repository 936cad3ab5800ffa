"""Pilot mode with real processes: packing within an envelope, lending memory, killing the most-over job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from iceprod_dag.pilot import exitcodes, limits
from iceprod_dag.pilot.multijob import Pilot, detect_envelope
from iceprod_dag.pilot.spec import Resources
from iceprod_dag.pilot.worksource import DirectoryWorkSource, ListWorkSource, WorkItem

HOG = "import time; b = b'x' * ({mb} * 1024 * 1024); time.sleep({sleep})"


def hog(mb: int, sleep: float) -> list:
    return [{"name": "hog", "executable": sys.executable, "args": ["-c", HOG.format(mb=mb, sleep=sleep)]}]


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))


def max_overlap(records: list) -> int:
    events = sorted([(r["start"], 1) for r in records] + [(r["end"], -1) for r in records])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def run_pilot(items: list, envelope: Resources, lend: bool = False) -> list:
    source = ListWorkSource(items)
    pilot = Pilot(source, envelope, site="test", sample_interval_s=0.05, poll_s=0.05, lend_memory=lend)
    records = pilot.run()
    assert source.records == records and source.finished()
    return sorted(records, key=lambda r: r["job"])


def test_runs_jobs_concurrently_within_the_envelope(pilot_spec):
    spec = pilot_spec(command="sleep 0.5", requirements={"cpus": 1, "memory_mb": 50})
    items = [WorkItem(spec, job) for job in range(4)]
    started = time.monotonic()
    records = run_pilot(items, Resources(cpus=2, memory_mb=1000, disk_mb=None))
    wall = time.monotonic() - started
    assert [r["failure"] for r in records] == [None] * 4
    assert max_overlap(records) == 2, "two cpus: two at a time"
    assert 1.0 <= wall < 4
    records = run_pilot(
        [WorkItem(spec, job, attempt=1) for job in range(4)], Resources(cpus=4, memory_mb=1000)
    )
    assert max_overlap(records) == 4
    assert {r["site"] for r in records} == {"test"} and os.path.exists("stats/gen_3.1.json")


def test_packs_by_memory_too(pilot_spec):
    spec = pilot_spec(command="sleep 0.3", requirements={"cpus": 1, "memory_mb": 300})
    records = run_pilot([WorkItem(spec, job) for job in range(3)], Resources(cpus=8, memory_mb=700))
    assert max_overlap(records) == 2


def test_own_limit_holds_unless_the_site_lends(pilot_spec):
    # 40 MB request (own limit 50 MB) using ~90 MB: killed even in a roomy envelope, unless lending is on
    spec = pilot_spec(modules=hog(80, 0.6), requirements={"memory_mb": 40})
    (rec,) = run_pilot([WorkItem(spec, 0)], Resources(cpus=2, memory_mb=500))
    assert rec["failure"] == "over_memory" and rec["pilot_exit_code"] == exitcodes.OVER_MEMORY
    assert rec["memory_limit_mb"] == 50 and rec["memory_lent_mb"] is None
    assert rec["next_memory_mb"] >= 1.5 * rec["peak_memory_mb"] - 0.01 and rec["peak_memory_mb"] > 50
    (rec,) = run_pilot([WorkItem(spec, 1)], Resources(cpus=2, memory_mb=500), lend=True)
    assert rec["failure"] is None, rec["error"]
    # the record keeps the own limit and says what was lent beyond it: the peak is within the two
    assert rec["memory_limit_mb"] == 50 and rec["memory_lent_mb"] > 20
    assert rec["peak_memory_mb"] > 50
    (rec,) = run_pilot([WorkItem(spec, 2)], Resources(cpus=2, memory_mb=80), lend=True)
    assert rec["failure"] == "over_memory" and rec["pilot_exit_code"] == exitcodes.OVER_MEMORY


def test_exhausted_envelope_kills_the_most_over_job_first(pilot_spec):
    # both stay inside their own limit (175 MB) but together exceed the 290 MB envelope:
    # the one most over its request (A, ~+25 MB) dies, B (~+5 MB) then has room and finishes
    a = pilot_spec(modules=hog(155, 2.0), requirements={"memory_mb": 140}, name="a")
    b = pilot_spec(modules=hog(135, 2.0), requirements={"memory_mb": 140}, name="b")
    records = run_pilot([WorkItem(a, 0), WorkItem(b, 0)], Resources(cpus=2, memory_mb=290))
    by_task = {r["task"]: r for r in records}
    assert by_task["a"]["failure"] == "over_memory", by_task["a"]["error"]
    assert "envelope exhausted" in by_task["a"]["error"]
    assert by_task["b"]["failure"] is None, by_task["b"]["error"]


def test_job_larger_than_the_envelope(pilot_spec):
    spec = pilot_spec(command="true", requirements={"cpus": 8})
    source = ListWorkSource([WorkItem(spec, 0)])
    started = time.monotonic()
    assert Pilot(source, Resources(cpus=2), poll_s=0.05, idle_timeout_s=0.3).run() == []
    assert 0.3 <= time.monotonic() - started < 5 and len(source.items) == 1, "never claimed: idle exit"
    # a source that hands it out anyway gets a permanent failure back
    source = ListWorkSource([WorkItem(spec, 0)], requirements=lambda item: Resources(cpus=0))
    (rec,) = Pilot(source, Resources(cpus=2, memory_mb=1000), poll_s=0.05).run()
    assert rec["pilot_exit_code"] == exitcodes.PERMANENT and "more than the pilot's" in rec["error"]


def test_decide_lending_and_victims():
    view = limits.JobView
    jobs = [view("a", 90, 40, 50), view("b", 10, 40, 50)]
    assert limits.decide(jobs, None)["a"][0] == "over_memory"  # alone: own limit only
    assert limits.decide(jobs, 200)["a"][0] == "over_memory"  # no lending unless the site allows it
    assert limits.decide(jobs, 200, lend=True) == {}  # envelope lends: 200 - max(10, 40) = 160 for a
    assert limits.memory_limits(jobs, 200, lend=True) == {"a": 160, "b": 110}
    assert limits.memory_limits(jobs, 200) == {"a": 50, "b": 50}
    jobs = [view("a", 60, 50, 62.5), view("b", 55, 50, 62.5), view("c", 5, 10, 12.5)]
    kills = limits.decide(jobs, 100, lend=True)
    assert list(kills) == ["a"] and "envelope exhausted" in kills["a"][2]
    assert limits.decide([view("t", 1, None, None, elapsed_s=5, walltime_s=4)])["t"][0] == "over_time"
    assert limits.decide([view("d", 1, None, None, disk_mb=11, disk_limit_mb=10)])["d"][0] == "over_disk"


def test_directory_source_through_the_cli(pilot_spec, tmp_path):
    spec = pilot_spec(command="echo $(job) > /dev/null; sleep 0.2", requirements={"memory_mb": 50})
    source = DirectoryWorkSource(str(tmp_path / "work"))
    for job in range(3):
        source.put(WorkItem(spec, job))
    source.close()
    assert source.claim(Resources(cpus=0.5)) is None, "nothing fits half a cpu"
    done = subprocess.run(
        [sys.executable, "-m", "iceprod_dag.pilot", "--no-psutil", "multi", "--queue", str(tmp_path / "work"),
         "--cpus", "3", "--memory", "1 GB", "--sample-interval", "0.05", "--poll", "0.05", "--site", "dir"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = [json.loads((tmp_path / "work/done" / f"gen_{job}.0.json").read_text()) for job in range(3)]
    assert [r["failure"] for r in records] == [None] * 3
    assert max_overlap(records) == 3
    assert os.listdir(tmp_path / "work/queue") == [] and os.listdir(tmp_path / "work/claimed") == []
    assert source.finished()


def test_detect_envelope():
    env = detect_envelope()
    assert env.cpus >= 1 and env.memory_mb and env.memory_mb > 0 and env.disk_mb and env.disk_mb > 0


def test_wake_claims_at_once_and_signal_jobs(pilot_spec):
    """A source that gets work later wakes the pilot (no waiting for the 10 s poll); the site can signal jobs."""
    spec = pilot_spec(command="sleep 30", requirements={"memory_mb": 10})
    source = ListWorkSource([])
    source.finished = lambda: source.records != []  # type: ignore[method-assign]
    pilot = Pilot(source, Resources(cpus=1, memory_mb=100), poll_s=10, sample_interval_s=0.05)
    thread = threading.Thread(target=pilot.run)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    source.items.append(WorkItem(spec, 0))
    pilot.wake()
    while pilot.signal_jobs(signal.SIGTERM) == 0 and time.monotonic() - started < 5:
        time.sleep(0.02)
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 10
    (rec,) = source.records
    assert (rec["failure"], rec["signal"]) == ("task_failed", signal.SIGTERM)


def test_envelope_time_limits_jobs(pilot_spec):
    # a job without a time limit is bounded by the pilot's time; one asking for more time is not started
    spec = pilot_spec(command="sleep 30", requirements={"walltime_s": None})
    started = time.monotonic()
    (rec,) = run_pilot([WorkItem(spec, 0)], Resources(cpus=1, memory_mb=1000, walltime_s=0.5))
    assert rec["failure"] == "over_time" and time.monotonic() - started < 10
    source = ListWorkSource([WorkItem(pilot_spec(command="true", requirements={"walltime_s": 60}), 0)])
    assert Pilot(source, Resources(cpus=1, walltime_s=0.3), poll_s=0.05).run() == [] and source.items


def test_work_dirs_are_reused_empty_and_removed(pilot_spec, tmp_path):
    spec = pilot_spec(command=f'test ! -e left && mkdir -p left/sub && echo $PWD > "{tmp_path}/wd$(job)"')
    records = run_pilot([WorkItem(spec, job) for job in range(3)], Resources(cpus=1, memory_mb=1000))
    assert [r["failure"] for r in records] == [None] * 3, records[-1]["stderr_tail"]
    dirs = {(tmp_path / f"wd{job}").read_text() for job in range(3)}
    assert len(dirs) == 1, "one cpu: one work dir, reused"
    assert not os.path.exists(dirs.pop().strip()), "removed when the pilot ends"


def test_stop_kills_running_jobs_and_claims_no_more(pilot_spec):
    spec = pilot_spec(command="sleep 30", requirements={"memory_mb": 10})
    source = ListWorkSource([WorkItem(spec, job) for job in range(3)])
    pilot = Pilot(source, Resources(cpus=1, memory_mb=100), poll_s=0.05, sample_interval_s=0.05)
    threading.Timer(0.5, pilot.stop).start()
    started = time.monotonic()
    (rec,) = pilot.run()
    assert time.monotonic() - started < 10
    assert (rec["failure"], rec["pilot_exit_code"]) == ("killed", exitcodes.PILOT_ERROR)
    assert len(source.items) == 2


def test_gpus_are_handed_out_by_id(pilot_spec, tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    spec = pilot_spec(command=f"echo $CUDA_VISIBLE_DEVICES > {tmp_path}/gpu$(job); sleep 0.3",
                      requirements={"gpus": 1})  # fmt: skip
    records = run_pilot([WorkItem(spec, job) for job in range(4)], Resources(cpus=4, memory_mb=1000, gpus=2))
    assert [r["failure"] for r in records] == [None] * 4
    assert max_overlap(records) == 2, "two gpus: two jobs at a time"
    assert sorted((tmp_path / f"gpu{job}").read_text().strip() for job in range(4)) == ["0", "0", "1", "1"]
