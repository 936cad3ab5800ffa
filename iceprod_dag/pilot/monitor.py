"""Sample a job's whole process tree: RSS/PSS, CPU user+sys, scratch disk use and GPU (nvidia-smi).

Two backends with one interface: psutil when it is importable (portable), else Linux /proc. A job's tree is
its root's descendants plus, on /proc, every process still in the root's session (the pilot starts each
module in a new session, so orphaned grandchildren reparented to init are still counted). One snapshot of
the process table serves every job of a tick, so multi-job mode pays for it once.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

log = logging.getLogger(__name__)

MB = 1024.0 * 1024.0
GPU_INTERVAL_S = 5.0


@dataclass
class TreeUsage:
    """What one process tree uses right now."""

    pids: List[int] = field(default_factory=list)
    rss_mb: float = 0.0
    pss_mb: Optional[float] = None
    cpu_user_s: float = 0.0
    cpu_sys_s: float = 0.0

    @property
    def memory_mb(self) -> float:
        """The measure limits apply to: PSS when known (shared pages counted once), else RSS."""
        return self.pss_mb if self.pss_mb is not None else self.rss_mb


class ProcBackend:
    """Linux /proc: one read of /proc/<pid>/stat per process, smaps_rollup for PSS of tree members."""

    name = "proc"

    def __init__(self) -> None:
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.page_mb = (os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096) / MB
        self._usage: Dict[int, Tuple[float, float, float]] = {}

    @staticmethod
    def available() -> bool:
        return os.path.exists("/proc/self/stat")

    def table(self) -> Dict[int, Tuple[int, int]]:
        """pid -> (ppid, session) of every live process; their usage is kept for usage() this tick."""
        out, self._usage = {}, {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    raw = handle.read()
            except OSError:
                continue  # exited meanwhile
            fields = raw[raw.rfind(b")") + 2 :].split()
            if fields[0] == b"Z":
                continue
            pid = int(entry)
            out[pid] = (int(fields[1]), int(fields[3]))
            self._usage[pid] = (
                int(fields[11]) / self.tick,
                int(fields[12]) / self.tick,
                int(fields[21]) * self.page_mb,
            )
        return out

    def usage(self, pid: int) -> Optional[Tuple[float, float, float]]:
        """(user s, sys s, rss MB) of a process seen by the last table()."""
        return self._usage.get(pid)

    @staticmethod
    def pss_mb(pid: int) -> Optional[float]:
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
                for line in handle:
                    if line.startswith(b"Pss:"):
                        return int(line.split()[1]) / 1024.0
        except (OSError, ValueError, IndexError):
            pass
        return None


class PsutilBackend:
    """psutil: the same data on any OS psutil supports (session ids are not portable: descendants only)."""

    name = "psutil"

    def __init__(self) -> None:
        import psutil  # type: ignore[import-untyped,unused-ignore]

        self.psutil = psutil
        self._procs: Dict[int, Any] = {}

    def table(self) -> Dict[int, Tuple[int, int]]:
        """pid -> (ppid, -1); only tree members are asked for their usage (the expensive part)."""
        out, self._procs = {}, {}
        for proc in self.psutil.process_iter(["ppid"]):
            ppid = proc.info.get("ppid")
            if ppid is not None:
                out[proc.pid] = (ppid, -1)
                self._procs[proc.pid] = proc
        return out

    def usage(self, pid: int) -> Optional[Tuple[float, float, float]]:
        proc = self._procs.get(pid)
        if proc is None:
            return None
        try:
            with proc.oneshot():
                if proc.status() == self.psutil.STATUS_ZOMBIE:
                    return None
                times = proc.cpu_times()
                return times.user, times.system, proc.memory_info().rss / MB
        except (self.psutil.Error, OSError):
            return None

    def pss_mb(self, pid: int) -> Optional[float]:
        try:
            pss = getattr(self.psutil.Process(pid).memory_full_info(), "pss", None)
        except (self.psutil.Error, OSError):
            return None
        return None if pss is None else pss / MB


def make_backend(use_psutil: Optional[bool] = None) -> object:
    """psutil if importable (or forced with use_psutil=True), else /proc; None when neither works."""
    if use_psutil is not False:
        try:
            return PsutilBackend()
        except ImportError:
            if use_psutil:
                raise
    if ProcBackend.available():
        return ProcBackend()
    log.warning("neither psutil nor /proc is available: only the final rusage of each job is recorded")
    return None


class Sampler:
    """Takes one snapshot of the process table and splits it into the trees of the given roots."""

    def __init__(self, use_psutil: Optional[bool] = None, pss: bool = True) -> None:
        self.backend = make_backend(use_psutil)
        self.pss = pss

    @property
    def backend_name(self) -> str:
        return getattr(self.backend, "name", "none")

    def sample(self, roots: Iterable[int]) -> Dict[int, TreeUsage]:
        roots = list(roots)
        if self.backend is None or not roots:
            return {root: TreeUsage() for root in roots}
        table = self.backend.table()  # type: ignore[attr-defined]
        children: Dict[int, List[int]] = {}
        by_session: Dict[int, List[int]] = {}
        for pid, (ppid, sid) in table.items():
            children.setdefault(ppid, []).append(pid)
            by_session.setdefault(sid, []).append(pid)
        result = {}
        for root in roots:
            members = {root} if root in table else set()
            stack = list(members) + by_session.get(root, [])
            members.update(stack)
            while stack:
                for child in children.get(stack.pop(), ()):
                    if child not in members:
                        members.add(child)
                        stack.append(child)
            usage = TreeUsage()
            pss_total: Optional[float] = 0.0
            for pid in sorted(members):
                numbers = self.backend.usage(pid)  # type: ignore[attr-defined]
                if numbers is None:
                    continue  # exited (or a zombie) since the table was read
                user, system, rss = numbers
                usage.pids.append(pid)
                usage.cpu_user_s += user
                usage.cpu_sys_s += system
                usage.rss_mb += rss
                pss = self.backend.pss_mb(pid) if self.pss else None  # type: ignore[attr-defined]
                pss_total = None if pss is None or pss_total is None else pss_total + pss
            usage.pss_mb = pss_total if usage.pids else None
            result[root] = usage
        return result


def dir_size_mb(path: str) -> float:
    """Disk space used under ``path`` (allocated blocks, like du; symlinks not followed)."""
    total = 0
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    st = entry.stat(follow_symlinks=False)
                    total += getattr(st, "st_blocks", 0) * 512 or st.st_size
            except OSError:
                continue
    return total / MB


def parse_gpu_apps(text: str, pids: Iterable[int]) -> Optional[float]:
    """GPU memory (MB) used by ``pids`` from `nvidia-smi --query-compute-apps=pid,used_memory` CSV output."""
    wanted = set(pids)
    total, seen = 0.0, False
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[0].isdigit() and int(parts[0]) in wanted:
            try:
                total += float(parts[1].split()[0])
                seen = True
            except (ValueError, IndexError):
                continue
    return total if seen else None


def parse_gpu_util(text: str) -> Optional[float]:
    """Mean utilization (%) of the node's GPUs from `nvidia-smi --query-gpu=utilization.gpu` CSV output."""
    values = []
    for line in text.splitlines():
        try:
            values.append(float(line.strip().split()[0]))
        except (ValueError, IndexError):
            continue
    return sum(values) / len(values) if values else None


