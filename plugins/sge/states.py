"""Grid Engine's job states (qstat's state letters) mapped to our one state enum; anything else is UNKNOWN.

A job waiting on -hold_jid shows as "hqw": that is waiting for its parents, not a hold by a person.
A job in error state (E..., e.g. after exiting 100) keeps its place in the queue: HELD until deleted.
"""

from __future__ import annotations

from iceprod_dag.common.states import JobState

NATIVE_STATES: dict[str, JobState] = {
    "qw": JobState.IDLE,
    "hqw": JobState.IDLE,
    "hRwq": JobState.IDLE,
    "Rq": JobState.IDLE,
    "t": JobState.RUNNING,
    "r": JobState.RUNNING,
    "Rr": JobState.RUNNING,
    "Rt": JobState.RUNNING,
    "hr": JobState.RUNNING,
    "s": JobState.HELD,
    "ts": JobState.HELD,
    "S": JobState.HELD,
    "tS": JobState.HELD,
    "T": JobState.HELD,
    "tT": JobState.HELD,
    "Rs": JobState.HELD,
    "RS": JobState.HELD,
    "RT": JobState.HELD,
    "Eqw": JobState.HELD,
    "Ehqw": JobState.HELD,
    "EhRqw": JobState.HELD,
    "dr": JobState.CANCELLED,
    "dt": JobState.CANCELLED,
    "dRr": JobState.CANCELLED,
    "dRt": JobState.CANCELLED,
    "ds": JobState.CANCELLED,
    "dS": JobState.CANCELLED,
    "dT": JobState.CANCELLED,
    "dqw": JobState.CANCELLED,
    "dhqw": JobState.CANCELLED,
    "dEqw": JobState.CANCELLED,
}


def to_state(native: str) -> JobState:
    return NATIVE_STATES.get(native.strip(), JobState.UNKNOWN)
