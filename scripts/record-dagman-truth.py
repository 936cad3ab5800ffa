#!/usr/bin/env python3
"""Record the truth of the DAGMan conformance corpus (tests/dagman_corpus) on the real HTCondor pool.

Each case is laid out under /srv/htc (owned by the pool's job user, uid 2000), submitted with
condor_submit_dag's own description (``htcondor2.Submit.from_dag``, ``on_exit_remove = true`` so an
ABORT-DAG-ON RETURN above 2 ends the DAGMan job instead of requeueing it), many DAGs at once. When DAGMan
exits, what the jobs and scripts wrote (steps.log), DAGMan's exit status and the rescue DAG's DONE lines become
the case's ``truth.json`` (cases/<name>/ or generated/<name>/), to be committed.

Usage: CONDOR_CONFIG=/srv/htc/condor_config.client scripts/record-dagman-truth.py [--parallel 24]
       [--missing] [--timeout 900] [CASE...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from dagman_corpus import corpus  # noqa: E402

JOB_UID = 2000
ROOT = Path("/srv/htc/dagman-corpus")


def submit(run: Path) -> int:
    import htcondor2

    sub = htcondor2.Submit.from_dag(str(run / corpus.DAG), {"force": True})
    sub["on_exit_remove"] = "true"
    sub["initialdir"] = str(run)
    return int(htcondor2.Schedd().submit(sub).cluster())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", nargs="*", help="case names (default: all)")
    ap.add_argument("--parallel", type=int, default=24, help="DAGs in the pool at once")
    ap.add_argument("--missing", action="store_true", help="only cases without a truth.json")
    ap.add_argument("--timeout", type=float, default=900, help="seconds one DAG may take")
    args = ap.parse_args()
    os.environ.setdefault("CONDOR_CONFIG", "/srv/htc/condor_config.client")
    todo = args.cases or corpus.case_names()
    if args.missing:
        todo = [c for c in todo if corpus.truth(c) is None]
    ROOT.mkdir(exist_ok=True)
    os.chown(ROOT, JOB_UID, -1)
    base = Path(tempfile.mkdtemp(prefix="rec-", dir=ROOT))
    os.chown(base, JOB_UID, -1)
    running: dict[str, tuple[Path, int, float]] = {}
    failed = 0
    while todo or running:
        while todo and len(running) < args.parallel:
            case = todo.pop(0)
            run = corpus.materialize(case, base, JOB_UID)
            running[case] = (run, submit(run), time.monotonic())
        time.sleep(2)
        for case, (run, cluster, started) in list(running.items()):
            status = corpus.pool_exit_status(run)
            if status is None and time.monotonic() - started < args.timeout:
                continue
            del running[case]
            if status is None:
                import htcondor2

                htcondor2.Schedd().act(htcondor2.JobAction.Remove, f"ClusterId == {cluster}")
                print(f"{case}: no exit within {args.timeout:g} s, not recorded", flush=True)
                failed += 1
                continue
            time.sleep(1)  # the last script's line is written before DAGMan exits; the rescue file too
            refused = corpus.pool_refusal(run)
            result = {"refused": refused, "exit": status} if refused else corpus.outcome(run, status)
            result["recorded_on"] = "HTCondor pool, condor_submit_dag (Submit.from_dag), on_exit_remove=true"
            path = corpus.truth_path(case)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
            print(f"{case}: exit {status}, {time.monotonic() - started:.0f} s", flush=True)
    shutil.rmtree(base, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
