"""One job state enum shared by every site; each batch system maps its native states to it by a table, and
DAGMan's node status (the NODE_STATUS_FILE's NodeStatus, which the local engine writes too) by the one below."""

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


class NodeStatus(enum.IntEnum):
    """DAGMan's Node::status_t, as its NODE_STATUS_FILE writes it in NodeStatus and DagStatus."""

    NOT_READY = 0
    READY = 1
    PRERUN = 2
    SUBMITTED = 3
    POSTRUN = 4
    DONE = 5
    ERROR = 6
    FUTILE = 7

    @property
    def dagman_name(self) -> str:
        return "STATUS_" + self.name


#: a node's state from its NodeStatus. READY is waiting on a throttle, not in a queue; SUBMITTED is refined
#: by node_job_state from StatusDetails ("idle" / "not_idle") and JobProcsHeld; POSTRUN's job has ended but
#: the node's outcome waits for its POST script
JOB_STATE_BY_NODE_STATUS: dict[NodeStatus, JobState] = {
    NodeStatus.NOT_READY: JobState.PENDING,
    NodeStatus.READY: JobState.PENDING,
    NodeStatus.PRERUN: JobState.PENDING,
    NodeStatus.SUBMITTED: JobState.RUNNING,
    NodeStatus.POSTRUN: JobState.RUNNING,
    NodeStatus.DONE: JobState.DONE,
    NodeStatus.ERROR: JobState.FAILED,
    NodeStatus.FUTILE: JobState.CANCELLED,
}
#: DAGMan's StatusDetails of a SUBMITTED node whose job waits in the queue (a running one has "not_idle")
IDLE_DETAILS = "idle"
#: the exit status of a DAG whose driver was removed (condor_rm of DAGMan; remove or SIGTERM of the local engine)
DAG_REMOVED_EXIT = 2


def node_job_state(status: NodeStatus, details: str = "", procs_held: int = 0) -> JobState:
    """The JobState of one NodeStatus ad."""
    if status is NodeStatus.SUBMITTED:
        if procs_held:
            return JobState.HELD
        if details == IDLE_DETAILS:
            return JobState.IDLE
    return JOB_STATE_BY_NODE_STATUS[status]


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
