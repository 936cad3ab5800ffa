"""Peaks that do not depend on the sampling interval: cgroup v2 ``memory.peak``, else the children's ru_maxrss.

cgroup v2 (where the pilot's cgroup is writable and offers the memory controller): each module runs in a
cgroup of its own, so ``memory.peak`` is the whole tree's peak as the kernel counted it, and ``memory.max``
makes the kernel enforce the job's own limit exactly (an OOM kill there is ``over_memory``).

Otherwise wait4's ``ru_maxrss``: the largest single process of the tree. Linux carries the parent's peak
RSS into a child across fork/exec, so the pilot resets its own high-water mark (``/proc/self/clear_refs``)
and reads it just before starting a module: a child peak above that is the module's own; one at or below it
only bounds the module's peak from above (``rusage_bound``).
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import List, Optional

log = logging.getLogger(__name__)

MB = 1024.0 * 1024.0
#: how far a child's ru_maxrss must exceed the pilot's own RSS at spawn to be the module's (the pilot's
#: threads may grow a little between the read and the exec)
RUSAGE_MARGIN_MB = 1.0
#: joins the cgroup named by $0, then becomes the module: one extra exec of a small shell
_JOIN = 'echo $$ > "$0" 2>/dev/null; exec "$@"'

CGROUP = "cgroup"
RUSAGE = "rusage"
RUSAGE_BOUND = "rusage_bound"
SAMPLES = "samples"


@dataclass
class Peak:
    """What the kernel says about one module: its peak (MB), where it comes from, whether it was OOM-killed."""

    memory_mb: Optional[float]
    source: str
    exact: bool
    oom_killed: bool = False


def _read(path: str) -> str:
    with open(path, encoding="ascii") as handle:
        return handle.read()


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(text)


def _status_hwm_mb() -> Optional[float]:
    try:
        with open("/proc/self/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


#: the pilot's own peak RSS before its resets (getrusage(RUSAGE_SELF) forgets what a reset cleared)
_OWN_PEAK = [0.0]


def own_hwm_mb() -> Optional[float]:
    """Reset this process's peak RSS to its current RSS and return it (VmHWM); None off Linux."""
    before = _status_hwm_mb()
    if before is None:
        return None
    _OWN_PEAK[0] = max(_OWN_PEAK[0], before)
    try:
        _write("/proc/self/clear_refs", "5")
    except OSError:
        return before  # old kernel or no permission: the unreset peak is still a valid threshold
    return _status_hwm_mb()


def own_peak_mb() -> Optional[float]:
    """This process's peak RSS over its life, across the resets own_hwm_mb made."""
    now = _status_hwm_mb()
    return None if now is None else max(now, _OWN_PEAK[0])


def rusage_peak(maxrss_mb: float, hwm_mb: Optional[float]) -> Peak:
    """The module's peak from its ru_maxrss, given the pilot's VmHWM when it was started."""
    if hwm_mb is not None and maxrss_mb > hwm_mb + RUSAGE_MARGIN_MB:
        return Peak(maxrss_mb, RUSAGE, True)
    return Peak(maxrss_mb if maxrss_mb > 0 else None, RUSAGE_BOUND, False)


def _cgroup2_mount() -> Optional[str]:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as handle:
            for line in handle:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    return left.split()[4]
    except OSError:
        pass
    return None


def _own_cgroup() -> Optional[str]:
    try:
        for line in _read("/proc/self/cgroup").splitlines():
            if line.startswith("0::"):
                return line[3:]
    except OSError:
        pass
    return None


