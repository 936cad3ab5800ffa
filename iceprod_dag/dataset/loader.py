"""Load a dataset file: parse, check against the schema and the cross-field rules, and normalize.

Every problem is collected before anything is raised, so `iceprod-dag validate` reports them all at once,
each as ``FILE:LINE FIELD: MESSAGE``.
"""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path
from typing import Any

from iceprod_dag.common import units
from iceprod_dag.common.exceptions import ConfigError
from iceprod_dag.dataset import exprcheck, schema
from iceprod_dag.dataset.limits import InputLimits, from_settings
from iceprod_dag.dataset.model import DataFile, Dataset, Module, PilotOptions, Requirements, Task
from iceprod_dag.dataset.yamlsource import LineMap, check_data, load_yaml_with_lines, read_document

log = logging.getLogger(__name__)

Problem = tuple[tuple[str | int, ...], str]


def load_dataset(path: str | Path, jobs: int | None = None, limits: InputLimits | None = None) -> Dataset:
    """Load and validate a dataset YAML (or an IceProd JSON config); raise ConfigError listing every problem.

    ``jobs`` overrides the dataset's number of jobs (IceProd configs often do not say it). ``limits`` bound the
    document (default: from the environment, iceprod_dag.dataset.limits).
    """
    path = Path(path)
    if path.suffix == ".dag":
        raise ConfigError(
            f"{path}: a DAGMan file, not a dataset (run it with `iceprod-dag submit`)", str(path)
        )
    limits = limits or from_settings()
    data, lines = load_yaml_with_lines(read_document(path, limits), str(path), limits)
    if path.suffix == ".json" and isinstance(data, dict):
        data = _maybe_convert_iceprod(data, path, jobs)
    if jobs is not None and isinstance(data, dict):
        data = {**data, "jobs": jobs}
    return load_dataset_dict(data, source=str(path), lines=lines, limits=limits)


def _maybe_convert_iceprod(data: dict[str, Any], path: Path, jobs: int | None) -> dict[str, Any]:
    try:
        from iceprod_dag.dataset.iceprod.convert import convert, looks_like_iceprod
    except ImportError:  # pragma: no cover - the converter ships with the package
        return data
    if not looks_like_iceprod(data):
        return data
    try:
        converted, notes = convert(data, jobs=jobs)
    except ConfigError as exc:
        raise ConfigError([f"{path} {p}" for p in exc.problems], str(path)) from None
    for note in notes:
        log.warning("%s: not converted: %s", path, note)
    return converted


def load_dataset_dict(
    data: Any, source: str = "<dataset>", lines: LineMap | None = None, limits: InputLimits | None = None
) -> Dataset:
    """Validate plain data (already parsed) and return the normalized Dataset."""
    limits = limits or from_settings()
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}:1: a dataset must be a mapping of fields, got {type(data).__name__}", source
        )
    lines = lines or LineMap()
    if not lines.known():  # plain data (a JSON body): not walked by the YAML loader
        check_data(data, source, limits)
    problems: list[Problem] = list(schema.iter_problems(data))
    problems.extend(_big_integer_problems(data))
    jobs = data.get("jobs")
    if isinstance(jobs, int) and jobs > limits.max_jobs:
        problems.append(
            (("jobs",), f"{jobs} jobs is more than the limit {limits.max_jobs} (ICEPROD_DAG_MAX_JOBS)")
        )
    if _well_formed_tasks(data):
        problems.extend(_cross_field_problems(data))
    if not problems:  # resolving needs well-formed fields and expressions
        problems.extend(exprcheck.resolve_problems(data))
    if problems:
        raise ConfigError(
            [_format(source, lines, path, msg) for path, msg in _sorted(problems, lines)], source
        )
    return _normalize(data, source)


def _big_integer_problems(data: Any) -> list[Problem]:
    """Integers a 64-bit column, DAGMan or HTCondor cannot hold (``dataset_id: 9223372036854775808``)."""
    problems: list[Problem] = []
    todo: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while todo:
        value, path = todo.pop()
        if isinstance(value, dict):
            todo.extend((v, (*path, k)) for k, v in value.items())
        elif isinstance(value, list):
            todo.extend((v, (*path, i)) for i, v in enumerate(value))
        elif isinstance(value, int) and not -(2**63) <= value < 2**63:
            problems.append((path, "integer out of range (a 64-bit integer is at most 9223372036854775807)"))
    return problems


