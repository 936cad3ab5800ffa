"""One job state enum shared by every site; each batch system maps its native states to it by a table."""

from __future__ import annotations

import enum


class JobState(enum.Enum):
    """State of one node's current attempt, whatever the site."""

    UNKNOWN = "unknown"
    PENDING = "pending"
    IDLE = "idle"
    RUNNING = "running"
    HELD = "held"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class FailureCategory(enum.Enum):
    """Why an attempt failed, as the pilot records it."""

    TASK_FAILED = "task_failed"
    STAGE_IN = "stage_in"
    STAGE_OUT = "stage_out"
    OVER_MEMORY = "over_memory"
    OVER_TIME = "over_time"
    OVER_DISK = "over_disk"
    CONFIG = "config"
    PILOT_ERROR = "pilot_error"
    KILLED = "killed"
    #: the batch system's own verdicts, recorded by the site: held (a hold reason and code), evicted, lost
    HELD = "held"
    EVICTED = "evicted"
    LOST = "lost"
