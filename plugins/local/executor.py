"""Run node jobs and scripts as real processes on this machine, packed within its cpus and memory.

Each process gets its own session (so an abort or Ctrl-C can kill its whole tree) and is reaped with
``wait4``, which hands back its CPU times and peak RSS for the job ClassAd at no extra cost. Waiting uses one
pidfd per child in an epoll set, so the engine sleeps until a child ends or its timer is due.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import select
import signal
import subprocess
import time
from typing import Any

logger = logging.getLogger(__name__)

_CLUSTER = re.compile(r"\$\((Cluster|ClusterId|Process|ProcId)\)", re.IGNORECASE)


@dataclasses.dataclass
class Launch:
    """One process to run: a node's job attempt or one of its scripts."""

    argv: list[str]
    cwd: str
    key: str = ""
    env: dict[str, str] | None = None  # None: inherit the engine's environment
    stdout: str | None = None
    stderr: str | None = None
    cpus: int = 1
    memory_mb: int = 0
    script: bool = False
    cluster: int = 0
    #: what the job ClassAd and the stats database want to know (Cmd, Args, submit file, pilot record...)
    info: dict[str, object] = dataclasses.field(default_factory=dict)

    def set_cluster(self, cluster: int) -> None:
        """Give the attempt its id and substitute $(Cluster)/$(Process) in its output paths and arguments."""
        self.cluster = cluster

        def sub(text: str) -> str:
            return _CLUSTER.sub(
                lambda m: "0" if m.group(1).lower().startswith("proc") else str(cluster), text
            )

        if self.stdout and "$(" in self.stdout:
            self.stdout = sub(self.stdout)
        if self.stderr and "$(" in self.stderr:
            self.stderr = sub(self.stderr)
        self.argv = [sub(a) if "$(" in a else a for a in self.argv]


@dataclasses.dataclass
class Exit:
    """How one process ended."""

    key: str
    pid: int
    exit_code: int | None  # None when killed by a signal
    signal: int | None
    start: float
    end: float
    user_cpu: float = 0.0
    sys_cpu: float = 0.0
    maxrss_kb: int = 0
    error: str | None = None  # the process could not be started

    @property
    def value(self) -> int:
        """DAGMan's $RETURN: the exit code, or minus the signal number."""
        if self.exit_code is not None:
            return self.exit_code
        return -(self.signal or 1)


class _Child:
    __slots__ = ("launch", "proc", "pidfd", "start")

    def __init__(self, launch: Launch, proc: subprocess.Popen[bytes], pidfd: int, start: float) -> None:
        self.launch = launch
        self.proc = proc
        self.pidfd = pidfd
        self.start = start


