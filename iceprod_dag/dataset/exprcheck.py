"""Check a dataset's expressions before anything runs: their syntax, then whether they resolve for a job.

A worker resolves ``$(NAME)``, ``$eval(...)``, ``$sprintf(...)``... per job; an undefined ``$(nevent)`` or a
``$eval(1/0)`` would only fail there, job after job. So every expression a task uses is resolved here for the
first and the last job, with the parameters that task sees (the dataset's, then its own), and each failure is
a problem at the field that holds it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from iceprod_dag.common.exceptions import ExpressionError
from iceprod_dag.common.expressions import BUILTIN_NAMES, Context, check_syntax, references, resolve

Path = tuple[str | int, ...]
Problem = tuple[Path, str]
#: the task fields a worker resolves
TASK_FIELDS = ("command", "modules", "parameters", "data")


class _WorkerValues(Mapping[str, Any]):
    """Stands for $system(...), $args(...)... values, which exist only on the worker: any name is there."""

    def __getitem__(self, key: str) -> Any:
        return "1"

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __bool__(self) -> bool:  # the resolver reads a missing table as ``extra.get(space) or {}``
        return True


_BUILTINS = ", ".join(sorted(BUILTIN_NAMES))
_EXTRA = {space: _WorkerValues() for space in ("system", "args", "metadata", "environ")}


def _strings(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    """Every string holding a ``$`` inside a value, with its path."""
    if isinstance(value, str):
        if "$" in value:
            yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, (*path, i))


def _task_fields(data: dict[str, Any]) -> Iterator[tuple[int, Path, str]]:
    for i, task in enumerate(data["tasks"]):
        for key in TASK_FIELDS:
            if key in task:
                for path, text in _strings(task[key], ("tasks", i, key)):
                    yield i, path, text


def syntax_problems(data: dict[str, Any]) -> list[Problem]:
    """Malformed expressions: unclosed parentheses or quotes, unknown functions, $eval bodies that are not
    arithmetic."""
    problems: list[Problem] = []
    fields = [(path, text) for path, text in _strings(data.get("parameters", {}), ("parameters",))]
    fields += [(path, text) for _, path, text in _task_fields(data)]
    for path, text in fields:
        try:
            check_syntax(text)
        except ExpressionError as exc:
            problems.append((path, str(exc)))
    return problems


def _contexts(data: dict[str, Any], task: dict[str, Any]) -> list[Context]:
    params = dict(data.get("parameters") or {})
    params.update(task.get("parameters") or {})
    jobs: int = data["jobs"] if isinstance(data.get("jobs"), int) and data["jobs"] > 0 else 1
    base = Context(
        job=0,
        dataset_id=data["dataset_id"] if isinstance(data.get("dataset_id"), int) else 0,
        parameters=params,
        task=task["name"],
        jobs=jobs,
        dataset_name=str(data.get("name") or ""),
        extra=_EXTRA,
    )
    return [base] if jobs == 1 else [base, base.replace(job=jobs - 1)]


def _first_failure(text: str, contexts: list[Context]) -> str | None:
    undefined = sorted(references(text) - contexts[0].parameters.keys())
    if undefined:
        names = ", ".join(f"$({name})" for name in undefined)
        return f"undefined parameter {names}: define it under 'parameters' (or use a built-in: {_BUILTINS})"
    for ctx in contexts:
        try:
            resolve(text, ctx)
        except ExpressionError as exc:
            return f"cannot evaluate for job {ctx.job}: {exc}"
    return None


def resolve_problems(data: dict[str, Any]) -> list[Problem]:
    """Expressions that do not resolve for the first or the last job: undefined names, failing $eval or
    $sprintf. Call it on syntactically valid data only. A dataset parameter is reported once, where it is
    defined, if no task can resolve it; a task field using a parameter reported so is not reported again."""
    problems: list[Problem] = []
    per_task = [_contexts(data, task) for task in data["tasks"]]
    failing: dict[str, list[tuple[Path, str, str]]] = {}
    for path, text in _strings(data.get("parameters", {}), ("parameters",)):
        failures = [_first_failure(text, contexts) for contexts in per_task] or [None]
        if all(failures):
            failing.setdefault(str(path[1]), []).append((path, text, str(failures[0])))
    broken = set(failing)
    for found in failing.values():
        for path, text, failure in found:
            if not references(text) & broken:  # the parameter it uses is the one to fix
                problems.append((path, failure))
    for i, path, text in _task_fields(data):
        if references(text) & broken:
            continue
        task_failure = _first_failure(text, per_task[i])
        if task_failure:
            problems.append((path, task_failure))
    return problems
