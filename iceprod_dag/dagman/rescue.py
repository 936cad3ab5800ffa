"""Rescue DAGs in DAGMan's format: find the newest <dag>.rescueNNN and write the next one.

DAGMan (23.x) writes a *partial* rescue DAG: header comments, then only the lines that change the original DAG
on resubmit, i.e. ``DONE node`` for every completed node and, when DAGMAN_RESET_RETRIES_UPON_RESCUE is false,
``RETRY node remaining`` for nodes that have retries left. Resubmitting parses the original DAG and then the
newest rescue file on top of it (parser.load_rescue).
"""

from __future__ import annotations

import datetime
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from .. import names
from .model import Dag

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
    retries_done: Mapping[str, int] | None = None,
    reset_retries: bool = True,
    path: Path | str | None = None,
    now: datetime.datetime | None = None,
) -> Path:
    """Write the next rescue DAG of ``dag`` and return its path.

    ``done``: nodes completed (pre-marked DONE nodes included); ``failed``: nodes that failed, listed in the
    header; ``retries_done``: node -> retries already used; with ``reset_retries=False`` (DAGMan's
    DAGMAN_RESET_RETRIES_UPON_RESCUE = False) a ``RETRY node remaining`` line is written per unfinished node.
    The file is written to a temporary name and renamed, so a crash never leaves half a rescue DAG.
    """
    target = Path(path) if path is not None else next_rescue_path(dag.path)
    done_set = set(done)
    failed_list = [n for n in failed if n in dag.nodes]
    premarked = sum(1 for n in dag.nodes.values() if n.done)
    now = now or datetime.datetime.now(datetime.UTC)
    lines = [
        "# Rescue DAG file, created after running",
        f"#   the {dag.path.name} DAG file",
        f"# Created {now.strftime('%m/%d/%Y %H:%M:%S')} UTC",
        "# Rescue DAG version: 2.0.1 (partial)",
        "#",
        f"# Total number of Nodes: {len(dag.nodes)}",
        f"# Nodes premarked DONE: {premarked}",
        f"# Nodes that failed: {len(failed_list)}",
        "#   " + ",".join([*failed_list, "<ENDLIST>"]),
        "",
    ]
    retries_done = retries_done or {}
    for name, node in dag.nodes.items():
        if name in done_set and not node.final:
            lines.append(f"DONE {name}")
        elif not reset_retries and node.retry > 0 and not node.final:
            used = min(retries_done.get(name, 0), node.retry)
            lines.append(f"# {used} of {node.retry} retries already performed; {node.retry - used} remaining")
            unless = f" UNLESS-EXIT {node.unless_exit}" if node.unless_exit is not None else ""
            lines.append(f"RETRY {name} {node.retry - used}{unless}")
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    log.info("wrote rescue DAG %s (%d nodes done)", target, len(done_set))
    return target
