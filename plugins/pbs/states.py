"""PBS Pro / Torque job states (qstat's job_state letter) mapped to our one state enum; others are UNKNOWN.

"F" (PBS Pro, finished) and "C" (Torque, completed) say nothing about success: the watcher reads the
attempt's exit marker for that. They map to DONE only so that they count as ended.
"""

from __future__ import annotations

from iceprod_dag.common.states import JobState

NATIVE_STATES: dict[str, JobState] = {
    "Q": JobState.IDLE,  # queued
    "W": JobState.IDLE,  # waiting for its start time
    "T": JobState.IDLE,  # being moved
    "M": JobState.IDLE,  # moved to another server
    "R": JobState.RUNNING,
    "E": JobState.RUNNING,  # exiting after having run
    "B": JobState.RUNNING,  # array job: at least one element started
    "H": JobState.HELD,
    "S": JobState.HELD,  # suspended
    "U": JobState.HELD,  # suspended: workstation busy
    "F": JobState.DONE,
    "X": JobState.DONE,  # array element finished
    "C": JobState.DONE,  # Torque: completed
}


def to_state(native: str) -> JobState:
    return NATIVE_STATES.get(native.strip(), JobState.UNKNOWN)
