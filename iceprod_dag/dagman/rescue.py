"""Rescue DAGs in DAGMan's format: find the newest <dag>.rescueNNN and write the next one.

DAGMan (23.x) writes a *partial* rescue DAG: header comments, then only the lines that change the original DAG
on resubmit: ``DONE node`` for every completed node and ``RETRY node n`` for every node with retries.
Resubmitting parses the original DAG and then the newest rescue file on top of it (parser.load_rescue).
"""

from __future__ import annotations

import datetime
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from iceprod_dag.common import names
from iceprod_dag.dagman.model import Dag

log = logging.getLogger(__name__)

MAX_RESCUE_NUM = 100  # DAGMAN_MAX_RESCUE_NUM default
_RESCUE_RE = re.compile(r"\.rescue(\d{3})$")


def rescue_numbers(dag_path: Path | str) -> list[int]:
    """Numbers of the existing rescue DAGs of a DAG file, ascending."""
    dag_path = Path(dag_path)
    prefix = dag_path.name + names.RESCUE_SUFFIX
    try:
        entries = os.listdir(dag_path.parent)
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        if entry.startswith(prefix):
            m = _RESCUE_RE.search(entry)
            if m and entry == prefix + m.group(1) and 0 < int(m.group(1)) <= MAX_RESCUE_NUM:
                found.append(int(m.group(1)))
    return sorted(found)


def find_rescue(dag_path: Path | str) -> Path | None:
    """The newest rescue DAG of a DAG file (highest number, gaps allowed as in DAGMan), or None."""
    nums = rescue_numbers(dag_path)
    if not nums:
        return None
    return Path(names.rescue_file(str(dag_path), nums[-1]))


def next_rescue_path(dag_path: Path | str) -> Path:
    """Where the next rescue DAG goes: one past the newest, capped at MAX_RESCUE_NUM (then overwritten)."""
    nums = rescue_numbers(dag_path)
    n = min((nums[-1] if nums else 0) + 1, MAX_RESCUE_NUM)
    return Path(names.rescue_file(str(dag_path), n))


def write_rescue(
    dag: Dag,
    done: Iterable[str],
    failed: Iterable[str] = (),
    retries_used: Mapping[str, int] | None = None,
    last_return: Mapping[str, int] | None = None,
    reset_retries: bool = True,
    path: Path | str | None = None,
    now: datetime.datetime | None = None,
) -> Path:
    """Write the next rescue DAG of ``dag`` exactly as DAGMan 23 does and return its path.

    ``done``: every node in DONE state (pre-marked ones included); ``failed``: nodes in error, listed in the
    header; ``retries_used``: node -> retries already performed; ``last_return``: node -> its last return value.
    Per node in DAG order: ``DONE name`` (never for FINAL), then for nodes with RETRY a ``RETRY`` line: the full
    count with ``reset_retries`` (DAGMAN_RESET_RETRIES_UPON_RESCUE, default true), else what is left with a
    comment; a failed node stopped by UNLESS-EXIT gets DAGMan's "remaining attempts aborted" comment.
    Written to a temporary name and renamed, so a crash never leaves half a rescue DAG.
    """
    target = Path(path) if path is not None else next_rescue_path(dag.path)
    done_set = set(done)
    failed_set = set(failed)
    failed_list = [name for name in dag.nodes if name in failed_set]
    retries_used = retries_used or {}
    last_return = last_return or {}
    body: list[str] = []
    n_done = 0
    for name, node in dag.nodes.items():
        if name in done_set and not node.final:
            body.append(f"DONE {name}")
            n_done += 1
        if node.retry <= 0:
            continue
        used = min(retries_used.get(name, 0), node.retry)
        left = node.retry - used
        ret = last_return.get(name)
        if (
            name in failed_set
            and used < node.retry
            and node.unless_exit is not None
            and ret == node.unless_exit
        ):
            body.append(
                f"# {used} of {node.retry} retries performed; remaining attempts aborted after node returned {ret}"
            )
        elif not reset_retries:
            body.append(f"# {used} of {node.retry} retries already performed; {left} remaining")
        unless = f" UNLESS-EXIT {node.unless_exit}" if node.unless_exit is not None else ""
        body.append(f"RETRY {name} {node.retry if reset_retries else left}{unless}")
    u = (now or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
    header = [
        "# Rescue DAG file, created after running",
        f"#   the {dag.path} DAG file",
        f"# Created {u.month}/{u.day}/{u.year} {u.hour:02d}:{u.minute:02d}:{u.second:02d} UTC",  # no zero padding
        "# Rescue DAG version: 2.0.1 (partial)",
        "#",
        f"# Total number of Nodes: {len(dag.nodes)}",
        f"# Nodes premarked DONE: {len(done_set & dag.nodes.keys())}",  # DAGMan's count of done nodes
        f"# Nodes that failed: {len(failed_list)}",
        "#   " + "".join(f"{name}," for name in failed_list) + "<ENDLIST>",
        "",
    ]
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "w") as f:
        f.write("\n".join(header + body) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    log.info("wrote rescue DAG %s (%d nodes done, %d failed)", target, n_done, len(failed_list))
    return target
