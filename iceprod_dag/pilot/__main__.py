"""Command line of the pilot (also the zipapp's entry point): `run` one job, or `multi` for pilot mode.

    python3 pilot.pyz run --spec specs/<task>.json --job N --attempt R [--memory-mb M] [--walltime T]
                          [--disk D] [--site NAME] [--stats PATH] [--logdir DIR]
    python3 pilot.pyz multi --queue DIR [--cpus N] [--memory MB] [--disk MB] [--gpus N] [--walltime 2h]
                            [--lend-memory]

The exit code of `run` is the attempt's pilot exit code (iceprod_dag/pilot/exitcodes.py); argument errors
exit 2 (PERMANENT), a crash of the pilot itself exits 8 (PILOT_ERROR).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING, List, Optional

from iceprod_dag.pilot import exitcodes

if TYPE_CHECKING:
    from iceprod_dag.pilot.worksource import WorkSource

log = logging.getLogger("iceprod_dag.pilot")


def _size(text: str) -> float:
    from iceprod_dag.common.units import parse_size_mb

    try:
        return float(parse_size_mb(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _duration(text: str) -> float:
    from iceprod_dag.common.units import parse_duration_s

    try:
        return float(parse_duration_s(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="pilot", description="iceprod-dag pilot: run jobs and record them.")
    top.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    top.add_argument(
        "--no-psutil", action="store_true", help="sample with /proc even if psutil is importable"
    )
    sub = top.add_subparsers(dest="command")
    sub.required = True

    run = sub.add_parser("run", help="run one attempt of one job")
    run.add_argument("--spec", required=True, help="task spec file (specs/<task>.json)")
    run.add_argument("--job", required=True, type=int, help="job index")
    run.add_argument("--attempt", type=int, default=0, help="attempt number ($(RETRY)), default 0")
    run.add_argument("--memory-mb", type=_size, help="memory request overriding the spec's (a retry)")
    run.add_argument("--walltime", type=_duration, help="wall time request overriding the spec's (a retry)")
    run.add_argument("--disk", type=_size, help="disk request overriding the spec's (a retry)")
    run.add_argument("--site", help="site name for the stats record")
    run.add_argument("--stats", help="stats record path (default stats/<node>.<attempt>.json)")
    run.add_argument("--logdir", help="log folder (default logs/<node>/<attempt>)")

    multi = sub.add_parser(
        "multi", help="pilot mode: run jobs from a queue folder or a server within an envelope"
    )
    source = multi.add_mutually_exclusive_group(required=True)
    source.add_argument("--queue", help="work folder (queue/, claimed/, done/, closed)")
    source.add_argument("--server", help="web server URL whose pilot API hands out work (with --dataset)")
    multi.add_argument("--dataset", type=int, help="dataset number on the server (with --server)")
    multi.add_argument("--token-file", help="file holding the pilot token (with --server)")
    multi.add_argument(
        "--spool", default="pilot-spool", help="folder buffering records and logs until the server has them"
    )
    multi.add_argument("--cpus", type=float, help="cpus of the envelope (default: this node's)")
    multi.add_argument("--memory", type=_size, help="memory of the envelope (default: available memory)")
    multi.add_argument("--disk", type=_size, help="disk of the envelope (default: free scratch space)")
    multi.add_argument("--gpus", type=int, default=0, help="gpus of the envelope (default 0)")
    multi.add_argument("--walltime", type=_duration, help="how long the pilot may run (default: no limit)")
    multi.add_argument(
        "--lend-memory",
        action="store_true",
        help="let a job past its own memory limit while the envelope has room (the record says how much)",
    )
    multi.add_argument("--site", help="site name for the stats records")
    multi.add_argument("--sample-interval", type=float, default=1.0, help="seconds between samples")
    multi.add_argument(
        "--poll", type=float, default=0.5, help="seconds between claims when the queue is empty"
    )
    multi.add_argument(
        "--idle-timeout", type=_duration, help="exit after this long without work (default: wait)"
    )
    return top


def _work_source(args: argparse.Namespace) -> "WorkSource":
    from iceprod_dag.common.exceptions import ConfigError
    from iceprod_dag.pilot.serversource import ServerWorkSource

    if args.dataset is None or not args.token_file:
        raise ConfigError("--server needs --dataset and --token-file")
    with open(args.token_file, encoding="utf-8") as handle:
        token = handle.read().strip()
    return ServerWorkSource(args.server, args.dataset, token, args.spool)


def _logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING - 10 * min(verbose, 2))
    handler.setFormatter(logging.Formatter("pilot %(levelname)s %(name)s: %(message)s"))
    package = logging.getLogger("iceprod_dag")
    package.addHandler(handler)
    package.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    package.propagate = False


def main(argv: Optional[List[str]] = None, configure_logging: bool = True) -> int:
    """Run the pilot CLI; returns the exit code (``configure_logging=False`` when the caller already did)."""
    args = parser().parse_args(argv)
    if configure_logging:
        _logging(args.verbose)
    use_psutil = False if args.no_psutil else None
    try:
        if args.command == "run":
            # HTCondor holds a job whose transfer_output_files are missing: make them before anything can fail
            for folder in ("stats", "logs"):
                os.makedirs(folder, exist_ok=True)
            from iceprod_dag.pilot.runjob import run_attempt

            rec = run_attempt(
                args.spec,
                args.job,
                args.attempt,
                args.memory_mb,
                args.site,
                args.stats,
                args.logdir,
                use_psutil,
                args.walltime,
                args.disk,
            )
            return int(rec["pilot_exit_code"])
        from iceprod_dag.pilot.multijob import Pilot, detect_envelope
        from iceprod_dag.pilot.worksource import DirectoryWorkSource

        envelope = detect_envelope()
        for field, value in (("cpus", args.cpus), ("memory_mb", args.memory), ("disk_mb", args.disk)):
            if value is not None:
                setattr(envelope, field, value)
        envelope.gpus, envelope.walltime_s = args.gpus, args.walltime
        source = _work_source(args) if args.server else DirectoryWorkSource(os.path.abspath(args.queue))
        from iceprod_dag.pilot.runjob import terminate_on_signals

        pilot = Pilot(
            source,
            envelope,
            args.site,
            args.sample_interval,
            args.poll,
            use_psutil,
            idle_timeout_s=args.idle_timeout,
            lend_memory=args.lend_memory,
        )
        with terminate_on_signals(pilot.stop):
            pilot.run()
        return exitcodes.SUCCESS
    except KeyboardInterrupt:
        log.error("interrupted")
        return exitcodes.PILOT_ERROR
    except Exception:
        log.exception("pilot error")
        return exitcodes.PILOT_ERROR


if __name__ == "__main__":
    sys.exit(main())
