"""DAGMan's NODE_STATUS_FILE: write it as DAGMan 23 does, and read DAGMan's (or ours) back. The one codec of
the file: the local engine writes it with this module, and the local and condor sites read it with it (node
states through the one table in iceprod_dag.common.states).

The file is a list of new-style ClassAds: one ``DagStatus`` ad, one ``NodeStatus`` ad per node (FINAL included,
in DAG order) and a ``StatusEnd`` ad, one attribute per line with DAGMan's ``/* comment */`` notes. It is
written to a temporary file and renamed, so readers never see half of it. The reader is a small parser for
this layout (100,000 nodes read in under a second of CPU here; classad2 agrees with it in tests).
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from iceprod_dag.common.states import JobState, NodeStatus, node_job_state

__all__ = ["DagStatusReport", "NodeEntry", "NodeStatus", "read_node_status", "render", "write_node_status"]


@dataclasses.dataclass(slots=True)
class NodeEntry:
    """One NodeStatus ad."""

    node: str
    status: NodeStatus
    details: str = ""  # StatusDetails: "idle"/"not_idle" when submitted, the error text when failed...
    retry_count: int = 0
    procs_queued: int = 0
    procs_held: int = 0

    @property
    def job_state(self) -> JobState:
        return node_job_state(self.status, self.details, self.procs_held)


@dataclasses.dataclass
class DagStatusReport:
    """The whole file. Counts left as None are computed from ``nodes`` when writing."""

    dag_files: list[str]
    dag_status: NodeStatus = NodeStatus.SUBMITTED
    status_note: str = ""  # "success", "failed", "aborted", "removed", "held", "cycle" or "" while running
    nodes: list[NodeEntry] = dataclasses.field(default_factory=list)
    timestamp: int | None = None
    end_time: int | None = None
    next_update: int = 0  # 0 means none (the DAG is finished)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)  # NodesTotal, NodesDone, ... as read

    def count(self, key: str) -> int:
        return self.counts[key] if key in self.counts else _compute_counts(self.nodes)[key]


COUNT_KEYS = (
    "NodesTotal", "NodesDone", "NodesPre", "NodesQueued", "NodesPost", "NodesReady", "NodesUnready",
    "NodesFutile", "NodesFailed", "JobProcsHeld", "JobProcsIdle",
)  # fmt: skip
_BY_STATUS = {
    NodeStatus.DONE: "NodesDone",
    NodeStatus.PRERUN: "NodesPre",
    NodeStatus.SUBMITTED: "NodesQueued",
    NodeStatus.POSTRUN: "NodesPost",
    NodeStatus.READY: "NodesReady",
    NodeStatus.NOT_READY: "NodesUnready",
    NodeStatus.FUTILE: "NodesFutile",
    NodeStatus.ERROR: "NodesFailed",
}


def _compute_counts(nodes: Iterable[NodeEntry]) -> dict[str, int]:
    nodes = nodes if isinstance(nodes, list) else list(nodes)
    by_status = Counter(n.status for n in nodes)
    counts = dict.fromkeys(COUNT_KEYS, 0)
    counts["NodesTotal"] = len(nodes)
    for status, key in _BY_STATUS.items():
        counts[key] = by_status.get(status, 0)
    counts["JobProcsHeld"] = sum(n.procs_held for n in nodes)
    counts["JobProcsIdle"] = sum(1 for n in nodes if n.status is NodeStatus.SUBMITTED and n.details == "idle")
    return counts


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_NEEDS_ESCAPE = re.compile(r'[\\"\x00-\x1f]')


def quote(s: str) -> str:
    """A ClassAd string literal (what DAGMan's EscapeClassadString gives for ASCII text)."""
    if not s:
        return '""'
    if not _NEEDS_ESCAPE.search(s):
        return f'"{s}"'
    return '"' + _NEEDS_ESCAPE.sub(lambda m: _ESCAPES.get(m.group(), f"\\{ord(m.group()):03o}"), s) + '"'


def _ctime(t: int) -> str:
    # C's ctime(): "Wed Nov  5 01:06:03 2026", day of month padded with a space
    lt = time.localtime(t)
    return f"{time.strftime('%a %b', lt)} {lt.tm_mday:2d} {time.strftime('%H:%M:%S %Y', lt)}"


_CODE = {s: str(int(s)) for s in NodeStatus}
_DAGMAN_NAME = {s: s.dagman_name for s in NodeStatus}
_BY_CODE = {str(int(s)): s for s in NodeStatus}


def render(report: DagStatusReport) -> str:
    """The file's text."""
    now = int(time.time())
    ts = report.timestamp if report.timestamp is not None else now
    end = report.end_time if report.end_time is not None else now
    counts = _compute_counts(report.nodes)
    counts.update(report.counts)
    status_str = report.dag_status.dagman_name + f" ({report.status_note})"
    out = ["[", '  Type = "DagStatus";', "  DagFiles = {"]
    out.append(",\n".join(f"    {quote(f)}" for f in report.dag_files))
    out += [
        "  };",
        f"  Timestamp = {ts}; /* {quote(_ctime(ts))} */",
        f"  DagStatus = {int(report.dag_status)}; /* {quote(status_str)} */",
    ]
    for key in COUNT_KEYS:
        note = " /* includes held */" if key == "JobProcsIdle" else ""
        out.append(f"  {key} = {counts[key]};{note}")
    out.append("]")
    # one string per node: a 100,000-node DAG's file is rewritten while it runs
    out.extend(
        f'[\n  Type = "NodeStatus";\n  Node = {quote(n.node)};\n'
        f'  NodeStatus = {_CODE[n.status]}; /* "{_DAGMAN_NAME[n.status]}" */\n'
        f"  StatusDetails = {quote(n.details)};\n  RetryCount = {n.retry_count};\n"
        f"  JobProcsQueued = {n.procs_queued};\n  JobProcsHeld = {n.procs_held};\n]"
        for n in report.nodes
    )
    next_note = quote(_ctime(report.next_update)) if report.next_update else '"none"'
    out += [
        "[",
        '  Type = "StatusEnd";',
        f"  EndTime = {end}; /* {quote(_ctime(end))} */",
        f"  NextUpdate = {report.next_update}; /* {next_note} */",
        "]",
    ]
    return "\n".join(out) + "\n"


def write_node_status(path: Path | str, report: DagStatusReport) -> None:
    """Write the status file atomically (temporary file + rename, as DAGMan does)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(report))
    os.replace(tmp, path)


# ---- reading -------------------------------------------------------------------------------------------------
_COMMENT = re.compile(r"/\*\s*(.*?)\s*\*/")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_UNESCAPE = re.compile(r"\\([0-7]{1,3}|.)")
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def _unquote(body: str) -> str:
    if "\\" not in body:
        return body

    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        return chr(int(e, 8)) if e[0] in "01234567" else _SIMPLE.get(e, e)

    return _UNESCAPE.sub(one, body)


def _attr(line: str) -> tuple[str, object, str]:
    """(name, value, comment) of one ``Name = value; /* comment */`` line."""
    name, _, rhs = line.partition("=")
    rhs = rhs.strip()
    m = _STRING.match(rhs)
    value: object
    if m:
        value, rest = _unquote(m.group(1)), rhs[m.end() :]
    else:
        text, _, rest = rhs.partition(";")
        text = text.strip()
        try:
            value = int(text)
        except ValueError:
            value = text
    c = _COMMENT.search(rest)
    return name.strip(), value, c.group(1) if c else ""


def parse_node_status(text: str) -> list[dict[str, object]]:
    """The ads of a status file as dicts (DagFiles as a list of strings; ``Name/*`` holds a line's comment)."""
    ads: list[dict[str, object]] = []
    ad: dict[str, object] | None = None
    in_list: list[str] | None = None
    for line in text.splitlines():
        s = line.strip()
        if in_list is not None:
            if s.startswith("}"):
                in_list = None
            else:
                in_list.extend(_unquote(v) for v in _STRING.findall(s))
            continue
        if s == "[":
            ad = {}
        elif s == "]":
            if ad is not None:
                ads.append(ad)
            ad = None
        elif ad is not None and s:
            if s.endswith("{"):
                key = s.split("=", 1)[0].strip()
                in_list = []
                ad[key] = in_list
                continue
            name, value, comment = _attr(s)
            ad[name] = value
            if comment:
                ad[name + "/*"] = comment
    return ads


# DAGMan's exact layout of a NodeStatus ad, read by one regular expression (C speed); anything else goes
# through the line parser above.
_QUOTED = r'"([^"\\]*(?:\\.[^"\\]*)*)"'  # a string literal, its escapes matched without backtracking
_NODE_AD = re.compile(
    rf"\[\n  Type = \"NodeStatus\";\n  Node = {_QUOTED};\n  NodeStatus = (\d+);[^\n]*\n"
    rf"  StatusDetails = {_QUOTED};\n  RetryCount = (-?\d+);\n  JobProcsQueued = (-?\d+);\n"
    r"  JobProcsHeld = (-?\d+);\n\]\n"
)


def read_node_status(path: Path | str) -> DagStatusReport:
    """Read a NODE_STATUS_FILE written by DAGMan or by write_node_status."""
    text = Path(path).read_text()
    fast = _NODE_AD.findall(text)
    if fast and len(fast) == text.count('Type = "NodeStatus"'):
        first = text.find('[\n  Type = "NodeStatus"')
        last = text.rfind('[\n  Type = "StatusEnd"')
        ads = parse_node_status(text[:first] + (text[last:] if last > first else ""))
        by_code, unquote = _BY_CODE, _unquote
        nodes = [
            NodeEntry(
                unquote(n) if "\\" in n else n,
                by_code[st],
                unquote(d) if "\\" in d else d,
                int(r),
                int(q),
                int(h),
            )
            for n, st, d, r, q, h in fast
        ]
    else:
        ads = parse_node_status(text)
        nodes = [_node_entry(a) for a in ads if a.get("Type") == "NodeStatus"]
    head = next((a for a in ads if a.get("Type") == "DagStatus"), None)
    if head is None:
        raise ValueError(f"{path}: no DagStatus ad (not a DAGMan node status file?)")
    files = head.get("DagFiles")
    report = DagStatusReport(
        dag_files=[str(f) for f in files] if isinstance(files, list) else [], nodes=nodes
    )
    report.dag_status = NodeStatus(int(head.get("DagStatus", 3)))  # type: ignore[call-overload]
    note = re.search(r"\((.*)\)", str(head.get("DagStatus/*", "")))
    report.status_note = note.group(1) if note else ""
    report.timestamp = int(head.get("Timestamp", 0))  # type: ignore[call-overload]
    report.counts = {k: int(v) for k, v in head.items() if k in COUNT_KEYS}  # type: ignore[call-overload]
    end = next((a for a in ads if a.get("Type") == "StatusEnd"), {})
    report.end_time = int(end.get("EndTime", 0))  # type: ignore[call-overload]
    report.next_update = int(end.get("NextUpdate", 0))  # type: ignore[call-overload]
    return report


def _node_entry(a: dict[str, object]) -> NodeEntry:
    return NodeEntry(
        node=str(a.get("Node", "")),
        status=NodeStatus(int(a.get("NodeStatus", 0))),  # type: ignore[call-overload]
        details=str(a.get("StatusDetails", "")),
        retry_count=int(a.get("RetryCount", 0)),  # type: ignore[call-overload]
        procs_queued=int(a.get("JobProcsQueued", 0)),  # type: ignore[call-overload]
        procs_held=int(a.get("JobProcsHeld", 0)),  # type: ignore[call-overload]
    )
