"""The one way site plugins run batch-system commands: a timeout, captured output, and errors that carry both."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence

from iceprod_dag.exceptions import CommandError, CommandTimeoutError

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
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandTimeoutError(argv, timeout, _text(exc.stdout), _text(exc.stderr)) from None
    except OSError as exc:  # command not installed, not executable
        raise CommandError(argv, None, "", str(exc)) from None
    if proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stdout, proc.stderr)
    return proc


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data
