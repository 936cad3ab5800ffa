"""Failure triage: the fields each attempt's record holds, `iceprod-dag stats RUN`, and their stats DB columns."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from iceprod_dag.pilot.runjob import run_attempt
from iceprod_dag.stats.summary import first_line, p95, spread

#: first attempts hold their memory until the pilot kills them: no race with the sampler, whatever pytest's own
#: size does to the child's inherited ru_maxrss; a retry ends at once
HOG = (
    "import os, time; b = bytearray({mb} * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); "
    "time.sleep(60 if os.environ['ICEPROD_ATTEMPT'] == '0' else 0)"
)


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iceprod-dag", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def run_dir(pilot_spec, tmp_path, monkeypatch) -> Path:
    """A run folder with real records: 3 good jobs, 2 killed over memory (one retried), 1 failing task."""
    monkeypatch.setenv("ICEPROD_SUBMITTED", "1000.0")  # the batch system's submit time, as a site sets it
    good = pilot_spec(command="true", name="good")
    hog = [{"name": "hog", "executable": sys.executable, "args": ["-c", HOG.format(mb=100)], "env": {}}]
    hungry = pilot_spec(modules=hog, requirements={"memory_mb": 40}, name="hungry")
    bad = pilot_spec(command="echo 'no such input' >&2; exit 3", name="bad")
    for job in range(3):
        run_attempt(good, job)
    for job in range(2):
        run_attempt(hungry, job)
    run_attempt(hungry, 0, attempt=1, memory_mb=400)  # as a batch site passes it: --memory-mb
    run_attempt(bad, 0)
    return tmp_path


def test_records_hold_the_triage_fields(run_dir):
    killed = json.loads((run_dir / "stats/hungry_1.0.json").read_text())
    assert killed["failure"] == "over_memory" and killed["signal"] in (None, 9, 15)
    assert killed["host"] and killed["memory_limit_mb"] == 50 and killed["walltime_limit_s"] == 60
    assert killed["queue_s"] > 0 and killed["submitted"] == 1000.0
    retried = json.loads((run_dir / "stats/hungry_0.1.json").read_text())
    assert retried["failure"] is None and retried["request"]["memory_mb"] == 400
    assert killed["next_memory_mb"] >= 1.5 * killed["peak_memory_mb"] - 0.01  # the peak shown is rounded
    failed = json.loads((run_dir / "stats/bad_0.0.json").read_text())
    assert (failed["failure"], failed["exit_code"]) == ("task_failed", 3)


def test_stats_run_json(run_dir):
    proc = cli("stats", str(run_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    records = [json.loads(p.read_text()) for p in (run_dir / "stats").glob("*.json")]
    assert (summary["attempts"], summary["jobs"], summary["failed_attempts"]) == (7, 6, 3)
    failed_wall = sum(r["wall_s"] for r in records if r["failure"])
    assert summary["badput_s"] == pytest.approx(failed_wall)
    assert summary["badput_share"] == pytest.approx(failed_wall / sum(r["wall_s"] for r in records))
    hungry = summary["tasks"]["hungry"]
    assert (hungry["jobs"], hungry["attempts"], hungry["retries"], hungry["succeeded"]) == (2, 3, 1, 1)
    peaks = [r["peak_memory_mb"] for r in records if r["task"] == "hungry"]
    assert hungry["peak_memory_mb"]["max"] == max(peaks) and hungry["peak_memory_mb"]["min"] == min(peaks)
    assert hungry["peak_memory_mb_request"]["min"] == 40 and hungry["failures"] == {"over_memory": 2}
    assert summary["tasks"]["good"]["peak_memory_mb"]["min"] > 0, "trivial jobs record a peak too"
    groups = {(g["category"], g["error"]): g for g in summary["failures"]}
    # caught by a sample or by the kernel's peak afterwards: the same first line, numbers aside
    assert groups[("over_memory", "memory # MB, limit # MB")]["count"] == 2
    assert groups[("task_failed", "module cmd (iteration #) failed with exit code #")]["tasks"] == ["bad"]


def test_stats_run_text_and_bad_input(run_dir, tmp_path):
    proc = cli("stats", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    assert "badput" in proc.stdout and "hungry: 2 jobs, 3 attempts, 1 retries" in proc.stdout
    (run_dir / "stats/broken.json").write_text("{")
    proc = cli("stats", str(run_dir))
    assert proc.returncode == 2 and "broken.json" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("stats", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "no such run folder" in proc.stderr


def test_triage_fields_reach_the_stats_db(run_dir, tmp_path):
    db = tmp_path / "stats.db"
    proc = cli("import-stats", str(run_dir), "--db", f"sqlite:///{db}")
    assert proc.returncode == 0, proc.stderr
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "select failure, error, peak_memory_mb, peak_memory_source, memory_limit_mb, walltime_limit_s,"
            " queue_s, next_memory_mb from attempts where failure = 'over_memory'"
        ).fetchall()
    assert len(rows) == 2
    for _failure, error, peak, source, limit, walltime, queue, nxt in rows:
        assert error.startswith("memory ") and peak > limit == 50 and source and walltime == 60
        assert queue > 0 and nxt >= 1.5 * 50


def test_summary_helpers():
    assert p95([float(i) for i in range(1, 101)]) == 95.0 and p95([3.0]) == 3.0
    assert spread([None, 2.0, 4.0]) == {"min": 2.0, "mean": 3.0, "p95": 4.0, "max": 4.0}
    assert spread([None]) is None
    assert first_line("memory 87.2 MB, limit 50.0 MB\nmore") == "memory # MB, limit # MB"
    assert (
        first_line("memory 87.2 MB, limit 50.0 MB (the kernel's peak, rusage)") == "memory # MB, limit # MB"
    )
