#!/usr/bin/env python3
"""Benchmark: a 200-node DAG through `iceprod-dag submit --site condor` vs the same DAG written by hand and
submitted with condor_submit_dag, on the same HTCondor pool in the same run.

    python bench/condor.py                 # 100 jobs x (gen -> proc) = 200 nodes, 2 rounds
    python bench/condor.py --jobs 20 --rounds 1   # a quicker look

Needs root and the pool of .ci/services/htcondor-up.sh (started if needed). Both sides run the same payload
(the pilot zipapp with the same task specs, the same transfers and requests); the hand-written side is what a
Condor user would write: plain submit files, no POST script, no site additions, condor_submit_dag in the pool's
chroot. Times are from the submit command to the DAGMan job's end (its terminate event) for the hand-written
side and to `submit --wait` returning (statistics and ClassAds collected) for ours. Target (issue 5):
ours / hand-written <= 1.1.

The pool's throughput varies by several seconds from one DAG to the next, so the sides run in alternating
order for --rounds rounds (hand, ours, ours, hand, ...) and the ratio is of the summed times. Each run is also
split into phases from the DAGMan job's own log: `pre` (command start to the DAGMan job's submit event:
compile, pilot build, submit), `dag` (DAGMan's submit to terminate event: the pool's work) and `post` (the
terminate event to the command's end: watch latency, final collection). The submit event time has 1 s
resolution (so `pre` may even be negative), the end time is precise (the DAGMan log's mtime).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
SHARED = Path("/srv/htc")
CHROOT = Path(os.environ.get("HTC_ROOT", "/opt/htcondor-root"))
JOB_UID = 2000

HAND_SUB = """universe = vanilla
executable = pilot.pyz
arguments = "run --spec specs/{task}.json --job $(job) --attempt $(retry)"
should_transfer_files = YES
when_to_transfer_output = ON_EXIT_OR_EVICT
transfer_input_files = specs,empty/stats,empty/logs
transfer_output_files = stats,logs
output = logs/{task}_$(job).$(retry).condor.out
error = logs/{task}_$(job).$(retry).condor.err
request_cpus = 1
request_memory = 64
request_disk = 51200
queue
"""


@dataclasses.dataclass
class Timing:
    total: float
    pre: float
    dag: float
    post: float

    def __str__(self) -> str:
        return f"{self.total:6.1f} s (pre {self.pre:4.1f}, dag {self.dag:5.1f}, post {self.post:4.1f})"


def dagman_times(dagman_log: Path) -> tuple[float, float]:
    """The DAGMan job's submit and end (terminate or abort) event times from its own log."""
    import htcondor2

    submitted = ended = None
    ends = (htcondor2.JobEventType.JOB_TERMINATED, htcondor2.JobEventType.JOB_ABORTED)
    with htcondor2.JobEventLog(str(dagman_log)) as jel:
        for event in jel.events(stop_after=0):
            if event.type == htcondor2.JobEventType.SUBMIT and submitted is None:
                submitted = float(event.timestamp)
            elif event.type in ends:
                ended = float(event.timestamp)
    if submitted is None or ended is None:
        raise RuntimeError(f"{dagman_log}: no submit or end event of the DAGMan job")
    # event times have 1 s resolution; the end event is the log's last write, so its mtime is precise
    mtime = dagman_log.stat().st_mtime
    return submitted, mtime if ended <= mtime < ended + 1 else ended


def timing(start: float, end: float, dagman_log: Path) -> Timing:
    submitted, ended = dagman_times(dagman_log)
    return Timing(end - start, submitted - start, ended - submitted, end - ended)


def dataset(jobs: int) -> dict[str, object]:
    req = {"memory": "64 MB", "disk": "50 MB", "walltime": "5m"}
    return {
        "name": "bench-condor",
        "dataset_id": 9,
        "jobs": jobs,
        "options": {"retries": 1},
        "tasks": [
            {"name": "gen", "command": "true", "requirements": req},
            {"name": "proc", "command": "true", "depends": ["gen"], "requirements": req},
        ],
    }


def chown_tree(path: Path) -> None:
    for root, _dirs, files in os.walk(path):
        os.chown(root, JOB_UID, -1)
        for name in files:
            os.lchown(os.path.join(root, name), JOB_UID, -1)


def wait_dagman_end(dagman_log: Path, timeout: float) -> float:
    """Block until the DAGMan job's own log has its terminate (or abort) event; return that moment."""
    import htcondor2

    deadline = time.time() + timeout
    while not dagman_log.exists():
        if time.time() > deadline:
            raise TimeoutError(f"{dagman_log} never appeared")
        time.sleep(0.2)
    jel = htcondor2.JobEventLog(str(dagman_log))
    ends = (htcondor2.JobEventType.JOB_TERMINATED, htcondor2.JobEventType.JOB_ABORTED)
    while time.time() < deadline:
        for event in jel.events(stop_after=1):
            if event.type in ends:
                return time.time()
    raise TimeoutError(f"the DAG of {dagman_log} did not end within {timeout:.0f} s")


