"""The NODE_STATUS_FILE of a local run, written straight from the engine's node table.

The event log and the jobstate log come from iceprod_dag.dagman (eventlog.py, jobstate.py); the status file
is written here because a 100,000-node DAG must not build an intermediate object per node on every rewrite.
"""

from __future__ import annotations

import os
import re
import time

from iceprod_dag.dagman.engine.nodestate import RunView

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


def write_node_status(path: str, engine: RunView) -> None:
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
        f'  Timestamp = {now};\n  DagStatus = {STATUS_CODES[dag_state]}; /* "STATUS_{dag_state.upper()}" */\n'
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
