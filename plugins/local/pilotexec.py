"""Run pilot nodes through long-lived multi-job pilot processes instead of one pilot process per job.

A node whose job is ``pilot.pyz run --spec S --job N --attempt R`` becomes a WorkItem sent as one JSON line to
a pilot process (``python -m iceprod_dag.plugins.local.pilotexec``) running ``multijob.Pilot`` with a
``PipeWorkSource``: items arrive on its stdin, stats records leave on its stdout. This saves an interpreter
start per job, and running the pilots in their own processes keeps their work off the engine's GIL.
The engine has already packed jobs by cpus and memory, so each pilot's envelope is the whole allowance.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from iceprod_dag.common import names
from iceprod_dag.dagman.engine.processes import die_with_parent
from iceprod_dag.pilot.multijob import Pilot
from iceprod_dag.pilot.spec import Resources
from iceprod_dag.pilot.worksource import WorkItem, WorkSource

logger = logging.getLogger(__name__)

_OPTIONS = {"--spec": "spec", "--job": "job", "--attempt": "attempt", "--memory-mb": "memory_mb",
            "--stats": "stats", "--logdir": "logdir"}  # fmt: skip


def work_item(argv: list[str], cwd: str, key: str) -> WorkItem | None:
    """The WorkItem of a ``pilot.pyz run ...`` command line (paths made absolute), or None if not one."""
    try:
        i = next(i for i, a in enumerate(argv[:3]) if os.path.basename(a) == names.PILOT_ZIPAPP)
    except StopIteration:
        return None
    rest = argv[i + 1 :]
    if not rest or rest[0] != "run":
        return None
    values: dict[str, Any] = {}
    it = iter(rest[1:])
    for arg in it:
        opt, sep, val = arg.partition("=")
        if opt == "--site":
            _ = val if sep else next(it, None)
            continue
        if opt not in _OPTIONS:
            return None  # an option we do not know: run the real command line instead
        values[_OPTIONS[opt]] = val if sep else next(it, None)
    if "spec" not in values or "job" not in values:
        return None
    try:
        job, attempt = int(values["job"]), int(values.get("attempt") or 0)
        memory = float(values["memory_mb"]) if values.get("memory_mb") else None
    except ValueError:
        return None
    spec = os.path.join(cwd, values["spec"])
    node = names.node_name(os.path.splitext(os.path.basename(spec))[0], job)
    stats = os.path.join(cwd, values.get("stats") or names.stats_record(node, attempt))
    logdir = os.path.join(cwd, values.get("logdir") or names.attempt_log_dir(node, attempt))
    return WorkItem(spec=spec, job=job, attempt=attempt, memory_mb=memory, stats=stats, logdir=logdir, id=key)


# ---- pilot side ---------------------------------------------------------------------------------------------


class PipeWorkSource(WorkSource):
    """Items from stdin lines, records to stdout lines; EOF on stdin means no more work."""

    def __init__(self, out: Any) -> None:  # noqa: ANN401 - a text stream
        self._items: collections.deque[WorkItem] = collections.deque()
        self._out = out
        self._lock = threading.Lock()
        self.closed = False
        self.on_put: Callable[[], None] = lambda: None
        self.on_kill: Callable[[int], None] = lambda sig: None

    def read(self, stream: Any) -> None:  # noqa: ANN401 - a text stream
        for line in stream:
            msg = json.loads(line)
            if "kill" in msg:
                self.on_kill(int(msg["kill"]))
                continue
            self._items.append(WorkItem.from_dict(msg))
            self.on_put()
        self.closed = True
        self.on_put()

    def claim(self, free: Resources) -> WorkItem | None:
        return self._items.popleft() if self._items else None  # the engine packed it: it fits

    def report(self, item: WorkItem, record: dict[str, Any]) -> None:
        line = json.dumps({"id": item.id, "record": record}) + "\n"
        with self._lock:
            self._out.write(line)
            self._out.flush()

    def finished(self) -> bool:
        return self.closed and not self._items


class _WakeQueue(queue.Queue):
    """The pilot's queue of finished jobs, which new work also wakes, so that it claims at once."""

    poked = False

    def poke(self) -> None:
        with self.not_empty:
            self.poked = True
            self.not_empty.notify()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:  # noqa: ANN401
        with self.not_empty:
            if block and not self._qsize() and not self.poked:
                self.not_empty.wait(timeout)
            self.poked = False
            if not self._qsize():
                raise queue.Empty
            item = self._get()
            self.not_full.notify()
            return item


