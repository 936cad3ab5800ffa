"""The one way site plugins run batch-system commands: a timeout, captured output, and errors that carry both."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence

from iceprod_dag.common.exceptions import CommandError, CommandTimeoutError

log = logging.getLogger(__name__)


def run_command(
    cmd: Sequence[str],
    timeout: float,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run cmd (no shell) and return its completed process; raise CommandError unless it exits 0.

    env is added to (not substituted for) this process's environment, so PATH and SLURM_CONF still reach
    the command. A command that outlives its timeout is killed and raises CommandTimeoutError with
    whatever it printed so far.
    """
    argv = [str(a) for a in cmd]
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    log.debug("running %s", argv)
    try:
        # its own process group, so a timeout kills the children that hold its pipes too
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:  # command not installed, not executable
        raise CommandError(argv, None, "", str(exc)) from None
    try:
        stdout, stderr = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        stdout, stderr = proc.communicate()
        raise CommandTimeoutError(argv, timeout, stdout or "", stderr or "") from None
    if proc.returncode != 0:
        raise CommandError(argv, proc.returncode, stdout, stderr)
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