def _sorted(problems: list[Problem], lines: LineMap) -> list[Problem]:
    return sorted(problems, key=lambda p: (lines.line(p[0]) or 0, schema.format_path(p[0])))


def _format(source: str, lines: LineMap, path: tuple[str | int, ...], message: str) -> str:
    line = lines.line(path)
    where = f"{source}:{line}" if line else source
    return f"{where} {schema.format_path(path)}: {message}"


def _well_formed_tasks(data: dict[str, Any]) -> bool:
    """Whether the cross-field rules can run even though other fields may have schema problems."""
    tasks = data.get("tasks")
    return (
        isinstance(tasks, list)
        and all(
            isinstance(t, dict)
            and isinstance(t.get("name"), str)
            and isinstance(t.get("depends", []), list)
            and all(isinstance(d, str) for d in t.get("depends", []))
            for t in tasks
        )
        and isinstance(data.get("categories", {}), dict)
    )


def _cross_field_problems(data: dict[str, Any]) -> list[Problem]:
    """Rules a JSON schema cannot say: unique names, known dependencies, no cycles, valid expressions."""
    problems: list[Problem] = []
    tasks = data["tasks"]
    names: dict[str, int] = {}
    for i, task in enumerate(tasks):
        if task["name"] in names:
            problems.append((("tasks", i, "name"), f"duplicate task name {task['name']!r}"))
        names.setdefault(task["name"], i)
        has_command, has_modules = "command" in task, "modules" in task
        if has_command == has_modules:
            problems.append((("tasks", i), "give exactly one of 'command' or 'modules'"))
        for j, dep in enumerate(task.get("depends", [])):
            if dep not in names and dep not in {t["name"] for t in tasks}:
                problems.append((("tasks", i, "depends", j), f"unknown task {dep!r}"))
            elif dep == task["name"]:
                problems.append((("tasks", i, "depends", j), "a task cannot depend on itself"))
        category = task.get("category")
        if category is not None and category not in data.get("categories", {}):
            problems.append(
                (("tasks", i, "category"), f"unknown category {category!r} (declare it in 'categories')")
            )
    cycle = _find_cycle({t["name"]: list(t.get("depends", [])) for t in tasks})
    if cycle:
        index = names.get(cycle[0], 0)
        problems.append(
            (("tasks", index, "depends"), "task dependencies form a cycle: " + " -> ".join(cycle))
        )
    problems.extend(exprcheck.syntax_problems(data))
    problems.extend(_prestage_problems(data))
    problems.extend(_args_problems(tasks))
    return problems


def _args_problems(tasks: list[dict[str, Any]]) -> list[Problem]:
    """Module ``args`` given as one string must split like a shell line (no unclosed quote)."""
    problems: list[Problem] = []
    for i, task in enumerate(tasks):
        modules = task.get("modules")
        for k, module in enumerate(modules if isinstance(modules, list) else []):
            args = module.get("args") if isinstance(module, dict) else None
            if isinstance(args, str):
                try:
                    shlex.split(args)
                except ValueError as exc:
                    problems.append((("tasks", i, "modules", k, "args"), f"cannot split {args!r}: {exc}"))
    return problems


