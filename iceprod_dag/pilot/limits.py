"""Resource limits: which job goes over memory, time or disk, and killing its process tree (TERM, then KILL).

Memory rules (docs/contracts.md, issue 3):

- A job may use its request × (1 + memory_allowance): its *own limit*.
- Only where the site allows it (``lend=True``; off by default), a job of a multi-job pilot may go further
  while the pilot has unused memory: its limit is also at least the envelope minus what every other job holds
  (their usage, or their request if they use less, since they may grow into it). This is the memory the
  pilot *lends*; the record keeps the own limit and says how much was lent (``memory_lent_mb``).
- When the jobs together use more than the envelope, the most-over job (usage − request) is killed first,
  one per tick, so the next tick sees the memory it frees.

Decisions are pure functions of a JobView list so they can be tested without processes.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

log = logging.getLogger(__name__)

OVER_MEMORY = "over_memory"
OVER_TIME = "over_time"
OVER_DISK = "over_disk"


@dataclass
class JobView:
    """What the limits need to know about one running job at one tick."""

    key: str
    memory_mb: float
    request_mb: Optional[float]
    own_limit_mb: Optional[float]
    elapsed_s: float = 0.0
    walltime_s: Optional[float] = None
    disk_mb: float = 0.0
    disk_limit_mb: Optional[float] = None


def own_limit_mb(request_mb: Optional[float], allowance: float) -> Optional[float]:
    """The memory a job may use on its own: request × (1 + allowance); None (no limit) without a request."""
    return None if not request_mb else request_mb * (1.0 + max(0.0, allowance))


def memory_limits(
    jobs: List[JobView], envelope_mb: Optional[float], lend: bool = False
) -> Dict[str, Optional[float]]:
    """Each job's effective memory limit: its own limit, raised by what the envelope can lend it (``lend``)."""
    if envelope_mb is None or not lend:
        return {job.key: job.own_limit_mb for job in jobs}
    held = {job.key: max(job.memory_mb, job.request_mb or 0.0) for job in jobs}
    total = sum(held.values())
    limits: Dict[str, Optional[float]] = {}
    for job in jobs:
        lendable = envelope_mb - (total - held[job.key])
        limits[job.key] = lendable if job.own_limit_mb is None else max(job.own_limit_mb, lendable)
    return limits


def decide(
    jobs: List[JobView], envelope_mb: Optional[float] = None, lend: bool = False
) -> Dict[str, Tuple[str, Optional[float], str]]:
    """Jobs to kill now: key -> (failure category, memory limit at the time, human-readable reason).

    Without ``lend`` each job is held to its own limit; the envelope still kills the most-over job when the
    jobs together exceed it."""
    kills: Dict[str, Tuple[str, Optional[float], str]] = {}
    limits = memory_limits(jobs, envelope_mb, lend)
    for job in jobs:
        limit = limits[job.key]
        if job.walltime_s and job.elapsed_s > job.walltime_s:
            kills[job.key] = (OVER_TIME, limit, f"ran {job.elapsed_s:.1f} s, limit {job.walltime_s:g} s")
        elif job.disk_limit_mb and job.disk_mb > job.disk_limit_mb:
            kills[job.key] = (
                OVER_DISK,
                limit,
                f"work dir {job.disk_mb:.1f} MB, limit {job.disk_limit_mb:g} MB",
            )
        elif limit is not None and job.memory_mb > limit:
            kills[job.key] = (OVER_MEMORY, limit, f"memory {job.memory_mb:.1f} MB, limit {limit:.1f} MB")
    if envelope_mb is not None:
        survivors = [job for job in jobs if job.key not in kills]
        used = sum(job.memory_mb for job in survivors)
        if used > envelope_mb and survivors:
            worst = max(survivors, key=lambda job: job.memory_mb - (job.request_mb or 0.0))
            kills[worst.key] = (
                OVER_MEMORY,
                limits[worst.key],
                f"pilot envelope exhausted ({used:.1f} of {envelope_mb:.0f} MB); "
                f"most over its request: {worst.memory_mb:.1f} MB for {worst.request_mb or 0:.0f} MB",
            )
    return kills


def _signal(pgid: int, pids: Iterable[int], sig: int) -> None:
    """Signal the process group (the module's session) and every known tree member outside it."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in pids:
        if pid == pgid:
            continue
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class TreeKiller:
    """Kills one process tree cleanly: TERM now, KILL after ``grace_s`` for whatever is left."""

    def __init__(self, pgid: int, grace_s: float) -> None:
        self.pgid = pgid
        self.grace_s = grace_s
        self.term_at: Optional[float] = None
        self.killed = False

    def start(self, pids: Iterable[int]) -> None:
        if self.term_at is None:
            self.term_at = time.monotonic()
            _signal(self.pgid, pids, signal.SIGTERM)

    def tick(self, pids: Iterable[int]) -> None:
        """Escalate to KILL once the grace period is over (call at every sample)."""
        if self.term_at is not None and not self.killed and time.monotonic() - self.term_at >= self.grace_s:
            self.killed = True
            log.info("process group %d still alive after %.1f s: SIGKILL", self.pgid, self.grace_s)
            _signal(self.pgid, pids, signal.SIGKILL)


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to one module's process group, ignoring groups that are already gone."""
    _signal(pgid, (), sig)


def sweep(pgid: int) -> None:
    """KILL whatever a finished module left behind in its process group (daemons, stray children)."""
    _signal(pgid, (), signal.SIGKILL)
