"""Follow a DAG on HTCondor from files alone: the nodes' job event log, read incrementally with
htcondor2.JobEventLog, the DAGMan job's own event log (how the DAG ended) and DAGMan's node status file.

No schedd query is needed to follow a run, so `status` and `watch` work while the schedd is busy, and a
follower resumes from disk alone: a new follower re-reads the logs from the start.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import htcondor2

from iceprod_dag.common import names
from iceprod_dag.common.states import DAG_REMOVED_EXIT, JobState
from iceprod_dag.dagman.nodestatus import read_node_status
from iceprod_dag.sites.base import RunStatus

log = logging.getLogger(__name__)

ET = htcondor2.JobEventType
#: one table from event type to the state of the node whose job logged it
STATE_BY_EVENT: dict[htcondor2.JobEventType, JobState] = {
    ET.SUBMIT: JobState.IDLE,
    ET.EXECUTE: JobState.RUNNING,
    ET.JOB_HELD: JobState.HELD,
    ET.JOB_RELEASED: JobState.IDLE,
    ET.JOB_EVICTED: JobState.IDLE,
    ET.JOB_ABORTED: JobState.CANCELLED,
}


@dataclasses.dataclass
class NodeInfo:
    """What the event log says about one node's latest attempt."""

    state: JobState = JobState.PENDING
    cluster: int | None = None
    attempts: int = 0
    reason: str = ""
    exit_code: int | None = None
    started: float | None = None
    ended: float | None = None


def final_node_states(path: Path) -> tuple[dict[str, JobState], dict[str, str]]:
    """Node states and their StatusDetails from DAGMan's node status file, through the one codec."""
    try:
        report = read_node_status(path)
    except FileNotFoundError:
        return {}, {}
    except ValueError as exc:  # not a status file DAGMan finished writing: the event logs still say enough
        log.warning("cannot read %s: %s", path, exc)
        return {}, {}
    return {n.node: n.job_state for n in report.nodes}, {n.node: n.details for n in report.nodes if n.details}


def rescue_done_nodes(rescue: Path) -> frozenset[str]:
    """The nodes a rescue DAG marks DONE."""
    done: set[str] = set()
    try:
        text = rescue.read_text(encoding="utf-8")
    except FileNotFoundError:
        return frozenset()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].upper() == "DONE":
            done.update(parts[1:])
    return frozenset(done)


def _event_node(event: htcondor2.JobEvent) -> str | None:
    notes = event.get("LogNotes") or ""
    return notes[len("DAG Node: ") :].strip() if notes.startswith("DAG Node: ") else None


