"""Pilot overhead: the same trivial command run bare and through the pilot, in the same run.

    python3 bench/pilot.py [--jobs 200] [--oneshot-jobs 30] [--command /bin/true]

Measures, one job at a time (so the difference is the pilot's work per job):

- bare: ``subprocess.run(command)``;
- pilot mode in-process (Pilot + ListWorkSource, envelope of 1 cpu);
- pilot mode as its own process from the zipapp (DirectoryWorkSource), with and without psutil,
  reporting the pilot process's peak RSS (ru_maxrss);
- one-shot ``python3 pilot.pyz run`` per job (includes interpreter start-up);
- the exact measurements (issue 14: cgroup v2 memory.peak where the pilot can make cgroups, else the reset
  of the pilot's RSS high-water mark that makes ru_maxrss exact): the in-process pilot mode again with them
  switched off, and the calls alone.

Targets (issues 3 and 14): <= 20 ms extra wall per job in pilot mode, <= 2 ms of it for the exact
measurements, <= 40 MB pilot RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from iceprod_dag.compile.pilotzip import build_zipapp  # noqa: E402
from iceprod_dag.pilot import exact  # noqa: E402
from iceprod_dag.pilot.multijob import Pilot  # noqa: E402
from iceprod_dag.pilot.spec import Resources  # noqa: E402
from iceprod_dag.pilot.worksource import DirectoryWorkSource, ListWorkSource, WorkItem  # noqa: E402

TARGET_EXTRA_MS = 20.0
TARGET_EXACT_MS = 2.0
TARGET_RSS_MB = 40.0

# the pilot's own peak RSS from its VmHWM (kept across the resets exact.py makes before each module):
# ru_maxrss would also count the benchmark's own pages, which Linux carries into a child at its exec
RSS_WRAPPER = (
    "import resource, sys; sys.path.insert(0, sys.argv[1]); "
    "from iceprod_dag.pilot.__main__ import main; from iceprod_dag.pilot import exact; rc = main(sys.argv[2:]); "
    "u = resource.getrusage(resource.RUSAGE_SELF); peak = exact.own_peak_mb() or u.ru_maxrss / 1024.0; "
    "print(peak, (u.ru_utime + u.ru_stime) * 1000); sys.exit(rc)"
)


def write_spec(folder: Path, command: str) -> str:
    spec = {
        "format": 1,
        "dataset": {"name": "bench", "dataset_id": 1, "jobs": 1000000, "parameters": {}},
        "task": {
            "name": "t",
            "modules": [{"name": "m", "executable": command, "args": [], "env": {}}],
            "requirements": {"cpus": 1, "memory_mb": 100, "disk_mb": 100, "walltime_s": 600},
        },
        "pilot": {"sample_interval_s": 1.0},
    }
    path = folder / "specs" / "t.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec))
    return str(path)


def bare(command: str, jobs: int) -> float:
    start = time.perf_counter()
    for _ in range(jobs):
        subprocess.run([command], check=True)
    return (time.perf_counter() - start) / jobs * 1000


def _cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1000


def pilot_in_process(spec: str, jobs: int, folder: Path) -> tuple:
    folder.mkdir(exist_ok=True)
    os.chdir(folder)
    source = ListWorkSource([WorkItem(spec, job) for job in range(jobs)])
    start, cpu = time.perf_counter(), _cpu_ms()
    records = Pilot(source, Resources(cpus=1, memory_mb=4096), sample_interval_s=1.0, poll_s=0.5).run()
    elapsed, cpu = time.perf_counter() - start, _cpu_ms() - cpu
    assert len(records) == jobs and all(r["failure"] is None for r in records), records[:1]
    return elapsed / jobs * 1000, cpu / jobs


def exact_calls(jobs: int) -> float:
    """ms per job of the exact-measurement calls alone (what a job pays besides its spawn and wait4)."""
    tree = exact.cgroup_tree()
    start = time.perf_counter()
    for job in range(jobs):
        if tree is not None:
            path = tree.job(f"bench.{job}", 100.0)
            if path is not None:
                exact.CgroupTree.finish(path)
        exact.rusage_peak(1.0, exact.own_hwm_mb())
    return (time.perf_counter() - start) / jobs * 1000


def without_exact(spec: str, jobs: int, folder: Path) -> tuple:
    """The in-process pilot mode with the exact measurements switched off (samples and plain ru_maxrss)."""
    saved = exact.own_hwm_mb, exact.cgroup_tree
    exact.own_hwm_mb, exact.cgroup_tree = (lambda: None), (lambda: None)  # type: ignore[assignment]
    try:
        return pilot_in_process(spec, jobs, folder / "noexact")
    finally:
        exact.own_hwm_mb, exact.cgroup_tree = saved


def pilot_process(pyz: str, spec: str, jobs: int, folder: Path, psutil: bool) -> tuple:
    queue = folder / ("queue-psutil" if psutil else "queue-proc")
    source = DirectoryWorkSource(str(queue))
    for job in range(jobs):
        source.put(WorkItem(spec, job, attempt=1 if psutil else 2))
    source.close()
    flags = ["-I"] if psutil else ["-I", "-S"]
    cmd = [sys.executable, *flags, "-c", RSS_WRAPPER, pyz, "multi", "--queue", str(queue), "--cpus", "1",
           "--memory", "4096", "--sample-interval", "1", "--poll", "0.5"]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    assert len(os.listdir(queue / "done")) == jobs
    rss, cpu = map(float, done.stdout.split()[-2:])
    return elapsed / jobs * 1000, rss, cpu / jobs


def oneshot(pyz: str, spec: str, jobs: int, folder: Path) -> float:
    start = time.perf_counter()
    for job in range(jobs):
        subprocess.run([sys.executable, "-I", pyz, "run", "--spec", spec, "--job", str(job), "--attempt", "9"],
                       cwd=folder, check=True)  # fmt: skip
    return (time.perf_counter() - start) / jobs * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--oneshot-jobs", type=int, default=30)
    parser.add_argument("--command", default="/bin/true")
    parser.add_argument("--dir", help="where the run folder and scratch live (default: $TMPDIR)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pilot-bench-", dir=args.dir) as tmp:
        folder = Path(tmp)
        spec = write_spec(folder, args.command)
        pyz = build_zipapp(folder / "pilot.pyz")
        os.environ["TMPDIR"] = tmp
        bare(args.command, 10)  # warm up
        base = bare(args.command, args.jobs)
        inproc, cpu_in = pilot_in_process(spec, args.jobs, folder)
        plain, cpu_plain = without_exact(spec, args.jobs, folder)
        inproc2, _ = pilot_in_process(spec, args.jobs, folder / "again")  # the same order effects both ways
        calls = exact_calls(args.jobs)
        proc_ps, rss_ps, cpu_ps = pilot_process(pyz, spec, args.jobs, folder, psutil=True)
        proc_nops, rss_nops, cpu_nops = pilot_process(pyz, spec, args.jobs, folder, psutil=False)
        base_one = bare(args.command, args.oneshot_jobs)
        one = oneshot(pyz, spec, args.oneshot_jobs, folder)
        start = time.perf_counter()
        for _ in range(args.oneshot_jobs):  # the floor of any one-shot wrapper: starting Python itself
            subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)
        python_ms = (time.perf_counter() - start) / args.oneshot_jobs * 1000
    rows = [
        ("pilot mode, in-process", args.jobs, base, inproc, cpu_in),
        ("pilot mode, in-process, no exact peaks", args.jobs, base, plain, cpu_plain),
        ("pilot mode, zipapp process (psutil)", args.jobs, base, proc_ps, cpu_ps),
        ("pilot mode, zipapp process (/proc)", args.jobs, base, proc_nops, cpu_nops),
        ("one-shot `pilot.pyz run`", args.oneshot_jobs, base_one, one, None),
    ]
    load = os.getloadavg()[0]
    print(f"folder: {tmp}; command: {args.command}; cpus: {os.cpu_count()}; load average: {load:.2f}")
    print(f"bare: {base:.2f} ms per job")
    print(f"{'mode':40} {'jobs':>5} {'ms/job':>8} {'extra ms':>9} {'ratio':>6} {'pilot cpu ms/job':>17}")
    for name, jobs, ref, value, cpu in rows:
        cpu_text = "-" if cpu is None else f"{cpu:.2f}"
        print(f"{name:40} {jobs:5d} {value:8.2f} {value - ref:9.2f} {value / ref:6.1f} {cpu_text:>17}")
    print(f"(starting `python3 -I -c pass` alone: {python_ms:.2f} ms)")
    print(
        f"pilot peak RSS: {rss_ps:.1f} MB with psutil, {rss_nops:.1f} MB without (target <= {TARGET_RSS_MB:.0f})"
    )
    exact_ms = (inproc + inproc2) / 2 - plain
    source = "cgroup v2" if exact.cgroup_tree() is not None else "ru_maxrss above the reset high-water mark"
    print(
        f"exact peaks ({source}): {exact_ms:+.2f} ms per job end to end (ratio {(inproc + inproc2) / 2 / plain:.3f}"
        f" to without), {cpu_in - cpu_plain:+.2f} ms of pilot CPU, {calls:.3f} ms per job for the calls alone"
        f" (target <= {TARGET_EXACT_MS:.0f})"
    )
    extra = max(inproc, proc_ps, proc_nops) - base
    within = extra <= TARGET_EXTRA_MS and max(rss_ps, rss_nops) <= TARGET_RSS_MB and calls <= TARGET_EXACT_MS
    verdict = "OK" if within else "OVER TARGET"
    print(f"worst pilot-mode extra: {extra:.2f} ms per job (target <= {TARGET_EXTRA_MS:.0f}): {verdict}")


if __name__ == "__main__":
    main()
