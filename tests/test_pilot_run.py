"""One-shot pilot runs with real processes: success, task failure, resource kills, bad specs, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from iceprod_dag.pilot import exitcodes
from iceprod_dag.pilot.runjob import run_attempt

HOG = "import time; b = b'x' * ({mb} * 1024 * 1024); time.sleep({sleep})"


def hog(mb: int, sleep: float = 10.0) -> list:
    return [
        {
            "name": "hog",
            "executable": sys.executable,
            "args": ["-c", HOG.format(mb=mb, sleep=sleep)],
            "env": {},
        }
    ]


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))


def test_success_resolves_expressions_and_records(pilot_spec, tmp_path):
    spec = pilot_spec(command="echo job=$(job) seed=$(seed) iter=$(iter) env=$A; echo oops >&2", iterations=2)
    with open(spec) as handle:
        data = json.load(handle)
    data["task"]["modules"][0]["env"] = {"A": "$(job)"}
    with open(spec, "w") as handle:
        json.dump(data, handle)
    rec = run_attempt(spec, 4, attempt=1, site="here")
    assert rec["failure"] is None and rec["pilot_exit_code"] == 0
    assert (rec["node"], rec["attempt"], rec["site"], rec["dataset_id"]) == ("gen_4", 1, "here", 20001)
    stdout = (tmp_path / "logs/gen_4/1/stdout").read_text()
    assert stdout == "job=4 seed=4 iter=0 env=4\njob=4 seed=4 iter=1 env=4\n"
    assert rec["stderr_tail"] == ["oops", "oops"]
    assert rec["logs"]["stdout"] == "logs/gen_4/1/stdout"
    on_disk = json.loads((tmp_path / "stats/gen_4.1.json").read_text())
    assert on_disk == rec
    assert "module cmd (iteration 1)" in (tmp_path / "logs/gen_4/1/pilot.log").read_text()
    assert [m["iteration"] for m in rec["modules"]] == [0, 1]
    # the work dir under scratch ($TMPDIR here) is removed afterwards
    assert not [p for p in os.listdir(tmp_path) if p.startswith("gen_4.1.")]


def test_task_failure_is_exit_1_with_stderr_tail(pilot_spec):
    rec = run_attempt(pilot_spec(command="for i in 1 2 3 4 5 6 7; do echo line$i >&2; done; exit 3"), 0)
    assert (rec["failure"], rec["pilot_exit_code"], rec["exit_code"]) == (
        "task_failed",
        exitcodes.TASK_FAILED,
        3,
    )
    assert rec["stderr_tail"] == ["line3", "line4", "line5", "line6", "line7"]
    assert "exit code 3" in rec["error"]


def test_missing_executable_is_a_task_failure(pilot_spec):
    rec = run_attempt(pilot_spec(modules=[{"name": "x", "executable": "/no/such/program"}]), 0)
    assert (rec["failure"], rec["exit_code"]) == ("task_failed", 127)
    assert "/no/such/program" in rec["stderr_tail"][-1]


@pytest.mark.parametrize("use_psutil", [None, False], ids=["psutil", "procfs"])
def test_over_memory_kills_the_tree_and_asks_for_more(pilot_spec, use_psutil):
    started = time.monotonic()
    rec = run_attempt(pilot_spec(modules=hog(200), requirements={"memory_mb": 40}), 2, use_psutil=use_psutil)
    assert time.monotonic() - started < 8, "killed well before the hog's 10 s sleep"
    assert (rec["failure"], rec["pilot_exit_code"]) == ("over_memory", exitcodes.OVER_MEMORY)
    assert rec["memory_limit_mb"] == 50.0
    assert rec["peak_memory_mb"] > 50.0
    assert abs(rec["next_memory_mb"] - 1.5 * rec["peak_memory_mb"]) <= 1  # 1.5 x the peak, rounded up
    assert rec["signal"] in (15, 9)
    assert "limit 50.0 MB" in rec["error"]


def test_inside_the_allowance_survives(pilot_spec):
    # ~35 MB of a 40 MB request: under the request and far under request × 1.25
    rec = run_attempt(pilot_spec(modules=hog(25, 0.5), requirements={"memory_mb": 60}), 0)
    assert rec["failure"] is None, rec["error"]
    # the peak is the kernel's (rusage or cgroup), so it does not depend on how many samples a loaded machine took
    assert 20 < rec["peak_memory_mb"] < 75


def test_memory_override_from_a_retry(pilot_spec):
    spec = pilot_spec(modules=hog(60, 0.3), requirements={"memory_mb": 30})
    assert run_attempt(spec, 0)["failure"] == "over_memory"
    rec = run_attempt(spec, 0, attempt=1, memory_mb=120)
    assert rec["failure"] is None and rec["request"]["memory_mb"] == 120


#: 45 MB in one step, then the first attempt waits to be killed (however late the sampler comes), a retry ends
HOLD_UNTIL_KILLED = (
    "import os, time; b = b'x' * (45 * 1024 * 1024); "
    "time.sleep(60 if os.environ['ICEPROD_ATTEMPT'] == '0' else 0.3)"
)


def test_retry_reads_the_previous_record(pilot_spec):
    modules = [{"name": "hog", "executable": sys.executable, "args": ["-c", HOLD_UNTIL_KILLED], "env": {}}]
    spec = pilot_spec(modules=modules, requirements={"memory_mb": 30})
    first = run_attempt(spec, 1)
    assert (first["failure"], first["memory_limit_mb"]) == ("over_memory", 37.5)
    # whenever the sampler saw it, the peak is over the limit, so the retry asks for over 1.5 x 37.5 MB: its
    # own limit (x 1.25, over 70 MB) holds the hog's ~55 MB
    assert first["peak_memory_mb"] > 37.5
    assert first["next_memory_mb"] >= 1.5 * 37.5
    rec = run_attempt(spec, 1, attempt=1)
    assert rec["failure"] is None and rec["request"]["memory_mb"] == first["next_memory_mb"]


def test_over_time_and_term_then_kill(pilot_spec):
    # the shell and its sleep ignore TERM (ignored signals survive exec): the pilot must follow with KILL
    started = time.monotonic()
    rec = run_attempt(
        pilot_spec(
            command="trap '' TERM; sleep 30", requirements={"walltime_s": 1}, pilot={"kill_grace_s": 0.3}
        ),
        0,
    )
    assert time.monotonic() - started < 10
    assert (rec["failure"], rec["pilot_exit_code"], rec["signal"]) == ("over_time", exitcodes.OVER_TIME, 9)


def test_grandchildren_are_killed_too(pilot_spec, tmp_path):
    # the shell starts a background sleeper that writes its pid; over time kills the whole tree
    rec = run_attempt(pilot_spec(command="sleep 30 & echo $! > $ICEPROD_WORKDIR/../bg.pid; wait",
                                 requirements={"walltime_s": 1}), 0)  # fmt: skip
    assert rec["failure"] == "over_time"
    pid = int((tmp_path / "bg.pid").read_text())
    assert not alive(pid)


def alive(pid: int) -> bool:
    """True if pid runs (a zombie waiting for a container init that never reaps counts as dead)."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return False
        except FileNotFoundError:
            return False
        time.sleep(0.05)
    return True