def machine_resources() -> tuple[int, int]:
    """This machine's usable cpus and memory in MB."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    return cpus, int(memory_mb)


class ProcessExecutor:
    """Starts processes when their requests fit, and reports them as they end."""

    def __init__(
        self,
        cpus: int | None = None,
        memory_mb: int | None = None,
        kill_grace_s: float = 5.0,
        use_pilot: bool = True,
        pilot_procs: int | None = None,
        pilot_dir: str = ".",
        pilot_log: str | None = None,
    ) -> None:
        mcpus, mmem = machine_resources()
        self.cpus = cpus or mcpus
        self.memory_mb = memory_mb or mmem
        self.kill_grace_s = kill_grace_s
        self.free_cpus = self.cpus
        self.free_memory_mb = self.memory_mb
        self._children: dict[int, _Child] = {}  # pidfd (or pid) -> child
        self._poll = select.epoll()
        self._pending: list[Exit] = []  # failed starts, reported at the next wait
        self._kill_deadline: float | None = None
        self._use_pilot = use_pilot
        self.pilot_procs = pilot_procs or max(1, min(self.cpus, 2))
        self._pilots: dict[int, Any] = {}  # stdout fd -> PilotClient
        self._pilot_dir = pilot_dir
        self._pilot_log = pilot_log
        self._in_pilot: dict[str, tuple[Launch, float, Any]] = {}
        #: stats records of pilot jobs that ended, by key, for the recorder to pop
        self.records: dict[str, dict[str, Any]] = {}

    # requests larger than the machine run alone rather than never
    def fits(self, cpus: int, memory_mb: int) -> bool:
        if self.free_cpus == self.cpus and self.free_memory_mb == self.memory_mb:
            return True
        return cpus <= self.free_cpus and memory_mb <= self.free_memory_mb

    def active(self) -> int:
        return len(self._children) + len(self._in_pilot)

    def start(self, launch: Launch) -> None:
        start = time.time()
        if self._use_pilot and launch.info.get("pilot") and self._start_in_pilot(launch):
            return
        out = err = None
        try:
            out = _open_output(launch.stdout)
            err = _open_output(launch.stderr) if launch.stderr != launch.stdout else out
            proc = subprocess.Popen(
                launch.argv,
                cwd=launch.cwd,
                env=launch.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            logger.warning("cannot start %s (%s): %s", launch.key, launch.argv[0], exc)
            self._pending.append(Exit(launch.key, 0, None, None, start, time.time(), error=str(exc)))
            return
        finally:
            for f in {out, err}:
                if f not in (None, subprocess.DEVNULL):
                    f.close()
        pidfd = os.pidfd_open(proc.pid)
        self._children[pidfd] = _Child(launch, proc, pidfd, start)
        self._poll.register(pidfd, select.EPOLLIN)
        if not launch.script:
            self.free_cpus -= launch.cpus
            self.free_memory_mb -= launch.memory_mb

    def _start_in_pilot(self, launch: Launch) -> bool:
        from iceprod_dag.plugins.local.pilotexec import PilotClient, work_item

        item = work_item(launch.argv, launch.cwd, launch.key)
        if item is None:
            return False
        if not self._pilots:
            for _ in range(self.pilot_procs):
                client = PilotClient(self.cpus, self.memory_mb, self._pilot_dir, self._pilot_log)
                self._pilots[client.fd] = client
                self._poll.register(client.fd, select.EPOLLIN)
        client = min(self._pilots.values(), key=lambda c: c.running)
        self._in_pilot[launch.key] = (launch, time.time(), client)
        self.free_cpus -= launch.cpus
        self.free_memory_mb -= launch.memory_mb
        client.send(item)
        return True

    def _pilot_exits(self, fd: int) -> list[Exit]:
        client = self._pilots[fd]
        out = []
        for key, rec in client.read():
            if not key:  # the pilot process died: its jobs are lost, report them failed
                self._poll.unregister(fd)
                del self._pilots[fd]
                for k, (_launch, start, c) in list(self._in_pilot.items()):
                    if c is client:
                        out.append(self._pilot_exit(k, start, None, "the pilot process died"))
                continue
            out.append(self._pilot_exit(key, time.time(), rec, None))
        return out

    def _pilot_exit(self, key: str, start: float, rec: dict[str, Any] | None, error: str | None) -> Exit:
        launch, started, _ = self._in_pilot.pop(key)
        self.free_cpus += launch.cpus
        self.free_memory_mb += launch.memory_mb
        if rec is None:
            return Exit(key, 0, None, None, started, time.time(), error=error)
        self.records[key] = rec
        code = rec.get("pilot_exit_code")
        return Exit(
            key=key,
            pid=0,
            exit_code=8 if code is None else int(code),  # exitcodes.PILOT_ERROR: a record without its verdict
            signal=None,
            start=float(rec.get("start") or started),
            end=float(rec.get("end") or time.time()),
            user_cpu=float(rec.get("cpu_user_s") or 0.0),
            sys_cpu=float(rec.get("cpu_sys_s") or 0.0),
            maxrss_kb=int((rec.get("peak_rss_mb") or 0.0) * 1024),
        )

    def wait(self, timeout: float | None) -> list[Exit]:
        """Processes that ended, waiting up to timeout seconds for at least one."""
        done, self._pending = self._pending, []
        if done:
            timeout = 0
        for client in self._pilots.values():
            client.flush()
        if self._kill_deadline is not None and time.time() > self._kill_deadline:
            self._signal_all(signal.SIGKILL)
            self._kill_deadline = None
        try:
            ready = self._poll.poll(timeout if timeout is not None else -1)
        except InterruptedError:  # pragma: no cover - PEP 475 retries, a raising handler ends up here
            ready = []
        for fd, _ in ready:
            if fd in self._pilots:
                done.extend(self._pilot_exits(fd))
                continue
            child = self._children.pop(fd)
            self._poll.unregister(fd)
            os.close(fd)
            done.append(self._reap(child))
        return done

    def kill_all(self) -> None:
        """SIGTERM every running process tree, SIGKILL what is left after the grace time."""
        self._signal_all(signal.SIGTERM)
        self._kill_deadline = time.time() + self.kill_grace_s

    def close(self) -> None:
        for client in self._pilots.values():
            client.close()
        self._poll.close()

    def _signal_all(self, sig: int) -> None:
        for client in self._pilots.values():
            client.kill(sig)
        for child in self._children.values():
            try:
                os.killpg(child.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def _reap(self, child: _Child) -> Exit:
        pid, status, ru = os.wait4(child.proc.pid, 0)
        child.proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen never waits on it again
        end = time.time()
        launch = child.launch
        if not launch.script:
            self.free_cpus += launch.cpus
            self.free_memory_mb += launch.memory_mb
        code = signum = None
        if os.WIFSIGNALED(status):
            signum = os.WTERMSIG(status)
        else:
            code = os.WEXITSTATUS(status)
        return Exit(launch.key, pid, code, signum, child.start, end, ru.ru_utime, ru.ru_stime, ru.ru_maxrss)


_libc: Any = None


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the engine dies (kill -9), so no orphan finishes a node
    that the resumed run will start again. Costs a fork instead of a vfork, ~0.3 ms per job."""
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _open_output(path: str | None):  # noqa: ANN202 - a file object or DEVNULL
    if not path:
        return subprocess.DEVNULL
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    return open(path, "ab")  # noqa: SIM115 - closed right after the fork
