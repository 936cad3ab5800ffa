#!/usr/bin/env python3
"""Benchmark: compile a 100,000-job, 3-chained-task dataset vs bare htcondor2.dags writing the same DAG.

usage: python bench/compile.py [--jobs N]

Each side runs in a forked child of this process (so its peak RSS is its own); prints both times, peak
memory and the ratio. Target: ratio <= 1.0 and our peak memory under 500 MB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from iceprod_dag.compile.compiler import compile_dataset
from iceprod_dag.dataset.loader import load_dataset_dict


def dataset_dict(jobs: int) -> dict[str, object]:
    return {
        "name": "bench",
        "dataset_id": 1,
        "jobs": jobs,
        "parameters": {"infile": "in/$(job).dat"},
        "tasks": [
            {"name": "gen", "command": "gen $(job)"},
            {"name": "proc", "command": "proc $(job)", "depends": ["gen"]},
            {"name": "merge", "command": "merge $(job)", "depends": ["proc"]},
        ],
    }


def ours(jobs: int, out: Path) -> None:
    dataset = load_dataset_dict(dataset_dict(jobs))
    compile_dataset(dataset, out, with_pilot=False)


def bare_htcondor(jobs: int, out: Path) -> None:
    """The same nodes, VARS and edges written with htcondor2.dags (one-to-one chained layers)."""
    import htcondor2
    from htcondor2 import dags

    out.mkdir(parents=True)
    sub = htcondor2.Submit({"executable": "pilot.pyz", "arguments": "run --job $(job) --attempt $(retry)"})
    dag = dags.DAG()
    layer_vars = [{"job": str(i)} for i in range(jobs)]
    gen = dag.layer(name="gen", submit_description=sub, vars=layer_vars, retries=2)
    proc = gen.child_layer(
        name="proc", submit_description=sub, vars=layer_vars, retries=2, edge=dags.OneToOne()
    )
    proc.child_layer(name="merge", submit_description=sub, vars=layer_vars, retries=2, edge=dags.OneToOne())
    dags.write_dag(dag, out, dag_file_name="bench.dag")


def timed_in_child(func, jobs: int, out: Path) -> tuple[float, float]:
    """Run func in a forked child; return (seconds, peak RSS in MiB) of that child."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        start = time.perf_counter()
        func(jobs, out)
        os.write(write_fd, repr(time.perf_counter() - start).encode())
        os._exit(0)
    os.close(write_fd)
    _, status, usage = os.wait4(pid, 0)
    seconds = float(os.read(read_fd, 64).decode() or "nan")
    os.close(read_fd)
    if status != 0:
        sys.exit(f"child failed with status {status}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import htcondor2  # noqa: F401  (imported here so neither child pays for it)

    work = Path(tempfile.mkdtemp(prefix="bench-compile-"))
    try:
        best_ours, best_bare = (float("inf"), 0.0), (float("inf"), 0.0)
        for i in range(args.repeat):
            o = timed_in_child(ours, args.jobs, work / f"ours{i}")
            b = timed_in_child(bare_htcondor, args.jobs, work / f"bare{i}")
            best_ours, best_bare = min(best_ours, o), min(best_bare, b)
        nodes = args.jobs * 3 + 1
        print(f"nodes: {nodes:,}")
        print(f"iceprod-dag compile : {best_ours[0]:.2f} s, peak {best_ours[1]:.0f} MiB")
        print(f"bare htcondor2.dags : {best_bare[0]:.2f} s, peak {best_bare[1]:.0f} MiB")
        print(f"ratio (ours / bare) : {best_ours[0] / best_bare[0]:.2f}x  (target <= 1.0x, memory < 500 MiB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
