"""Process-tree sampling (psutil and /proc agree on a real tree), disk use, nvidia-smi parsing, records."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from iceprod_dag.pilot import record
from iceprod_dag.pilot.monitor import (
    ProcBackend,
    Sampler,
    UsageStats,
    dir_size_mb,
    parse_gpu_apps,
    parse_gpu_util,
)

TREE = (
    "import subprocess, sys, time\n"
    "b = b'x' * (30 * 1024 * 1024)\n"
    "child = subprocess.Popen([sys.executable, '-c', \"b = b'y' * (20 * 1024 * 1024); import time; time.sleep(5)\"])\n"
    "time.sleep(5)\n"
)


@pytest.fixture
def tree():
    proc = subprocess.Popen([sys.executable, "-c", TREE], start_new_session=True)
    time.sleep(0.6)
    yield proc.pid
    os.killpg(proc.pid, 9)
    proc.wait()


@pytest.mark.parametrize("use_psutil", [True, False], ids=["psutil", "procfs"])
def test_tree_usage(tree, use_psutil):
    sampler = Sampler(use_psutil=use_psutil)
    assert sampler.backend_name == ("psutil" if use_psutil else "proc")
    deadline = time.monotonic() + 5  # until both have allocated (slow on a loaded machine)
    while True:
        usage = sampler.sample([tree])[tree]
        if (len(usage.pids) == 2 and usage.rss_mb > 55) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(usage.pids) == 2, "the parent and its child"
    assert 55 < usage.rss_mb < 120
    assert usage.pss_mb is not None and 40 < usage.pss_mb <= usage.rss_mb + 1
    assert usage.memory_mb == usage.pss_mb
    assert usage.cpu_user_s + usage.cpu_sys_s > 0
    assert sampler.sample([999999999]) == {999999999: sampler.sample([999999999])[999999999]}


def test_session_members_count_after_reparenting():
    # the middle shell exits at once; its background sleeper is reparented away but stays in the session
    proc = subprocess.Popen(["/bin/sh", "-c", "(sleep 3 &) ; sleep 3"], start_new_session=True)
    try:
        time.sleep(0.3)
        usage = Sampler(use_psutil=False).sample([proc.pid])[proc.pid]
        assert len(usage.pids) >= 2
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def test_usage_stats_peaks_and_averages():
    from iceprod_dag.pilot.monitor import TreeUsage

    stats = UsageStats()
    stats.add(TreeUsage([1], rss_mb=10, pss_mb=8), disk_mb=1.0, gpu=(100.0, 50.0))
    stats.add(TreeUsage([1], rss_mb=30, pss_mb=None), disk_mb=3.0, gpu=(None, 70.0))
    assert (stats.peak_rss_mb, stats.peak_pss_mb, stats.peak_memory_mb) == (30, 8, 30)
    assert (stats.avg_rss_mb, stats.peak_disk_mb, stats.peak_gpu_mem_mb, stats.avg_gpu_util) == (
        20,
        3,
        100,
        60,
    )


def test_dir_size(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(os.urandom(2 * 1024 * 1024))
    os.symlink("/usr", tmp_path / "link")
    assert 1.9 < dir_size_mb(str(tmp_path)) < 2.5


def test_nvidia_smi_parsing():
    apps = "1234, 500\n99, 1000\n1235, 250 MiB\n"
    assert parse_gpu_apps(apps, [1234, 1235]) == 750.0
    assert parse_gpu_apps(apps, [7]) is None
    assert parse_gpu_util("30\n50\n") == 40.0 and parse_gpu_util("") is None


def test_proc_backend_reads_itself():
    backend = ProcBackend()
    assert backend.table()[os.getpid()] == (os.getppid(), os.getsid(0))
    user, system, rss = backend.usage(os.getpid())
    assert user + system > 0 and rss > 5


def test_record_helpers(tmp_path):
    assert record.next_request(100.1, None) == 151 and record.next_request(100.0, 120.0, 2.0) == 240
    assert record.next_request(None, None) is None
    lines = tmp_path / "err"
    lines.write_text("".join(f"line {i}\n" for i in range(100000)))
    assert record.tail_lines(str(lines), 3) == ["line 99997", "line 99998", "line 99999"]
    assert record.tail_lines(str(tmp_path / "none"), 3) == []
    rec = record.new_record("d", 1, "t", 2, 3, "s")
    rec.update(wall_s=2.0, cpu_user_s=1.0, cpu_sys_s=0.5, request={"cpus": 1}, peak_memory_mb=10.0)
    record.finish(rec, "over_memory", "too big")
    assert (rec["pilot_exit_code"], rec["cpu_efficiency"], rec["next_memory_mb"]) == (5, 0.75, 15)
    rec = record.new_record("d", 1, "t", 2, 3, "s")
    rec.update(wall_s=61.0, request={"walltime_s": 60}, start=100.0, submitted=90.0)
    record.finish(rec, "over_time", "too long", factor=2.0)
    assert (rec["next_walltime_s"], rec["next_memory_mb"], rec["queue_s"]) == (122, None, 10.0)
    record.write(str(tmp_path / "s" / "r.json"), rec)
    assert record.read(str(tmp_path / "s" / "r.json")) == rec
