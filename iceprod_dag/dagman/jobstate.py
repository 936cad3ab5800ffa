"""DAGMan's JOBSTATE_LOG (the Pegasus-style jobstate.log): a writer and a reader.

One line per event: ``<unix time> <node> <EVENT> <condor id | return value | -> <site> - <sequence>``, plus the
``INTERNAL *** DAGMAN_STARTED c.p ***`` / ``*** DAGMAN_FINISHED code ***`` lines. The sequence number counts
node job submissions across the DAG (DAGMan's Pegasus sequence number); every line of a node carries the number
of its latest submission (0 before the first). Each line is one append, so a killed writer loses nothing
already written.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path

SITE = "-"  # DAGMan writes the node's Pegasus site, "-" when the DAG sets none


@dataclasses.dataclass
class JobstateLine:
    """One parsed line; ``node`` is "INTERNAL" for DAGMan's own lines."""

    timestamp: int
    node: str
    event: str
    info: str  # "c.p", a return value, "-", or for INTERNAL lines the text between the *** marks
    site: str = SITE
    sequence: int | None = None

    @property
    def condor_id(self) -> tuple[int, int] | None:
        cluster, dot, proc = self.info.partition(".")
        if dot and cluster.isdigit() and proc.isdigit():
            return int(cluster), int(proc)
        return None


class JobstateLogWriter:
    """Appends lines to a jobstate.log; the engine calls one method per DAGMan event."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._seq = 0
        self._node_seq: dict[str, int] = {}
        self._fd: int | None = None

    def _write(self, line: str, when: float | None) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        stamp = int(time.time() if when is None else when)
        os.write(self._fd, f"{stamp} {line}\n".encode())

    def _node(self, node: str, event: str, info: str, when: float | None) -> None:
        self._write(f"{node} {event} {info} {SITE} - {self._node_seq.get(node, 0)}", when)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> JobstateLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def resume_sequence(self, lines: list[JobstateLine]) -> None:
        """Continue numbering after an existing log (a resumed run appends to the same file)."""
        for ln in lines:
            if ln.sequence is not None and ln.node != "INTERNAL":
                self._node_seq[ln.node] = ln.sequence
                self._seq = max(self._seq, ln.sequence)

    # -- DAGMan's own lines -----------------------------------------------------------------------------------------
    def dagman_started(self, cluster: int, proc: int = 0, when: float | None = None) -> None:
        self._write(f"INTERNAL *** DAGMAN_STARTED {cluster}.{proc} ***", when)

    def dagman_finished(self, exit_code: int, when: float | None = None) -> None:
        self._write(f"INTERNAL *** DAGMAN_FINISHED {exit_code} ***", when)

    def recovery_started(self, when: float | None = None) -> None:
        self._write("INTERNAL *** RECOVERY_STARTED ***", when)

    def recovery_finished(self, when: float | None = None) -> None:
        self._write("INTERNAL *** RECOVERY_FINISHED ***", when)

    # -- node lines -------------------------------------------------------------------------------------------------
    def submit(self, node: str, cluster: int, proc: int = 0, when: float | None = None) -> None:
        """SUBMIT: a new job of the node; takes the next sequence number."""
        self._seq += 1
        self._node_seq[node] = self._seq
        self._node(node, "SUBMIT", f"{cluster}.{proc}", when)

    def job_event(
        self, node: str, event: str, cluster: int, proc: int = 0, when: float | None = None
    ) -> None:
        """A job event under its ULOG name: EXECUTE, JOB_TERMINATED, JOB_HELD, JOB_RELEASED, JOB_ABORTED,
        JOB_EVICTED, POST_SCRIPT_TERMINATED..."""
        self._node(node, event, f"{cluster}.{proc}", when)

    def job_result(self, node: str, return_value: int, when: float | None = None) -> None:
        """JOB_SUCCESS 0 or JOB_FAILURE <return value> (DAGMan's retval: -signal when killed by a signal)."""
        self._node(node, "JOB_SUCCESS" if return_value == 0 else "JOB_FAILURE", str(return_value), when)

    def submit_failed(self, node: str, when: float | None = None) -> None:
        self._node(node, "SUBMIT_FAILED", "-", when)

    def pre_script_started(self, node: str, when: float | None = None) -> None:
        self._node(node, "PRE_SCRIPT_STARTED", "-", when)

    def pre_script_result(self, node: str, return_value: int, when: float | None = None) -> None:
        self._node(node, "PRE_SCRIPT_SUCCESS" if return_value == 0 else "PRE_SCRIPT_FAILURE", "-", when)

    def post_script_started(self, node: str, cluster: int, proc: int = 0, when: float | None = None) -> None:
        self._node(node, "POST_SCRIPT_STARTED", f"{cluster}.{proc}", when)

    def post_script_result(
        self, node: str, return_value: int, cluster: int, proc: int = 0, when: float | None = None
    ) -> None:
        event = "POST_SCRIPT_SUCCESS" if return_value == 0 else "POST_SCRIPT_FAILURE"
        self._node(node, event, f"{cluster}.{proc}", when)


def parse_line(line: str) -> JobstateLine | None:
    """One line, or None for a blank or malformed one (a line cut by a crash)."""
    parts = line.split()
    if len(parts) < 3 or not parts[0].isdigit():
        return None
    stamp = int(parts[0])
    if parts[1] == "INTERNAL":
        text = " ".join(parts[2:]).strip("* ").strip()
        event, _, info = text.partition(" ")
        return JobstateLine(stamp, "INTERNAL", event, info)
    if len(parts) != 7 or not parts[6].lstrip("-").isdigit():
        return None
    return JobstateLine(stamp, parts[1], parts[2], parts[3], parts[4], int(parts[6]))


def iter_jobstate(path: Path | str) -> Iterator[JobstateLine]:
    with open(path) as f:
        for raw in f:
            parsed = parse_line(raw)
            if parsed is not None:
                yield parsed


def read_jobstate(path: Path | str) -> list[JobstateLine]:
    """Every well-formed line of a jobstate.log (DAGMan's or ours)."""
    return list(iter_jobstate(path))
