"""Slurm's job states (squeue %T, sacct State) mapped to our one state enum; anything else is UNKNOWN."""

from __future__ import annotations

from iceprod_dag.common.states import JobState

NATIVE_STATES: dict[str, JobState] = {
    "PENDING": JobState.IDLE,
    "CONFIGURING": JobState.IDLE,
    "REQUEUED": JobState.IDLE,
    "RESIZING": JobState.IDLE,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "SUSPENDED": JobState.HELD,
    "STOPPED": JobState.HELD,
    "REQUEUE_HOLD": JobState.HELD,
    "REQUEUE_FED": JobState.HELD,
    "RESV_DEL_HOLD": JobState.HELD,
    "SPECIAL_EXIT": JobState.HELD,
    "COMPLETED": JobState.DONE,
    "FAILED": JobState.FAILED,
    "TIMEOUT": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "DEADLINE": JobState.FAILED,
    "PREEMPTED": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
}


def to_state(native: str) -> JobState:
    """Our state for a Slurm state; sacct writes "CANCELLED by 0", so only the first word counts."""
    word = native.strip().split(" ", 1)[0].rstrip("+")
    return NATIVE_STATES.get(word, JobState.UNKNOWN)
