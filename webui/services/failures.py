"""A dataset's failed jobs grouped by what went wrong: task, failure category and the first error line of the
last attempt's stderr, so that 20 identical failures read as one row with its 20 jobs behind it."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from sqlalchemy import Connection, and_, select

from iceprod_dag.common.names import natural_key
from iceprod_dag.stats.models import Attempt, Job

#: failed jobs read per page view: a dataset where more failed is summarised from its most recent ones
SCAN_LIMIT = 5000
#: nodes listed under each group on the page (the jobs listing link has them all)
SHOWN = 50
_ERROR = re.compile(r"error|exception|fatal|denied|not found|no such|killed|abort|segmentation", re.I)
#: lines of a Python traceback that say where, not what
_FRAME = re.compile(r"^\s*(Traceback \(most recent call last\)|File \"|\^+\s*$)")


def first_error_line(stderr_tail: str | None) -> str:
    """The first line of a stderr tail that names an error (else its last non-blank line, else "")."""
    lines = [line.strip() for line in (stderr_tail or "").splitlines() if line.strip()]
    for line in lines:
        if _ERROR.search(line) and not _FRAME.match(line):
            return line[:300]
    return lines[-1][:300] if lines else ""


@dataclasses.dataclass
class FailureGroup:
    task: str | None
    category: str | None
    error: str
    #: (job id, node) of the failed jobs, in natural node order
    jobs: list[tuple[int, str]] = dataclasses.field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.jobs)


@dataclasses.dataclass
class Failures:
    groups: list[FailureGroup]
    #: failed jobs read (SCAN_LIMIT at most)
    scanned: int
    #: more failed jobs exist than were read
    partial: bool


def failure_groups(conn: Connection, pk: int) -> Failures:
    """The dataset's failed jobs (its SCAN_LIMIT most recent) grouped, the largest group first."""
    last = and_(Attempt.job_pk == Job.id, Attempt.attempt == Job.last_attempt)
    q = (
        select(Job.id, Job.node, Job.task, Job.last_failure, Attempt.stderr_tail)
        .outerjoin(Attempt, last)
        .where(Job.dataset_pk == pk, Job.state == "failed")
        .order_by(Job.updated_at.desc(), Job.id.desc())
        .limit(SCAN_LIMIT + 1)
    )
    rows = conn.execute(q).all()
    partial = len(rows) > SCAN_LIMIT
    groups: dict[tuple[Any, ...], FailureGroup] = {}
    for row in rows[:SCAN_LIMIT]:
        error = first_error_line(row.stderr_tail)
        key = (row.task, row.last_failure, error)
        group = groups.setdefault(key, FailureGroup(row.task, row.last_failure, error))
        group.jobs.append((row.id, row.node))
    for group in groups.values():
        group.jobs.sort(key=lambda job: natural_key(job[1]))
    ordered = sorted(groups.values(), key=lambda g: (-g.count, natural_key(g.task or ""), g.error))
    return Failures(ordered, min(len(rows), SCAN_LIMIT), partial)