class CgroupTree:
    """A cgroup v2 folder of this pilot where each module gets a child cgroup with the memory controller."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._count = 0
        self._lock = threading.Lock()

    @classmethod
    def create(cls) -> Optional["CgroupTree"]:
        """Make this pilot's cgroup folder, or None (and a debug line) when the host does not allow it."""
        mount, own = _cgroup2_mount(), _own_cgroup()
        if mount is None or own is None:
            return None
        base = os.path.normpath(mount + "/" + own)
        try:
            if "memory" not in _read(os.path.join(base, "cgroup.controllers")).split():
                log.debug("cgroup %s offers no memory controller", base)
                return None
            if not os.access(base, os.W_OK):
                return None
            _enable_memory(base)
            root = os.path.join(base, f"iceprod-pilot-{os.getpid()}")
            os.mkdir(root)
            _write(os.path.join(root, "cgroup.subtree_control"), "+memory")
        except OSError as exc:
            log.debug("no cgroup for the pilot's jobs under %s: %s", base, exc)
            return None
        tree = cls(root)
        atexit.register(tree.close)
        return tree

    def job(self, key: str, limit_mb: Optional[float]) -> Optional[str]:
        """A new cgroup for one module, with ``memory.max`` = ``limit_mb`` when given; None if it fails."""
        with self._lock:
            self._count += 1
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", key) + f".{self._count}"
        path = os.path.join(self.root, name)
        try:
            os.mkdir(path)
            if limit_mb:
                _write(os.path.join(path, "memory.max"), str(int(limit_mb * MB)))
                try:
                    _write(os.path.join(path, "memory.swap.max"), "0")  # over the limit is a kill, not swap
                except OSError:
                    pass  # no swap accounting: nothing to forbid
        except OSError as exc:
            log.debug("cannot make cgroup %s: %s", path, exc)
            return None
        return path

    @staticmethod
    def wrap(path: str, argv: List[str]) -> List[str]:
        """A command line that joins cgroup ``path`` and then execs ``argv``."""
        return ["/bin/sh", "-c", _JOIN, os.path.join(path, "cgroup.procs"), *argv]

    @staticmethod
    def finish(path: str) -> Peak:
        """The module's peak and OOM kills from its cgroup, which is then removed."""
        peak: Optional[float] = None
        oom = False
        try:
            peak = int(_read(os.path.join(path, "memory.peak")).split()[0]) / MB
        except (OSError, ValueError, IndexError):
            pass  # kernel before 5.19: no memory.peak
        try:
            for line in _read(os.path.join(path, "memory.events")).splitlines():
                name, _, value = line.partition(" ")
                oom = oom or (name == "oom_kill" and int(value) > 0)
        except (OSError, ValueError):
            pass
        _rmdir(path)
        if not peak:  # the module never joined it (the shell could not write cgroup.procs)
            return Peak(None, CGROUP, False, oom)
        return Peak(peak, CGROUP, True, oom)

    def close(self) -> None:
        _rmdir(self.root)


def _enable_memory(base: str) -> None:
    """Make ``base`` hand the memory controller to its children. cgroup v2 allows that only in a cgroup
    without processes: when this pilot is alone in it, it moves itself into a leaf first."""
    control = os.path.join(base, "cgroup.subtree_control")
    if "memory" in _read(control).split():
        return
    try:
        _write(control, "+memory")
        return
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
    procs = {int(p) for p in _read(os.path.join(base, "cgroup.procs")).split()}
    if procs != {os.getpid()}:
        raise OSError(errno.EBUSY, f"other processes share {base}")
    leaf = os.path.join(base, f"iceprod-pilot-{os.getpid()}-self")
    os.makedirs(leaf, exist_ok=True)
    _write(os.path.join(leaf, "cgroup.procs"), str(os.getpid()))
    _write(control, "+memory")


def _rmdir(path: str) -> None:
    # a killed module's cgroup stays busy until its last process is reaped: retry briefly
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                break
            time.sleep(0.01)
    log.debug("cgroup %s left behind", path)


_TREE: List[Optional[CgroupTree]] = []
_TREE_LOCK = threading.Lock()


def cgroup_tree() -> Optional[CgroupTree]:
    """This pilot's cgroup folder, made on first use; None where cgroup v2 cannot be used."""
    with _TREE_LOCK:
        if not _TREE:
            _TREE.append(CgroupTree.create())
        return _TREE[0]
