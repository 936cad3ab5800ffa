"""Pure translation helpers shared by the batch sites: job groups, the job script body, time and size formats.

Nothing here runs a command or reads a file other than a packaged template: text in, text out.
"""

from __future__ import annotations

import dataclasses
import shlex
import string
from collections.abc import Iterable, Sequence
from importlib import resources

from iceprod_dag.common import names
from iceprod_dag.plugins.batch.jobdesc import JobRequest

#: exit code of a job whose parents have not all succeeded (it ran too early): not a failed attempt
DEPENDENCY_NOT_MET = 97


@dataclasses.dataclass(frozen=True)
class JobGroup:
    """One batch submission: a single job, or an array job whose elements share shape and dependencies."""

    name: str
    requests: tuple[JobRequest, ...]
    run_dir: str
    depends_on: tuple[str, ...] = ()  # batch job ids this group waits for (afterok / hold_jid / done())
    parents: tuple[str, ...] = ()  # DAG parents of every element: the script checks their done markers
    python: str = "python3"
    cwd: str = ""  # where the command runs (a node's DIR); the run folder if empty

    @property
    def is_array(self) -> bool:
        return len(self.requests) > 1

    @property
    def first(self) -> JobRequest:
        return self.requests[0]


def group_requests(
    items: Iterable[tuple[JobRequest, tuple[str, ...], tuple[str, ...]]],
    run_dir: str,
    max_array: int = 1000,
    python: str = "python3",
    cwd: dict[str, str] | None = None,
) -> list[JobGroup]:
    """Group (request, batch dependencies, DAG parents) into as few submissions as possible.

    Requests that share a task shape (same executable and resources) and the same dependencies become one
    array, in the order given, split every max_array elements (Slurm's default MaxArraySize is 1001).
    """
    buckets: dict[tuple[object, ...], list[tuple[JobRequest, tuple[str, ...], tuple[str, ...]]]] = {}
    for req, deps, parents in items:
        where = (cwd or {}).get(req.node, "")
        key = (_task_of(req.node), req.shape(), tuple(sorted(deps)), tuple(sorted(parents)), where)
        buckets.setdefault(key, []).append((req, deps, parents))
    groups = []
    for members in buckets.values():
        for start in range(0, len(members), max_array):
            chunk = members[start : start + max_array]
            reqs = tuple(m[0] for m in chunk)
            name = _task_of(reqs[0].node) if len(reqs) > 1 else reqs[0].node
            groups.append(
                JobGroup(
                    name=f"{name}.{reqs[0].attempt}" if len(reqs) == 1 else f"{name}.{start // max_array}",
                    requests=reqs,
                    run_dir=run_dir,
                    depends_on=tuple(sorted(chunk[0][1])),
                    parents=tuple(sorted(chunk[0][2])),
                    python=python,
                    cwd=(cwd or {}).get(reqs[0].node, ""),
                )
            )
    return groups


def _task_of(node: str) -> str:
    task, sep, job = node.rpartition("_")
    return task if sep and job.isdigit() else node


def command_line(req: JobRequest, python: str) -> str:
    """The shell words of one attempt, with the submit file's input/output/error; a zipapp runs under python."""
    argv = list(req.argv)
    if argv[0].endswith(".pyz"):
        argv.insert(0, python)
    words = [shlex.quote(a) for a in argv]
    for op, path in (("<", req.stdin), (">", req.stdout), ("2>", req.stderr)):
        if path:
            words += [op, shlex.quote(path)]
    return " ".join(words)


def job_body(group: JobGroup, index_expr: str, fail_exit: int | None = None, job_ref: str = "") -> str:
    """The shell body every batch script shares: pick the element, check parents, run it, record the result.

    index_expr is the shell expression of the 1-based array index (e.g. ${SLURM_ARRAY_TASK_ID}).
    fail_exit, if set, replaces a failed attempt's exit code (Grid Engine holds dependents of exit 100).
    job_ref, if set, is the shell expression of the id the system's accounting knows this element by
    (Slurm: ${SLURM_JOB_ID}); it is written after the exit code in the marker.
    """
    q = shlex.quote
    marks = q(f"{group.run_dir}/{names.BATCH_EXIT_DIR}")
    lines = [f"cd {q(group.cwd or group.run_dir)} || exit {DEPENDENCY_NOT_MET}"]
    if group.is_array:
        lines.append(f'case "{index_expr}" in')
        for i, req in enumerate(group.requests, 1):
            lines.append(
                f"  {i}) NODE={q(req.node)}; ATTEMPT={req.attempt}; CMD={q(command_line(req, group.python))};;"
            )
        lines.append(f'  *) echo "no array element {index_expr}" >&2; exit {DEPENDENCY_NOT_MET};;')
        lines.append("esac")
    else:
        req = group.first
        lines.append(f"NODE={q(req.node)}; ATTEMPT={req.attempt}; CMD={q(command_line(req, group.python))}")
    env = group.first.environment
    if env:
        lines.append("export " + " ".join(f"{k}={q(v)}" for k, v in env))
    if group.parents:
        lines.append(f"for p in {' '.join(q(p) for p in group.parents)}; do")
        # started before a parent succeeded (a batch system that releases dependents of deleted jobs): say
        # so in the marker, and the watcher puts the node back without counting an attempt
        lines.append(
            f'  [ -e {marks}/"$p".done ] || {{ echo "parent $p not done" >&2; '
            f'echo {DEPENDENCY_NOT_MET} > {marks}/"$NODE.$ATTEMPT"; exit {DEPENDENCY_NOT_MET}; }}'
        )
        lines.append("done")
    lines += [
        f'rm -f {marks}/"$NODE".done',
        'eval "$CMD"',
        "rc=$?",
        f"mkdir -p {marks}",
        # written then renamed: the watcher never reads half a marker
        f'echo "$rc {job_ref}" > {marks}/."$NODE.$ATTEMPT.$$"'
        if job_ref
        else f'echo "$rc" > {marks}/."$NODE.$ATTEMPT.$$"',
        f'[ "$rc" -ne 0 ] || touch {marks}/"$NODE".done',
        f'mv -f {marks}/."$NODE.$ATTEMPT.$$" {marks}/"$NODE.$ATTEMPT"',
    ]
    if fail_exit is None:
        lines.append('exit "$rc"')
    else:
        lines.append(f'[ "$rc" -eq 0 ] || exit {fail_exit}')
        lines.append("exit 0")
    return "\n".join(lines) + "\n"


def render(package: str, template: str, **values: str) -> str:
    """Fill a packaged job-script template ($name placeholders)."""
    text = resources.files(package).joinpath(template).read_text()
    return string.Template(text).substitute(values)


def hms(seconds: int) -> str:
    """Seconds as HH:MM:SS (hours may exceed 24), the walltime format Slurm, Grid Engine and PBS accept."""
    seconds = max(int(seconds), 1)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def hm(seconds: int) -> str:
    """Seconds rounded up to whole minutes as H:MM, LSF's -W format."""
    minutes = max((int(seconds) + 59) // 60, 1)
    return f"{minutes // 60}:{minutes % 60:02d}"


def directives(prefix: str, options: Sequence[str]) -> str:
    """Script header lines like '#SBATCH --mem=1024M'."""
    return "\n".join(f"{prefix} {opt}" for opt in options)
