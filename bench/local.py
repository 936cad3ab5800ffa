"""Benchmark of the local site against Snakemake's local executor, on the same machine in the same run.

The workload: a dataset of N jobs x two trivial tasks (``gen`` fans out N ways, ``proc`` follows each ``gen``,
and the FINAL node fans them back in), compiled by ``iceprod-dag compile`` and run by the local engine with
every attempt recorded in a SQLite stats database; then Snakemake runs the same N + N ``touch`` jobs.

    python bench/local.py                      # 1,000 + 1,000 jobs, ours vs Snakemake
    python bench/local.py --large 100000       # also ours at 100,000 nodes (no Snakemake there)

Targets (issue 4): ours >= 15x Snakemake's jobs/s; the rate at 100,000 nodes >= 0.8x the rate at 2,000.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASET = """\
name: bench
dataset_id: 1
jobs: {jobs}
tasks:
  - name: gen
    command: "true"
    requirements: {{cpus: 1, memory: "10 MB"}}
  - name: proc
    depends: [gen]
    command: "true"
    requirements: {{cpus: 1, memory: "10 MB"}}
"""

SNAKEFILE = """\
N = int(config.get("njobs", 1000))

rule all:
    input: expand("out/proc_{i}.txt", i=range(N))

rule gen:
    output: "out/gen_{i}.txt"
    shell: "touch {output}"

rule proc:
    input: "out/gen_{i}.txt"
    output: "out/proc_{i}.txt"
    shell: "touch {output}"
"""


def run_ours(work: Path, jobs: int) -> dict[str, float]:
    """Compile and run 2*jobs nodes (+ FINAL) with the local engine; check every attempt is in the DB."""
    from iceprod_dag.plugins.local.runner import run_dag

    run_dir = work / f"ours-{jobs}"
    shutil.rmtree(run_dir, ignore_errors=True)
    (work / "bench.yaml").write_text(DATASET.format(jobs=jobs))
    subprocess.run(
        ["iceprod-dag", "compile", str(work / "bench.yaml"), "-o", str(run_dir)],
        check=True,
        capture_output=True,
    )
    db = run_dir / "stats.sqlite"
    start = time.perf_counter()
    status = run_dag(run_dir, db_url=f"sqlite:///{db}")
    elapsed = time.perf_counter() - start
    with sqlite3.connect(db) as conn:
        recorded = conn.execute("select count(*) from attempts where state = 'done'").fetchone()[0]
    if status != 0 or recorded != 2 * jobs:
        raise SystemExit(f"ours: DAG exit {status}, {recorded} attempts recorded, expected {2 * jobs}")
    return {"jobs": 2 * jobs, "seconds": elapsed, "jobs_per_s": 2 * jobs / elapsed, "recorded": recorded}


def run_snakemake(work: Path, jobs: int, cores: int) -> dict[str, float]:
    snake = shutil.which("snakemake")
    if snake is None:
        raise SystemExit("snakemake is not installed: pip install snakemake (or pass --no-snakemake)")
    wd = work / f"snakemake-{jobs}"
    shutil.rmtree(wd, ignore_errors=True)
    wd.mkdir(parents=True)
    (wd / "Snakefile").write_text(SNAKEFILE)
    cmd = [snake, "-s", "Snakefile", "-d", str(wd), "-j", str(cores), "--quiet", "--config", f"njobs={jobs}"]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=wd, check=True, capture_output=True)
    elapsed = time.perf_counter() - start
    done = len(list((wd / "out").glob("*.txt")))
    if done != 2 * jobs:
        raise SystemExit(f"snakemake: {done} outputs, expected {2 * jobs}")
    return {"jobs": 2 * jobs, "seconds": elapsed, "jobs_per_s": 2 * jobs / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per task (nodes = 2 x jobs + FINAL)")
    parser.add_argument("--large", type=int, default=0, help="also run ours at this many nodes (e.g. 100000)")
    parser.add_argument("--no-snakemake", action="store_true", help="skip the Snakemake side")
    parser.add_argument("--workdir", type=Path, help="where the runs go (default: a temporary folder)")
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-local-", dir=os.environ.get("TMPDIR")))
    work.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0))
    result: dict[str, object] = {"cores": cores, "workdir": str(work)}
    result["ours"] = ours = run_ours(work, args.jobs)
    print(
        f"ours:      {ours['jobs']} jobs in {ours['seconds']:.1f} s = {ours['jobs_per_s']:.1f} jobs/s",
        flush=True,
    )
    if not args.no_snakemake:
        result["snakemake"] = snk = run_snakemake(work, args.jobs, cores)
        result["speedup"] = ours["jobs_per_s"] / snk["jobs_per_s"]
        print(f"snakemake: {snk['jobs']} jobs in {snk['seconds']:.1f} s = {snk['jobs_per_s']:.1f} jobs/s")
        print(f"speedup:   {result['speedup']:.1f}x (target >= 15x)")
    if args.large:
        result["large"] = big = run_ours(work, args.large // 2)
        result["scaling"] = big["jobs_per_s"] / ours["jobs_per_s"]
        print(f"large:     {big['jobs']} jobs in {big['seconds']:.1f} s = {big['jobs_per_s']:.1f} jobs/s")
        print(f"scaling:   {result['scaling']:.2f} of the small rate (target >= 0.8)")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