class DagFollower:
    """Incremental view of one DAG run; call poll() as often as you like."""

    def __init__(
        self,
        dag_file: Path,
        dagman_cluster: int | None,
        node_names: list[str] | None = None,
        ignore: frozenset[str] = frozenset(),
        done: frozenset[str] = frozenset(),
    ) -> None:
        self.dag_file = Path(dag_file)
        #: nodes not reported (the FINAL node: bookkeeping, not work)
        self.ignore = ignore
        self.dagman_cluster = dagman_cluster
        self._node_names = list(node_names or ())
        # nodes an earlier submission finished (the rescue DAG DAGMan resumed from): DAGMan starts a fresh
        # nodes log, so their events are gone
        self._done = done
        self.nodes: dict[str, NodeInfo] = {}
        self._nodes_log_size = 0
        self._reset_nodes()
        self._by_cluster: dict[int, str] = {}
        self._nodes_log: htcondor2.JobEventLog | None = None
        self._dagman_log: htcondor2.JobEventLog | None = None
        self.exit_code: int | None = None
        self.finished = False
        self.started = time.time()

    def _open(self, attr: str, path: Path) -> htcondor2.JobEventLog | None:
        current = getattr(self, attr)
        if current is None and path.exists() and path.stat().st_size > 0:
            current = htcondor2.JobEventLog(str(path))
            setattr(self, attr, current)
        return current

    def _reset_nodes(self) -> None:
        self.nodes = {n: NodeInfo() for n in self._node_names}
        for name in self._done:
            self.nodes[name] = NodeInfo(state=JobState.DONE)
        self._by_cluster = {}

    def _read_nodes_log(self) -> None:
        path = Path(names.nodes_log(str(self.dag_file)))
        size = path.stat().st_size if path.exists() else 0
        if size < self._nodes_log_size and self._nodes_log is not None:
            # a resubmitted DAGMan starts the nodes log afresh: read the new one from its start
            self._nodes_log.close()
            self._nodes_log = None
            self._reset_nodes()
        self._nodes_log_size = size
        jel = self._open("_nodes_log", path)
        if jel is None:
            return
        for event in jel.events(stop_after=0):
            node = _event_node(event) if event.type == ET.SUBMIT else self._by_cluster.get(event.cluster)
            if node is None or node in self.ignore:
                continue
            info = self.nodes.setdefault(node, NodeInfo())
            if event.type == ET.SUBMIT:
                self._by_cluster[event.cluster] = node
                info.cluster, info.reason, info.exit_code = event.cluster, "", None
                info.attempts += 1
            if event.type in STATE_BY_EVENT:
                info.state = STATE_BY_EVENT[event.type]
            if event.type == ET.EXECUTE:
                info.started = float(event.timestamp)
            elif event.type == ET.JOB_HELD:
                info.reason = f"held: {event.get('HoldReason', '')}"
            elif event.type == ET.JOB_ABORTED:
                info.reason = f"removed: {event.get('Reason', '')}"
            elif event.type in (ET.JOB_TERMINATED, ET.POST_SCRIPT_TERMINATED):
                code = event.get("ReturnValue")
                if code is None and event.get("TerminatedBySignal") is not None:
                    info.reason = f"killed by signal {event.get('TerminatedBySignal')}"
                    code = -1
                info.exit_code = int(code) if code is not None else info.exit_code
                info.state = JobState.DONE if info.exit_code == 0 else JobState.FAILED
                info.ended = float(event.timestamp)
                if info.exit_code:
                    info.reason = info.reason or f"exit code {info.exit_code}"

    def _read_dagman_log(self) -> None:
        jel = self._open("_dagman_log", Path(str(self.dag_file) + ".dagman.log"))
        if jel is None:
            return
        for event in jel.events(stop_after=0):
            if self.dagman_cluster is not None and event.cluster != self.dagman_cluster:
                continue
            if event.type == ET.JOB_TERMINATED:
                self.finished, self.exit_code = True, int(event.get("ReturnValue", 1))
            elif event.type == ET.JOB_ABORTED:
                self.finished, self.exit_code = True, DAG_REMOVED_EXIT

    def poll(self) -> RunStatus:
        """Read what the logs gained since the last poll and return the run's status."""
        self._read_nodes_log()
        self._read_dagman_log()
        states = {name: info.state for name, info in self.nodes.items()}
        reasons = {name: info.reason for name, info in self.nodes.items() if info.reason}
        if self.finished:
            # the final status file knows nodes that never got a job (futile, or skipped)
            final, details = final_node_states(Path(names.status_file(str(self.dag_file))))
            for name, state in final.items():
                if name in self.ignore:
                    continue
                if states.get(name) in (None, JobState.PENDING, JobState.UNKNOWN) or state == JobState.FAILED:
                    states[name] = state
                if details.get(name) and name not in reasons:
                    reasons[name] = details[name]
        # DAGMan leaves its halt file when it ends halted
        halted = self.finished and Path(names.halt_file(str(self.dag_file))).exists()
        return RunStatus(
            nodes=states, finished=self.finished, exit_code=self.exit_code, reasons=reasons, halted=halted
        )

    def throughput_per_min(self) -> float:
        """Nodes finished per minute over the span of the log so far."""
        ends = [i.ended for i in self.nodes.values() if i.state == JobState.DONE and i.ended]
        starts = [i.started for i in self.nodes.values() if i.started]
        if not ends or not starts:
            return 0.0
        span = max(ends) - min(starts)
        return 60.0 * len(ends) / span if span > 0 else float(len(ends))

    def close(self) -> None:
        for jel in (self._nodes_log, self._dagman_log):
            if jel is not None:
                jel.close()
