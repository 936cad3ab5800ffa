"""One process runs a run folder at a time: it holds an fcntl lock on the folder's ``run.lock``.

The lock belongs to the open file, not to a pid, so it ends with its holder however that dies (``kill -9``
included) and never goes stale. A site that starts its runner in the background takes the lock first and
hands the open file to the child (``pass_fds``), so a second submit is refused from the moment the first one
is accepted. The file holds the holder's pid, for the refusal's message; a site that will hand the lock over
leaves it empty until its runner has a pid, and a refused submit waits for that pid rather than naming the
short-lived submitting process.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import time
from pathlib import Path
from types import TracebackType

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import RunLockedError

log = logging.getLogger(__name__)

#: seconds between tries while waiting for a holder that has recorded its end to exit
RETRY_S = 0.05
#: seconds a new runner waits for the previous one to exit once that one has recorded the run's end
ENDING_WAIT_S = 30.0


class RunLock:
    """The lock of one run folder; ``acquire`` it, or ``adopt`` the open file a parent passed down."""

    def __init__(self, run_dir: Path, fd: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / names.RUN_LOCK
        self.fd = fd

    @classmethod
    def adopt(cls, run_dir: Path, fd: int) -> RunLock:
        """The lock a parent took and passed to this process as file descriptor fd; records our pid."""
        lock = cls(run_dir, fd)
        os.set_inheritable(fd, False)  # our jobs must not keep the run locked after we end
        lock.set_holder(os.getpid())
        return lock

    def acquire(self, wait_s: float = 0.0, handing_over: bool = False) -> RunLock:
        """Take the lock, or raise RunLockedError naming the holder's pid. wait_s: how long to wait for a
        holder that is on its way out (its run has ended). handing_over: the caller will pass the lock to a
        runner it starts (start_holder), so the file names no holder until that runner's pid is known."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    pid = _holder_pid(fd)
                    os.close(fd)
                    who = f"process {pid}" if pid else "another process"
                    raise RunLockedError(
                        f"{self.run_dir} is being run by {who} (it holds {self.path}); wait for it to end, or"
                        " stop it with `iceprod-dag remove`",
                        pid,
                    ) from None
                time.sleep(RETRY_S)
        self.fd = fd
        if handing_over:
            os.ftruncate(fd, 0)
        else:
            self.set_holder(os.getpid())
        return self

    def set_holder(self, pid: int) -> None:
        """Record the pid that runs the folder (a parent records its child's)."""
        if self.fd is None:
            raise RuntimeError("the run lock is not held")
        # write, then cut: a reader never sees an empty file here (that means "handing over"), and a longer
        # earlier pid's tail is past the first line it reads
        record = f"{pid}\n".encode()
        os.pwrite(self.fd, record, 0)
        os.ftruncate(self.fd, len(record))

    def hand_over(self) -> None:
        """Close this process's copy after passing the open file to a child: the child keeps the lock."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def start_holder(self, argv: list[str], log_path: Path) -> int:
        """Start argv as a detached process (its own session, output appended to log_path, in the run folder)
        that takes this lock over: it inherits the open lock file, and this process lets go of its copy.
        Returns its pid."""
        if self.fd is None:
            raise RuntimeError("the run lock is not held")
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                cwd=self.run_dir,
                pass_fds=(self.fd,),
            )
        self.set_holder(proc.pid)
        self.hand_over()
        return proc.pid

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self if self.fd is not None else self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    lines = os.pread(fd, 64, 0).decode(errors="replace").splitlines()
    text = lines[0].strip() if lines else ""
    return int(text) if text.isdigit() else None


def _holder_pid(fd: int) -> int | None:
    """The holder's pid; while a holder hands the lock to the runner it starts, wait for the runner's pid (for
    as long as the lock stays held, at most ENDING_WAIT_S)."""
    deadline = time.monotonic() + ENDING_WAIT_S
    while True:
        pid = _read_pid(fd)
        if pid is not None or time.monotonic() >= deadline:
            return pid
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            time.sleep(RETRY_S)
            continue
        fcntl.flock(fd, fcntl.LOCK_UN)  # the holder let go without naming a runner: nobody to name
        return None
