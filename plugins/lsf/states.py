"""LSF job states (bjobs STAT) mapped to our one state enum; anything else is UNKNOWN."""

from __future__ import annotations

from iceprod_dag.common.states import JobState

NATIVE_STATES: dict[str, JobState] = {
    "PEND": JobState.IDLE,
    "WAIT": JobState.IDLE,  # chunk job member waiting
    "PROV": JobState.IDLE,  # host being provisioned
    "RUN": JobState.RUNNING,
    "PSUSP": JobState.HELD,  # suspended by its owner while pending
    "USUSP": JobState.HELD,
    "SSUSP": JobState.HELD,
    "DONE": JobState.DONE,
    "EXIT": JobState.FAILED,
    "UNKWN": JobState.UNKNOWN,
    "ZOMBI": JobState.UNKNOWN,
}


def to_state(native: str) -> JobState:
    return NATIVE_STATES.get(native.strip(), JobState.UNKNOWN)
