"""The supervisor thread: samples every running job at an interval, applies the limits, kills what must die.

Job threads register a Watched entry and the pid of the module they run; they block waiting for it while the
supervisor samples. Both one-shot `run` and multi-job mode use it (one-shot has no envelope).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Dict, List, Optional

from iceprod_dag.pilot import limits
from iceprod_dag.pilot.monitor import GpuProbe, Sampler, TreeUsage, UsageStats, dir_size_mb
from iceprod_dag.pilot.spec import Resources

log = logging.getLogger(__name__)


class Watched:
    """One running job as the supervisor sees it; the job thread reads ``failure`` after each module."""

    def __init__(
        self,
        key: str,
        request: Resources,
        own_limit_mb: Optional[float],
        workdir: str,
        grace_s: float,
        walltime_s: Optional[float] = None,
    ) -> None:
        self.key = key
        self.request = request
        self.own_limit_mb = own_limit_mb
        #: how far beyond its own limit the pilot let it go (lending only; None when it lends nothing)
        self.lent_mb: Optional[float] = None
        self.workdir = workdir
        self.grace_s = grace_s
        # the job's own limit, or less when the pilot's envelope ends sooner
        limits_s = [t for t in (request.walltime_s, walltime_s) if t]
        self.walltime_s = min(limits_s) if limits_s else None
        self.started = time.monotonic()
        self.pid: Optional[int] = None
        self.killer: Optional[limits.TreeKiller] = None
        self.usage = UsageStats()
        self.current = TreeUsage()
        self.failure: Optional[str] = None
        self.reason: Optional[str] = None

    @property
    def memory_mb(self) -> float:
        return self.current.memory_mb if self.pid is not None else 0.0


class Supervisor:
    """Samples registered jobs every ``interval_s`` in a daemon thread. With ``envelope_mb`` the jobs together
    stay inside it (the most-over job dies first); ``lend`` also lets a job past its own limit while the
    envelope has room (only where the site allows it)."""

    def __init__(
        self,
        interval_s: float = 1.0,
        envelope_mb: Optional[float] = None,
        use_psutil: Optional[bool] = None,
        lend: bool = False,
    ) -> None:
        self.interval_s = max(0.01, interval_s)
        self.envelope_mb = envelope_mb
        self.lend = lend and envelope_mb is not None
        self.sampler = Sampler(use_psutil)
        self.gpu = GpuProbe()
        self.lock = threading.RLock()  # re-entrant: terminate() may run in a signal handler
        self.jobs: Dict[str, Watched] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "Supervisor":
        self._thread = threading.Thread(target=self._loop, name="pilot-supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> "Supervisor":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(self, watched: Watched) -> None:
        with self.lock:
            self.jobs[watched.key] = watched

    def remove(self, watched: Watched) -> None:
        with self.lock:
            self.jobs.pop(watched.key, None)

    def set_pid(self, watched: Watched, pid: int) -> None:
        with self.lock:
            watched.pid = pid
            watched.current = TreeUsage(pids=[pid])
            if watched.failure is not None:  # killed while it was starting: do not let it run
                watched.killer = limits.TreeKiller(pid, watched.grace_s)
                watched.killer.start([pid])

    def clear_pid(self, watched: Watched) -> TreeUsage:
        """The module's root exited: stop signalling its pid (it may be reused); returns the last sample."""
        with self.lock:
            watched.pid = None
            watched.killer = None
            last, watched.current = watched.current, TreeUsage()
            return last

    def terminate(self, reason: str) -> None:
        """Kill every job (TERM, then KILL after its grace) and record it as "killed" with ``reason``.

        Safe to call from a signal handler in the main thread: the lock is only ever held briefly.
        """
        with self.lock:
            for w in self.jobs.values():
                if w.failure is None:
                    w.failure, w.reason = "killed", reason
                    if w.pid is not None:
                        w.killer = limits.TreeKiller(w.pid, w.grace_s)
                        w.killer.start(w.current.pids)

    def signal_all(self, sig: int) -> int:
        """Signal the process group of every running module; returns how many were signalled."""
        with self.lock:
            pids = [w.pid for w in self.jobs.values() if w.pid is not None]
        for pid in pids:
            limits.signal_group(pid, sig)
        return len(pids)

    def fail(self, watched: Watched, category: str, reason: str) -> None:
        """Record a failure found outside a tick (the kernel's accounting after a module ended)."""
        with self.lock:
            if watched.failure is None:
                watched.failure, watched.reason = category, reason
                log.warning("%s: %s: %s", watched.key, category, reason, extra={"node": watched.key})

    def memory_mb(self, key: str) -> float:
        """What a job's current module uses now (0 when it is not registered or between modules)."""
        with self.lock:
            watched = self.jobs.get(key)
            return watched.memory_mb if watched is not None else 0.0

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception:  # a sampling bug must not leave jobs unsupervised silently
                log.exception("supervisor tick failed")

    def tick(self) -> None:
        """Sample every job once, then kill those over a limit (and escalate kills past their grace)."""
        with self.lock:
            jobs = list(self.jobs.values())
            roots = [w.pid for w in jobs if w.pid is not None]
        samples = self.sampler.sample(roots)
        views: List[limits.JobView] = []
        now = time.monotonic()
        with self.lock:
            for w in jobs:
                if w.pid is not None and w.pid in samples:
                    w.current = samples[w.pid]
                disk = dir_size_mb(w.workdir) if w.request.disk_mb else None
                gpu = self.gpu.sample(w.current.pids) if w.request.gpus else (None, None)
                if w.pid is not None:
                    w.usage.add(w.current, disk, gpu)
                elif disk is not None:
                    w.usage.peak_disk_mb = max(w.usage.peak_disk_mb, disk)
                if w.failure is not None:
                    if w.killer is not None:
                        w.killer.tick(w.current.pids)
                    continue
                views.append(
                    limits.JobView(
                        key=w.key,
                        memory_mb=w.memory_mb,
                        request_mb=w.request.memory_mb,
                        own_limit_mb=w.own_limit_mb,
                        elapsed_s=now - w.started,
                        walltime_s=w.walltime_s,
                        disk_mb=disk or 0.0,
                        disk_limit_mb=w.request.disk_mb,
                    )
                )
            dying = sum(w.memory_mb for w in jobs if w.failure is not None)
            envelope = None if self.envelope_mb is None else self.envelope_mb - dying
            if self.lend:
                for w in jobs:  # what it uses beyond its own limit without being killed was lent to it
                    if w.failure is None and w.own_limit_mb is not None and w.memory_mb > w.own_limit_mb:
                        w.lent_mb = max(w.lent_mb or 0.0, w.memory_mb - w.own_limit_mb)
            for key, (category, limit, reason) in limits.decide(views, envelope, self.lend).items():
                victim = self.jobs.get(key)
                if victim is None:
                    continue
                victim.failure, victim.reason = category, reason
                if category == limits.OVER_MEMORY and limit is not None and victim.own_limit_mb is not None:
                    # the limit in force at the kill: its own, plus what the envelope could lend it then
                    lent = limit - victim.own_limit_mb
                    victim.lent_mb = lent if lent > 0 else victim.lent_mb
                log.warning("%s: %s: %s", key, category, reason, extra={"node": key})
                if victim.pid is not None:
                    victim.killer = limits.TreeKiller(victim.pid, victim.grace_s)
                    victim.killer.start(victim.current.pids)