def _prestage_problems(data: dict[str, Any]) -> list[Problem]:
    from iceprod_dag.dataset.prestage import PRESTAGE_TASK

    problems: list[Problem] = []
    wants = False
    for i, task in enumerate(data["tasks"]):
        if task["name"] == PRESTAGE_TASK:
            problems.append((("tasks", i, "name"), f"{PRESTAGE_TASK!r} is reserved for the prestage layer"))
        for j, entry in enumerate(task.get("data", []) if isinstance(task.get("data"), list) else []):
            if isinstance(entry, dict) and entry.get("prestage"):
                wants = True
                if entry.get("direction", "input") != "input":
                    problems.append((("tasks", i, "data", j, "prestage"), "only inputs can be prestaged"))
    options = data.get("options")
    if wants and not (isinstance(options, dict) and isinstance(options.get("prestage"), dict)):
        problems.append(
            (("options",), "inputs are marked prestage: true but options.prestage.storage is not set")
        )
    return problems


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a list of task names (first repeated at the end), or None."""
    color: dict[str, int] = {}
    # iterative depth-first search: a chain of thousands of tasks must not hit Python's recursion limit
    for start in graph:
        if start in color:
            continue
        path: list[str] = [start]
        todo: list[list[str]] = [[d for d in graph[start] if d in graph and d != start]]
        color[start] = 1
        while path:
            if not todo[-1]:
                color[path.pop()] = 2
                todo.pop()
                continue
            dep = todo[-1].pop(0)
            if color.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep not in color:
                color[dep] = 1
                path.append(dep)
                todo.append([d for d in graph[dep] if d in graph and d != dep])
    return None


def _normalize(data: dict[str, Any], source: str) -> Dataset:
    options = data.get("options", {})
    pilot = options.get("pilot", {})
    default_retries = options.get("retries", 2)
    return Dataset(
        name=data["name"],
        dataset_id=data.get("dataset_id", 0),
        description=data.get("description", ""),
        owner=data.get("owner"),
        jobs=data["jobs"],
        priority=data.get("priority", 0),
        parameters=dict(data.get("parameters", {})),
        categories={name: c["max_jobs"] for name, c in data.get("categories", {}).items()},
        site=options.get("site", "local"),
        max_idle=options.get("max_idle", 0),
        max_jobs=options.get("max_jobs", 0),
        pilot=PilotOptions(
            memory_allowance=float(pilot.get("memory_allowance", 0.25)),
            learn_factor=float(pilot.get("learn_factor", 1.5)),
            sample_interval_s=float(units.parse_duration_s_float(pilot.get("sample_interval", 1))),
            kill_grace_s=float(units.parse_duration_s_float(pilot.get("kill_grace", 5))),
            transfer_retries=pilot.get("transfer_retries", 3),
            stderr_tail_lines=pilot.get("stderr_tail_lines", 40),
        ),
        tasks=[_normalize_task(t, default_retries) for t in data["tasks"]],
        source=source,
        prestage_storage=options.get("prestage", {}).get("storage"),
        prestage_parallel=options.get("prestage", {}).get("max_parallel", 4),
    )


def _normalize_task(task: dict[str, Any], default_retries: int) -> Task:
    if "command" in task:
        modules = [Module(name=task["name"], executable="/bin/sh", args=["-c", task["command"]], env={})]
    else:
        modules = [_normalize_module(m) for m in task["modules"]]
    req = task.get("requirements", {})
    return Task(
        name=task["name"],
        modules=modules,
        depends=list(task.get("depends", [])),
        requirements=Requirements(
            cpus=req.get("cpus", 1),
            memory_mb=units.parse_size_mb(req.get("memory", schema.default("requirements", "memory"))),
            disk_mb=units.parse_size_mb(req.get("disk", "1 GB")),
            gpus=req.get("gpus", 0),
            walltime_s=units.parse_duration_s(req.get("walltime", "1h")),
            os=tuple(req.get("os", ())),
            sites=tuple(req.get("sites", ())),
        ),
        retries=task.get("retries", default_retries),
        priority=task.get("priority", 0),
        category=task.get("category"),
        iterations=task.get("iterations", 1),
        parameters=dict(task.get("parameters", {})),
        data=[_normalize_data(d) for d in task.get("data", [])],
    )


def _normalize_module(module: dict[str, Any]) -> Module:
    args = module.get("args", [])
    arg_list = shlex.split(args) if isinstance(args, str) else [_scalar(a) for a in args]
    executable = module["executable"]
    return Module(
        name=module.get("name") or Path(executable).name,
        executable=executable,
        args=arg_list,
        env={k: _scalar(v) for k, v in module.get("env", {}).items()},
    )


def _normalize_data(entry: dict[str, Any]) -> DataFile:
    url = entry["url"]
    return DataFile(
        url=url,
        local=entry.get("local") or url.rstrip("/").rsplit("/", 1)[-1],
        direction=entry.get("direction", "input"),
        transfer=entry.get("transfer", "yes"),
        checksum=entry.get("checksum"),
        prestage=entry.get("prestage", False),
    )


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def dataset_to_json(dataset: Dataset) -> str:
    """The normalized dataset as canonical JSON (sorted keys), for the run folder and the web UI."""
    import dataclasses

    return json.dumps(dataclasses.asdict(dataset), sort_keys=True, indent=1)
