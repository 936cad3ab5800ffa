"""Benchmark of the Slurm site on the real one-node Slurm (.ci/services/slurm-up.sh), in one run:

1. a 1,000-node DAG (one root, a 998-wide layer, one merge) run by our plugin, submit to done, versus the
   same 1,000 jobs submitted by a hand-written ``sbatch --dependency=afterok`` loop, submit to done;
2. the time from ``submit`` to every node of a 10,000-node layer queued in Slurm (the detached watcher parses,
   translates, groups arrays, runs batched sbatch and records the job ids), after which its jobs are cancelled.

    python bench/slurm.py                          # both parts
    python bench/slurm.py --nodes 200 --submit-nodes 2000

Targets (issue 6): ours <= 1.2x the sbatch loop's time; 10,000 nodes submitted in <= 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from iceprod_dag.plugins.batch import state as st
from iceprod_dag.sites.registry import load_site

SUBMIT = 'executable = /bin/sh\narguments = "-c true"\nrequest_cpus = 1\nrequest_memory = 10\nqueue\n'


def write_dag(run: Path, nodes: int) -> None:
    """root -> (nodes - 2) wide -> merge: the fan-out + fan-in shape of a dataset."""
    run.mkdir(parents=True)
    (run / "node.sub").write_text(SUBMIT)
    wide = [f"work_{i}" for i in range(nodes - 2)]
    lines = ["JOB root node.sub", *(f"JOB {w} node.sub" for w in wide), "JOB merge node.sub"]
    lines += [f"PARENT root CHILD {' '.join(wide)}", f"PARENT {' '.join(wide)} CHILD merge"]
    (run / "dataset.dag").write_text("\n".join(lines) + "\n")


def squeue_count(name_prefix: str) -> int:
    out = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%j"], capture_output=True, text=True, check=True
    ).stdout
    return sum(1 for line in out.split() if line.startswith(name_prefix))


def sbatch_loop(run: Path, nodes: int) -> float:
    """The baseline a user would write: one sbatch per node, each with its parents' ids, then wait."""
    run.mkdir(parents=True)
    prefix = f"loop{os.getpid()}"
    start = time.monotonic()

    def sbatch(name: str, deps: list[str]) -> str:
        cmd = [
            "sbatch",
            "--parsable",
            f"--job-name={prefix}.{name}",
            "--output=/dev/null",
            "--mem=10M",
            f"--chdir={run}",
        ]
        if deps:
            cmd.append("--dependency=afterok:" + ":".join(deps))
        cmd += ["--wrap", "sh -c true"]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().split(";")[0]

    try:
        root = sbatch("root", [])
        wide = [sbatch(f"work_{i}", [root]) for i in range(nodes - 2)]
        sbatch("merge", wide)
        while squeue_count(prefix):
            time.sleep(0.5)
    except BaseException:
        names = ",".join(f"{prefix}.{n}" for n in ["root", "merge", *(f"work_{i}" for i in range(nodes - 2))])
        subprocess.run(["scancel", f"--name={names}"], check=False)
        raise
    return time.monotonic() - start


def ours(run: Path, nodes: int) -> float:
    write_dag(run, nodes)
    site = load_site("slurm", {"poll_interval": 5})
    start = time.monotonic()
    try:
        status = site.submit(run, wait=True)
    finally:
        site.cancel(run)  # interrupted: leave no jobs behind (a no-op once the run ended)
    took = time.monotonic() - start
    if status != 0:
        raise SystemExit(f"our run of {run} failed with status {status}")
    return took


def submit_only(run: Path, nodes: int) -> dict[str, object]:
    """Time from submit to every node of a ready layer queued in Slurm, as recorded in the run state."""
    run.mkdir(parents=True)
    (run / "node.sub").write_text(SUBMIT)
    (run / "dataset.dag").write_text("".join(f"JOB work_{i} node.sub\n" for i in range(nodes)))
    site = load_site("slurm", {"poll_interval": 5})
    start = time.monotonic()
    queued, took = 0, 0.0
    try:
        site.submit(run)  # the detached watcher
        deadline = start + 60
        while queued < nodes and time.monotonic() < deadline:
            time.sleep(0.05)
            state = st.load(run)  # replaced atomically: never half written
            now = sum(1 for s in state.nodes.values() if s.jobs) if state else 0  # queued, or ended already
            if now > queued:
                queued, took = now, time.monotonic() - start
    finally:
        site.cancel(run)  # never leave 10,000 pending jobs behind
    log = (run / "batch" / "watcher.log").read_text(errors="replace").splitlines()
    # sbatch refusals (Slurm's MaxJobCount counts jobs that ended in the last MinJobAge seconds too)
    errors = [line for line in log if "submitting" in line and "failed" in line][:3]
    return {"nodes": nodes, "queued": queued, "submit_s": round(took, 2), "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--submit-nodes", type=int, default=10000)
    parser.add_argument("--skip-compare", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("SLURM_CONF", "/tmp/slurm-ci/slurm.conf")
    base = Path(tempfile.mkdtemp(prefix="bench-slurm-"))
    result: dict[str, object] = {}
    try:
        # submission first: Slurm counts recently ended jobs against MaxJobCount (10,000) for MinJobAge
        if args.submit_nodes:
            result["submit"] = {**submit_only(base / "submit", args.submit_nodes), "target_s": 10}
        if not args.skip_compare:
            loop_s = sbatch_loop(base / "loop", args.nodes)
            ours_s = ours(base / "ours", args.nodes)
            result.update(
                nodes=args.nodes,
                sbatch_loop_s=round(loop_s, 1),
                ours_s=round(ours_s, 1),
                ratio=round(ours_s / loop_s, 2),
                target_ratio=1.2,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