class _WakingPilot(Pilot):
    """A pilot that claims as soon as work arrives and can signal its running jobs."""

    def __init__(self, source: PipeWorkSource, **kwargs: Any) -> None:
        super().__init__(source, **kwargs)
        self._done = _WakeQueue()
        source.on_put = self._done.poke
        source.on_kill = self.kill
        self.supervisor: Any = None

    def _start(self, item: WorkItem, job: Any, supervisor: Any) -> None:  # noqa: ANN401
        self.supervisor = supervisor
        super()._start(item, job, supervisor)

    def kill(self, sig: int) -> None:
        sup = self.supervisor
        if sup is None:
            return
        with sup.lock:
            pids = [w.pid for w in sup.jobs.values() if w.pid is not None]
        for pid in pids:
            try:
                os.killpg(pid, sig)  # each module runs in its own session
            except (ProcessLookupError, PermissionError):
                pass


def main(argv: list[str] | None = None) -> int:
    """The pilot process: ``python -m iceprod_dag.plugins.local.pilotexec --cpus C --memory-mb M``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpus", type=float, required=True)
    parser.add_argument("--memory-mb", type=float)
    parser.add_argument("--site", default="local")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s pilot: %(message)s")
    # each job's own pilot.log gets its INFO lines (runjob); this shared stderr log only warnings and errors
    logging.getLogger().handlers[0].setLevel(logging.WARNING)
    out = os.fdopen(os.dup(1), "w")
    sys.stdout = sys.stderr  # nothing but records on the pipe
    source = PipeWorkSource(out)
    pilot = _WakingPilot(source, envelope=Resources(cpus=args.cpus, memory_mb=args.memory_mb), site=args.site,
                         poll_s=1.0)  # fmt: skip
    threading.Thread(target=source.read, args=(sys.stdin,), daemon=True).start()
    pilot.run()
    return 0


# ---- engine side --------------------------------------------------------------------------------------------


class PilotClient:
    """One pilot process as the executor sees it: send items, read records from its stdout fd."""

    def __init__(
        self, cpus: int, memory_mb: int, cwd: str, log_path: str | None, site: str = "local"
    ) -> None:
        cmd = [sys.executable, "-m", "iceprod_dag.plugins.local.pilotexec", "--cpus", str(cpus),
               "--memory-mb", str(memory_mb), "--site", site]  # fmt: skip
        err = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
        try:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, cwd=cwd, start_new_session=True,
                preexec_fn=die_with_parent,
            )  # fmt: skip
        finally:
            if not isinstance(err, int):  # subprocess.DEVNULL is an int
                err.close()
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self._buf = b""
        self.running = 0

    def send(self, item: WorkItem) -> None:
        """Queue an item; flush() sends every queued one at once (one wake-up of the pilot per round)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(item.to_dict()).encode() + b"\n")
        self.running += 1
        self.unsent = True

    unsent = False

    def flush(self) -> None:
        if self.unsent:
            self.unsent = False
            try:
                self.proc.stdin.flush()  # type: ignore[union-attr]
            except BrokenPipeError:
                pass  # the pilot died: its EOF on stdout reports its jobs

    def kill(self, sig: int) -> None:
        try:
            self.proc.stdin.write(json.dumps({"kill": int(sig)}).encode() + b"\n")  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, ValueError):
            pass

    def read(self) -> list[tuple[str, dict[str, Any]]]:
        """Records that arrived (non-blocking); ("", {}) once the pilot process is gone."""
        out = []
        eof = False
        while True:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                eof = True
                break
            self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            msg = json.loads(line)
            out.append((msg["id"], msg["record"]))
            self.running -= 1
        if eof:
            out.append(("", {}))
        return out

    def close(self) -> None:
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the engine decides what a Ctrl-C stops
    sys.exit(main())