class GpuProbe:
    """Calls nvidia-smi when it is on PATH, at most every GPU_INTERVAL_S (it is slow)."""

    def __init__(self) -> None:
        self.command = shutil.which("nvidia-smi")
        self.last = 0.0
        self.cached: Tuple[str, str] = ("", "")

    def sample(self, pids: Iterable[int]) -> Tuple[Optional[float], Optional[float]]:
        if not self.command:
            return None, None
        now = time.monotonic()
        if now - self.last >= GPU_INTERVAL_S:
            self.last = now
            self.cached = (
                self._run("--query-compute-apps=pid,used_memory"),
                self._run("--query-gpu=utilization.gpu"),
            )
        return parse_gpu_apps(self.cached[0], pids), parse_gpu_util(self.cached[1])

    def _run(self, query: str) -> str:
        try:
            return subprocess.run(
                [self.command, query, "--format=csv,noheader,nounits"],  # type: ignore[list-item]
                capture_output=True, text=True, timeout=10, check=False,
            ).stdout  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("nvidia-smi failed: %s", exc)
            return ""


@dataclass
class UsageStats:
    """Peaks and averages of one job over all its samples."""

    samples: int = 0
    peak_rss_mb: float = 0.0
    peak_pss_mb: Optional[float] = None
    peak_memory_mb: float = 0.0
    rss_sum: float = 0.0
    cpu_s: float = 0.0
    peak_disk_mb: float = 0.0
    peak_gpu_mem_mb: Optional[float] = None
    gpu_util_sum: float = 0.0
    gpu_samples: int = 0

    def add(self, usage: TreeUsage, disk_mb: Optional[float] = None, gpu: Tuple = (None, None)) -> None:
        self.samples += 1
        self.rss_sum += usage.rss_mb
        self.peak_rss_mb = max(self.peak_rss_mb, usage.rss_mb)
        self.peak_memory_mb = max(self.peak_memory_mb, usage.memory_mb)
        if usage.pss_mb is not None:
            self.peak_pss_mb = max(self.peak_pss_mb or 0.0, usage.pss_mb)
        if disk_mb is not None:
            self.peak_disk_mb = max(self.peak_disk_mb, disk_mb)
        mem, util = gpu
        if mem is not None:
            self.peak_gpu_mem_mb = max(self.peak_gpu_mem_mb or 0.0, mem)
        if util is not None:
            self.gpu_util_sum += util
            self.gpu_samples += 1

    @property
    def avg_rss_mb(self) -> Optional[float]:
        return self.rss_sum / self.samples if self.samples else None

    @property
    def avg_gpu_util(self) -> Optional[float]:
        return self.gpu_util_sum / self.gpu_samples if self.gpu_samples else None