def hand_written(base: Path, compiled: Path, jobs: int, timeout: float, tag: str) -> Timing:
    """Write the DAG by hand next to a copy of the pilot and specs; time condor_submit_dag to the DAG's end."""
    run = base / f"hand{tag}"
    run.mkdir()
    shutil.copy2(compiled / "pilot.pyz", run / "pilot.pyz")
    shutil.copytree(compiled / "specs", run / "specs")
    for sub in ("logs", "stats", "empty/stats", "empty/logs"):
        (run / sub).mkdir(parents=True, exist_ok=True)
    for task in ("gen", "proc"):
        (run / f"{task}.sub").write_text(HAND_SUB.format(task=task))
    lines = []
    for job in range(jobs):
        lines += [
            f"JOB gen_{job} gen.sub",
            f'VARS gen_{job} job="{job}"',
            f"RETRY gen_{job} 1",
            f"JOB proc_{job} proc.sub",
            f'VARS proc_{job} job="{job}"',
            f"RETRY proc_{job} 1",
            f"PARENT gen_{job} CHILD proc_{job}",
        ]
    lines.append('VARS ALL_NODES retry="$(RETRY)"')
    (run / "hand.dag").write_text("\n".join(lines) + "\n")
    chown_tree(run)
    start = time.time()
    cmd = f"cd {run} && condor_submit_dag -batch-name bench-hand hand.dag"
    proc = subprocess.run(
        ["chroot", str(CHROOT), "runuser", "-u", "htcuser", "--", "sh", "-c", cmd],
        capture_output=True,
        text=True,
        timeout=120,
        # the pool's own tools in the chroot use the pool's configuration, not our client one
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"condor_submit_dag failed ({proc.returncode}): {proc.stdout[-1500:]}{proc.stderr}"
        )
    end = wait_dagman_end(run / "hand.dag.dagman.log", timeout)
    return timing(start, end, run / "hand.dag.dagman.log")


def write_dataset(base: Path, jobs: int) -> Path:
    source = base / "bench.yaml"
    source.write_text(yaml.safe_dump(dataset(jobs)))
    return source


def ours(base: Path, jobs: int, timeout: float, tag: str) -> Timing:
    """`iceprod-dag submit --site condor --wait` on the dataset; returns the time."""
    source = write_dataset(base, jobs)
    site = base / "site.yaml"
    site.write_text(
        yaml.safe_dump({"name": "bench", "run_root": str(base / "ours-root"), "remove_held_after": "1m"})
    )
    (base / "ours-root").mkdir(exist_ok=True)
    os.chown(base / "ours-root", JOB_UID, -1)
    run = base / f"ours{tag}"
    env = {**os.environ, "ICEPROD_DAG_DB": f"sqlite:///{base / 'stats.sqlite'}"}
    start = time.time()
    proc = subprocess.run(
        [
            "iceprod-dag",
            "-q",
            "submit",
            str(source),
            "--site",
            "condor",
            "--site-config",
            str(site),
            "--run-dir",
            str(run),
            "--wait",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    end = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"our submit failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return timing(start, end, base / "ours-root" / run.name / "dataset.dag.dagman.log")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100, help="jobs per task (nodes = 2 x jobs)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side, in alternating order")
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--keep", action="store_true", help="keep the run folders under /srv/htc/bench-*")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/condor.py needs root (it starts the pool and writes under /srv/htc)", file=sys.stderr)
        return 2
    subprocess.run(["bash", str(REPO / ".ci/services/htcondor-up.sh")], check=True, capture_output=True)
    os.environ["CONDOR_CONFIG"] = str(SHARED / "condor_config.client")
    os.environ["PATH"] = f"{SHARED / 'bin'}:{os.environ['PATH']}"
    base = SHARED / f"bench-{uuid.uuid4().hex[:8]}"
    base.mkdir()
    os.chown(base, JOB_UID, -1)
    try:
        compiled = base / "compiled"
        subprocess.run(
            ["iceprod-dag", "-q", "compile", str(write_dataset(base, args.jobs)), "-o", str(compiled)],
            check=True,
            capture_output=True,
        )
        print(
            f"{2 * args.jobs} nodes; hand = condor_submit_dag, ours = iceprod-dag submit --site condor --wait"
        )
        hands: list[Timing] = []
        ourss: list[Timing] = []
        for i in range(args.rounds):
            # alternate which side goes first: the pool drifts (history size, caches) over a run
            order = ("hand", "ours") if i % 2 == 0 else ("ours", "hand")
            for side in order:
                if side == "hand":
                    hands.append(hand_written(base, compiled, args.jobs, args.timeout, str(i)))
                    print(f"round {i} hand: {hands[-1]}", flush=True)
                else:
                    ourss.append(ours(base, args.jobs, args.timeout, str(i)))
                    print(f"round {i} ours: {ourss[-1]}", flush=True)
        t_hand, t_ours = sum(t.total for t in hands), sum(t.total for t in ourss)
        overhead = sum(t.pre + t.post for t in ourss) / len(ourss)
        print(
            f"ours: mean pre + post {overhead:.1f} s per run (hand: "
            f"{sum(t.pre + t.post for t in hands) / len(hands):.1f} s)"
        )
        ratio = t_ours / t_hand
        print(f"ratio ours/hand = {ratio:.2f} (target <= 1.10): {'OK' if ratio <= 1.1 else 'MISSED'}")
        return 0 if ratio <= 1.1 else 1
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
