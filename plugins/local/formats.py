"""The HTCondor file formats the local engine writes: job event log, JOBSTATE_LOG and NODE_STATUS_FILE.

Kept to exactly what condor_dagman and the schedd write for DAG node jobs, so ``htcondor2.JobEventLog``,
``condor_q -dag`` habits and our own readers see a local run like a pool run.
"""

from __future__ import annotations

import os
import re
import time
from typing import TYPE_CHECKING, Any

from .executor import Exit

if TYPE_CHECKING:
    from .engine import DagEngine

#: node status file codes (condor_dagman's Job::status_t)
STATUS_CODES = {
    "not_ready": 0,
    "ready": 1,
    "prerun": 2,
    "submitted": 3,
    "postrun": 4,
    "done": 5,
    "error": 6,
    "futile": 7,
}
STATUS_NAMES = {v: k for k, v in STATUS_CODES.items()}
_HOST = "<127.0.0.1:0?addrs=127.0.0.1-0>"


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _usage(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 86400} {s % 86400 // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class EventLog:
    """Appends job events in the user log format; buffered, flushed once per scheduling round."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the run

    def _event(self, code: int, cluster: int, t: float, text: str) -> None:
        self._f.write(f"{code:03d} ({cluster:03d}.000.000) {_stamp(t)} {text}...\n")

    def submit(self, cluster: int, node: str, t: float, dag_cluster: int) -> None:
        self._event(0, cluster, t, f"Job submitted from host: {_HOST}\n    DAG Node: {node}\n")

    def execute(self, cluster: int, t: float) -> None:
        self._event(1, cluster, t, f"Job executing on host: {_HOST}\n")

    def terminated(self, cluster: int, ex: Exit) -> None:
        if ex.exit_code is not None:
            how = f"\t(1) Normal termination (return value {ex.exit_code})\n"
        else:
            how = f"\t(0) Abnormal termination (signal {ex.signal})\n\t(0) No core file\n"
        run = f"\t\tUsr {_usage(ex.user_cpu)}, Sys {_usage(ex.sys_cpu)}  -  Run Remote Usage\n"
        local = "\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Local Usage\n"
        total = run.replace("Run Remote", "Total Remote") + local.replace("Run Local", "Total Local")
        io = "".join(f"\t0  -  {w} Bytes {d} By Job\n" for w in ("Run", "Total") for d in ("Sent", "Received"))
        self._event(5, cluster, ex.end, "Job terminated.\n" + how + run + local + total + io)

    def aborted(self, cluster: int, t: float, reason: str) -> None:
        self._event(9, cluster, t, f"Job was aborted.\n\t{reason}\n")

    def post_terminated(self, cluster: int, node: str, ex: Exit) -> None:
        if ex.exit_code is not None:
            how = f"\t(1) Normal termination (return value {ex.exit_code})\n"
        else:
            how = f"\t(0) Abnormal termination (signal {ex.signal})\n"
        self._event(16, cluster, ex.end, f"POST Script terminated.\n{how}    DAG Node: {node}\n")

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()


class JobStateLog:
    """JOBSTATE_LOG lines: ``time node event condorID jobTag - sequence``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the run

    def line(self, node: str, event: str, condor_id: Any, tag: str, unused: str, seq: int) -> None:
        self._f.write(f"{int(time.time())} {node} {event} {condor_id} {tag} {unused} {seq}\n")

    def internal(self, event: str, dag_id: str) -> None:
        self._f.write(f"{int(time.time())} INTERNAL *** {event} {dag_id} ***\n")

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def write_node_status(path: str, engine: DagEngine) -> None:
    """Rewrite the NODE_STATUS_FILE (ClassAds, atomically replaced) from the engine's view of every node."""
    now = int(time.time())
    nodes = []
    counts = dict.fromkeys(STATUS_CODES, 0)
    for name, run in engine.runs.items():
        state = run.state.value
        counts[state] += 1
        code = STATUS_CODES[state]
        nodes.append(
            f'[\n  Type = "NodeStatus";\n  Node = "{name}";\n  NodeStatus = {code}; /* "STATUS_{state.upper()}" */\n'
            f'  StatusDetails = "";\n  RetryCount = {run.retries};\n  JobProcsQueued = '
            f"{1 if state == 'submitted' else 0};\n  JobProcsHeld = 0;\n]\n"
        )
    dag_state = "submitted"
    if engine.finished:
        dag_state = "done" if engine.exit_status == 0 else "error"
    header = (
        f'[\n  Type = "DagStatus";\n  DagFiles = {{\n    "{os.path.basename(str(engine.dag.path))}"\n  }};\n'
        f"  Timestamp = {now};\n  DagStatus = {STATUS_CODES[dag_state]}; /* \"STATUS_{dag_state.upper()}\" */\n"
        f"  NodesTotal = {len(engine.runs)};\n  NodesDone = {counts['done']};\n  NodesPre = {counts['prerun']};\n"
        f"  NodesQueued = {counts['submitted']};\n  NodesPost = {counts['postrun']};\n"
        f"  NodesReady = {counts['ready']};\n  NodesUnready = {counts['not_ready']};\n"
        f"  NodesFutile = {counts['futile']};\n  NodesFailed = {counts['error']};\n"
        f"  JobProcsHeld = 0;\n  JobProcsIdle = 0;\n]\n"
    )
    end = f'[\n  Type = "StatusEnd";\n  EndTime = {now};\n  NextUpdate = {now + 5};\n]\n'
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(header)
        f.writelines(nodes)
        f.write(end)
    os.replace(tmp, path)


_NODE_RE = re.compile(r'Node = "([^"]+)";\s*NodeStatus = (\d+);')


def read_node_status(path: str) -> dict[str, str]:
    """Node name -> state name (not_ready, ready, ..., done, error, futile) from a NODE_STATUS_FILE."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return {m.group(1): STATUS_NAMES.get(int(m.group(2)), "not_ready") for m in _NODE_RE.finditer(text)}
