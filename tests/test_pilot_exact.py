"""Exact measurements judged against the kernel's own accounting: peaks and CPU of jobs shorter than a sample."""

from __future__ import annotations

import json
import sys

import pytest

from iceprod_dag.pilot import exact
from iceprod_dag.pilot.runjob import run_attempt

#: allocates and touches MB megabytes, burns some CPU, then prints what the kernel says about itself
SELF_REPORT = (
    "import json, resource, sys\n"
    "b = bytearray({mb} * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])\n"
    "n = sum(range({loops}))\n"
    "ru = resource.getrusage(resource.RUSAGE_SELF)\n"
    "print(json.dumps({{'maxrss_mb': ru.ru_maxrss / 1024, 'cpu_s': ru.ru_utime + ru.ru_stime}}))\n"
)


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))


def module(mb: int, loops: int = 0) -> list:
    code = SELF_REPORT.format(mb=mb, loops=loops)
    return [{"name": "alloc", "executable": sys.executable, "args": ["-c", code], "env": {}}]


def no_samples(interval: float = 60.0) -> dict:
    return {"sample_interval_s": interval}


def self_report(tmp_path, job: int) -> dict:
    return json.loads((tmp_path / f"logs/gen_{job}/0/stdout").read_text())


def test_short_job_peak_matches_the_kernel(pilot_spec, tmp_path):
    # 120 MB touched and gone long before the first sample: the record still has the kernel's peak. Without a
    # cgroup that peak is exact only above the pilot's own RSS (a fork starts at the parent's), and this pilot
    # is pytest, whose RSS depends on what ran before: touch 120 MB more than it holds now
    mb = 120 + int(exact.own_hwm_mb() or 0)
    spec = pilot_spec(modules=module(mb), requirements={"memory_mb": mb + 300}, pilot=no_samples())
    rec = run_attempt(spec, 0)
    assert rec["failure"] is None, rec["error"]
    assert rec["samples"] == 0
    own = self_report(tmp_path, 0)
    assert rec["peak_memory_source"] in (exact.CGROUP, exact.RUSAGE)
    assert own["maxrss_mb"] > 120
    # the tree's peak is the process's own peak (one process), within a few MB of page-table/cgroup overhead
    assert abs(rec["peak_memory_mb"] - own["maxrss_mb"]) < 0.1 * own["maxrss_mb"] + 5
    assert rec["peak_rss_mb"] >= 120


def test_trivial_job_records_a_peak(pilot_spec):
    rec = run_attempt(pilot_spec(command="true", pilot=no_samples()), 1)
    assert rec["failure"] is None and rec["samples"] == 0
    assert rec["peak_memory_mb"] > 0 and rec["peak_rss_mb"] > 0
    assert rec["peak_memory_source"] in (exact.CGROUP, exact.RUSAGE, exact.RUSAGE_BOUND)
    assert rec["wall_s"] > 0 and rec["wall_s"] == round(rec["wall_s"], 3)


def test_cpu_is_the_kernels(pilot_spec, tmp_path):
    rec = run_attempt(pilot_spec(modules=module(1, loops=3_000_000), pilot=no_samples()), 2)
    own = self_report(tmp_path, 2)
    assert own["cpu_s"] > 0.02
    # the record's CPU is the reaped tree's (the process itself, measured a moment before it exits)
    assert own["cpu_s"] - 0.01 <= rec["cpu_user_s"] + rec["cpu_sys_s"] <= own["cpu_s"] + 0.2


def test_spike_between_samples_is_over_memory(pilot_spec):
    # 150 MB for a moment, limit 62.5 MB, no sample in between: the kernel's peak convicts it anyway
    spec = pilot_spec(modules=module(150), requirements={"memory_mb": 50}, pilot=no_samples())
    rec = run_attempt(spec, 3)
    assert rec["failure"] == "over_memory", rec
    assert rec["memory_limit_mb"] == 62.5 and rec["next_memory_mb"] >= 1.5 * 150


def test_rusage_threshold():
    assert exact.rusage_peak(150.0, 20.0) == exact.Peak(150.0, exact.RUSAGE, True)
    bound = exact.rusage_peak(20.5, 20.0)
    assert (bound.source, bound.exact, bound.memory_mb) == (exact.RUSAGE_BOUND, False, 20.5)
    hwm = exact.own_hwm_mb()
    assert hwm is not None and hwm > 1


def test_cgroup_peak_and_limit(pilot_spec, tmp_path):
    tree = exact.cgroup_tree()
    if tree is None:
        pytest.skip("no writable cgroup v2 with the memory controller on this host")
    rec = run_attempt(pilot_spec(modules=module(120), requirements={"memory_mb": 400}, pilot=no_samples()), 4)
    assert rec["peak_memory_source"] == exact.CGROUP and rec["peak_memory_mb"] >= 120
    # memory.max is the job's own limit: the kernel kills it there, before any sample
    rec = run_attempt(pilot_spec(modules=module(200), requirements={"memory_mb": 50}, pilot=no_samples()), 5)
    assert rec["failure"] == "over_memory" and rec["peak_memory_mb"] <= 62.5 + 1


def test_resets_keep_the_pilots_own_peak():
    current = exact.own_hwm_mb()  # reset: the high-water mark is the current RSS
    assert current is not None
    big = bytearray(64 * 1024 * 1024)
    big[::4096] = b"x" * len(big[::4096])
    del big
    assert exact.own_hwm_mb() < current + 60  # reset again, below the 64 MB just freed
    assert exact.own_peak_mb() >= current + 60  # yet the pilot's own peak remembers them
