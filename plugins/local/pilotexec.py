"""Run pilot nodes through one multi-job pilot living in the engine's process.

A node whose job is ``pilot.pyz run --spec S --job N --attempt R`` is not started as its own Python process:
its arguments become a WorkItem in an in-memory queue that a ``multijob.Pilot`` thread claims from, packing
jobs by their requests within the envelope. The pilot reports each stats record back; the engine is woken
through an eventfd that sits in the executor's epoll set. This saves an interpreter start per job, which is
most of the cost of a trivial job.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from iceprod_dag import names
from iceprod_dag.pilot.multijob import Pilot
from iceprod_dag.pilot.spec import Resources
from iceprod_dag.pilot.worksource import WorkItem, WorkSource

from .executor import Exit, Launch

logger = logging.getLogger(__name__)

_OPTIONS = {"--spec": "spec", "--job": "job", "--attempt": "attempt", "--memory-mb": "memory_mb",
            "--stats": "stats", "--logdir": "logdir"}  # fmt: skip


def work_item(launch: Launch) -> WorkItem | None:
    """The WorkItem of a ``pilot.pyz run ...`` command line (paths made absolute), or None if it is not one."""
    argv = launch.argv
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
        key, sep, val = arg.partition("=")
        if key not in _OPTIONS:
            if key == "--site":
                next(it, None)
                continue
            return None  # an option we do not know: run the real command line instead
        values[_OPTIONS[key]] = val if sep else next(it, None)
    if "spec" not in values or "job" not in values:
        return None
    try:
        job, attempt = int(values["job"]), int(values.get("attempt") or 0)
        memory = float(values["memory_mb"]) if values.get("memory_mb") else None
    except ValueError:
        return None
    spec = os.path.join(launch.cwd, values["spec"])
    task = os.path.splitext(os.path.basename(spec))[0]
    node = names.node_name(task, job)
    stats = os.path.join(launch.cwd, values.get("stats") or names.stats_record(node, attempt))
    logdir = os.path.join(launch.cwd, values.get("logdir") or names.attempt_log_dir(node, attempt))
    return WorkItem(spec=spec, job=job, attempt=attempt, memory_mb=memory, stats=stats, logdir=logdir, id=launch.key)


class QueueWorkSource(WorkSource):
    """What the engine feeds and the pilot thread drains; thread-safe, O(1) per item."""

    def __init__(self, wake_fd: int) -> None:
        self._items: collections.deque[tuple[WorkItem, Resources]] = collections.deque()
        self._lock = threading.Lock()
        self.on_put: Callable[[], None] = lambda: None
        self.done: collections.deque[tuple[WorkItem, dict[str, Any]]] = collections.deque()
        self._wake_fd = wake_fd
        self.closed = False

    def put(self, item: WorkItem, request: Resources) -> None:
        with self._lock:
            self._items.append((item, request))
        self.on_put()

    def claim(self, free: Resources) -> WorkItem | None:
        with self._lock:
            if not self._items:
                return None
            item, request = self._items[0]
            if not request.fits_in(free):
                return None  # in order: the engine already packed them, the pilot only waits for room
            self._items.popleft()
            return item

    def report(self, item: WorkItem, record: dict[str, Any]) -> None:
        self.done.append((item, record))
        os.eventfd_write(self._wake_fd, 1)

    def finished(self) -> bool:
        return self.closed and not self._items


class _WakeQueue(queue.Queue):  # type: ignore[type-arg]
    """The pilot's queue of finished jobs, which new work can also wake (the pilot then claims at once)."""

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
    """A pilot that claims as soon as work is queued instead of at its next poll."""

    def __init__(self, source: QueueWorkSource, **kwargs: Any) -> None:
        super().__init__(source, **kwargs)
        self._done = _WakeQueue()
        source.on_put = self._done.poke
        self.supervisor: Any = None

    def _start(self, item: WorkItem, job: Any, supervisor: Any) -> None:  # noqa: ANN401
        self.supervisor = supervisor  # kept so that an abort can signal the running jobs
        super()._start(item, job, supervisor)

    def kill(self, sig: int) -> None:
        """Signal every running job's process group (each module runs in its own session)."""
        sup = self.supervisor
        if sup is None:
            return
        with sup.lock:
            pids = [w.pid for w in sup.jobs.values() if w.pid is not None]
        for pid in pids:
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


class PilotPool:
    """One in-process multi-job pilot: start() hands it a node job, drain() returns the ones that ended."""

    def __init__(self, wake_fd: int, cpus: int, memory_mb: int, site: str = "local", base_dir: str = ".") -> None:
        self.source = QueueWorkSource(wake_fd)
        self.site = site
        self.envelope = Resources(cpus=cpus, memory_mb=memory_mb)
        self.base_dir = base_dir
        self.starts: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self._pilot: _WakingPilot | None = None

    def start(self, launch: Launch, item: WorkItem) -> None:
        if self._thread is None:
            self._pilot = _WakingPilot(
                self.source, envelope=self.envelope, site=self.site, poll_s=1.0, base_dir=self.base_dir
            )
            self._thread = threading.Thread(target=self._pilot.run, name="local-pilot", daemon=True)
            self._thread.start()
        self.starts[item.id] = time.time()
        request = Resources(cpus=launch.cpus, memory_mb=launch.memory_mb or None)
        self.source.put(item, request)

    def drain(self) -> list[tuple[Exit, dict[str, Any]]]:
        out = []
        done = self.source.done
        while done:
            item, rec = done.popleft()
            start = self.starts.pop(item.id, time.time())
            code = rec.get("pilot_exit_code")
            if code is None:
                code = 8  # exitcodes.PILOT_ERROR: a record without its verdict
            peak = rec.get("peak_rss_mb") or 0.0
            ex = Exit(
                key=item.id,
                pid=0,
                exit_code=int(code),
                signal=None,
                start=float(rec.get("start") or start),
                end=float(rec.get("end") or time.time()),
                user_cpu=float(rec.get("cpu_user_s") or 0.0),
                sys_cpu=float(rec.get("cpu_sys_s") or 0.0),
                maxrss_kb=int(peak * 1024),
            )
            out.append((ex, rec))
        return out

    def kill(self, sig: int) -> None:
        if self._pilot is not None:
            self._pilot.kill(sig)

    def close(self) -> None:
        self.source.closed = True
        self.source.on_put()
        if self._thread is not None:
            self._thread.join(timeout=30)
