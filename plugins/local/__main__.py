"""``python -m iceprod_dag.plugins.local RUNDIR``: the detached local engine (LocalSite.submit(wait=False))."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from iceprod_dag.plugins.local.runner import run_dag
from iceprod_dag.sites.runlock import RunLock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iceprod_dag.plugins.local", description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--cpus", type=int)
    parser.add_argument("--memory-mb", type=int)
    parser.add_argument("--db", help="stats database URL (default: $ICEPROD_DAG_DB or the local SQLite file)")
    parser.add_argument("--dag", help="the DAG file (default: the run folder's only .dag)")
    parser.add_argument("--no-pilot", action="store_true", help="run pilot nodes as their own processes")
    parser.add_argument("--lock-fd", type=int, help="the run folder's lock, taken by the submitting process")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lock = RunLock.adopt(args.run_dir.resolve(), args.lock_fd) if args.lock_fd is not None else None
    return run_dag(
        args.run_dir,
        args.cpus,
        args.memory_mb,
        args.db,
        progress=False,
        use_pilot=not args.no_pilot,
        dag_file=args.dag,
        lock=lock,
    )


if __name__ == "__main__":
    sys.exit(main())
