"""The one exception tree of iceprod-dag: everything raised on purpose derives from IceprodDagError."""

from __future__ import annotations


class IceprodDagError(Exception):
    """Root of every error iceprod-dag raises on purpose."""

    exit_code = 1


class ConfigError(IceprodDagError):
    """A dataset or site configuration is invalid; carries every problem found."""

    exit_code = 2

    def __init__(self, problems: list[str] | str, path: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.path = path
        super().__init__("\n".join(self.problems))


class QuotaError(IceprodDagError):
    """A user's submitted work would go past their quota; nothing was submitted (API 429)."""

    exit_code = 2


class ExpressionError(IceprodDagError):
    """An expression like $eval(...) or $steering(...) cannot be resolved."""

    exit_code = 2


class DagSyntaxError(IceprodDagError):
    """A DAG file has a line we cannot parse or a keyword we do not support."""

    exit_code = 2

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        super().__init__(f"{where}{message}")


class SiteError(IceprodDagError):
    """A site cannot accept, follow or control a run."""


class UnknownSiteError(SiteError):
    """No installed site plugin has the requested name."""

    exit_code = 2


class CommandError(SiteError):
    """An external command (sbatch, qsub, condor tool) failed; carries command, exit code and output."""

    def __init__(self, command: list[str], returncode: int | None, stdout: str, stderr: str) -> None:
        self.command = command
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(
            f"command {' '.join(command)!r} failed with exit code {returncode}: {stderr.strip() or stdout.strip()}"
        )


class CommandTimeoutError(CommandError):
    """An external command did not finish within its timeout and was killed."""

    def __init__(self, command: list[str], timeout: float, stdout: str, stderr: str) -> None:
        self.timeout = timeout
        super().__init__(command, None, stdout, stderr)
        self.args = (f"command {' '.join(command)!r} timed out after {timeout:g} s: {stderr.strip()[-500:]}",)

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidSiteError(SiteError):
    """A site plugin was found but does not honour the site contract (missing members, wrong name)."""

    exit_code = 2


class ActionRefusedError(SiteError):
    """A control action (suspend, resume, hold, release, resubmit, retry) that the run's site cannot do, or that
    the run's current state does not allow; the message says why and nothing was changed (CLI exit 2, API 409)."""

    exit_code = 2

    def __init__(self, action: str, reason: str) -> None:
        self.action = action
        self.reason = reason
        super().__init__(f"cannot {action}: {reason}")


class RunLockedError(IceprodDagError):
    """Another process runs (or is submitting) this run folder; the message names its pid."""

    exit_code = 2

    def __init__(self, message: str, pid: int | None = None) -> None:
        self.pid = pid
        super().__init__(message)


class RunNotFoundError(IceprodDagError):
    """A run folder does not exist or holds no DAG."""

    exit_code = 2


class StatsError(IceprodDagError):
    """The stats database refused a record."""


class StaleUpdateError(StatsError):
    """An update for an attempt older than the one already recorded."""


class UnknownNodeError(StatsError):
    """A report names a node its dataset does not have."""


class AuthError(IceprodDagError):
    """A user or token is not allowed to do what it asked."""


class TransferError(IceprodDagError):
    """A pilot file transfer failed after every retry or arrived corrupt; names the URL."""


class ClassAdError(StatsError):
    """A ClassAd text cannot be parsed; the message names the file and line."""