def test_over_disk(pilot_spec):
    command = "head -c 30000000 /dev/zero > big; sleep 10"
    rec = run_attempt(pilot_spec(command=command, requirements={"disk_mb": 10}), 0)
    assert (rec["failure"], rec["pilot_exit_code"]) == ("over_disk", exitcodes.OVER_DISK)
    assert rec["peak_disk_mb"] > 10


def test_bad_spec_is_permanent(tmp_path, pilot_spec):
    bad = tmp_path / "specs" / "broken.json"
    bad.parent.mkdir(exist_ok=True)
    bad.write_text("{not json")
    rec = run_attempt(str(bad), 1)
    assert (rec["failure"], rec["pilot_exit_code"], rec["node"]) == (
        "config",
        exitcodes.PERMANENT,
        "broken_1",
    )
    assert "not valid JSON" in rec["error"]
    rec = run_attempt(pilot_spec(command="echo $(nosuchparameter)"), 0)
    assert rec["pilot_exit_code"] == exitcodes.PERMANENT and "nosuchparameter" in rec["error"]
    rec = run_attempt(pilot_spec(command="true"), 99)
    assert rec["pilot_exit_code"] == exitcodes.PERMANENT and "outside" in rec["error"]


def test_cli_exit_code_and_default_paths(pilot_spec, tmp_path):
    spec = pilot_spec(command="exit 1", name="fail")
    done = subprocess.run(
        [sys.executable, "-m", "iceprod_dag.pilot", "run", "--spec", spec, "--job", "2", "--attempt", "3"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == exitcodes.TASK_FAILED, done.stderr
    assert json.loads((tmp_path / "stats/fail_2.3.json").read_text())["failure"] == "task_failed"
    assert (tmp_path / "logs/fail_2/3/pilot.log").exists()
    done = subprocess.run(
        [sys.executable, "-m", "iceprod_dag.pilot", "run", "--job", "x"], capture_output=True
    )
    assert done.returncode == exitcodes.PERMANENT


def test_sigterm_to_the_pilot_kills_the_job_and_records_it(pilot_spec, tmp_path):
    spec = pilot_spec(command=f"sleep 30 & echo $! > {tmp_path}/bg.pid; sleep 30", name="long")
    pilot = subprocess.Popen([sys.executable, "-m", "iceprod_dag.pilot", "run", "--spec", spec, "--job", "0"])
    deadline = time.monotonic() + 10
    while not (tmp_path / "bg.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)
    started = time.monotonic()
    pilot.send_signal(signal.SIGTERM)
    assert pilot.wait(timeout=20) == exitcodes.PILOT_ERROR
    assert time.monotonic() - started < 10
    rec = json.loads((tmp_path / "stats/long_0.0.json").read_text())
    assert rec["failure"] == "killed" and "signal 15" in rec["error"]
    assert not alive(int((tmp_path / "bg.pid").read_text()))
