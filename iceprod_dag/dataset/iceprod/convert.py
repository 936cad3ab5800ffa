"""Convert an IceProd 2/3 dataset config (JSON) into an iceprod-dag dataset; list what cannot be converted.

Mapping, field by field (IceProd -> ours):

- ``dataset`` -> ``dataset_id``; ``description``; ``jobs_submitted`` (or the ``jobs`` argument) -> ``jobs``.
- ``steering.parameters`` -> ``parameters`` (names like ``CORSIKA::run`` kept); ``options`` -> parameters too,
  since IceProd's ``$(name)`` also finds options. ``steering.data`` is added to every task, as IceProd does.
- A task's trays and modules -> one list of ``modules``. One tray keeps its ``iterations``; several trays
  with one iteration each are concatenated; a tray with several iterations next to other trays is unrolled,
  with ``$(iter)`` replaced by its number. Tray and module parameters become task parameters.
- A module with ``src`` runs as IceProd runs it: ``python SRC`` for .py, ``/bin/sh SRC`` for .sh, else SRC;
  a URL ``src`` is also staged in. Dict ``args`` become ``--key=value`` (``-k=value`` for one letter).
  ``env_shell`` ("script arg...") is put in front of the command.
- A module with only ``running_class`` (IceProd v1 Python classes, like ``icecube.simprod.modules.ClSim``)
  runs ``python -c $(ICEPROD::run_class) CLASS SRC --key=value...``, the parameter holding RUN_CLASS_CODE:
  a few lines doing what IceProd's exe_helper does (``SetParameter`` + ``Execute`` for IPBaseClass, else a
  call), turning each value back into a number, bool or list the way IceProd's parser does. The class must
  be importable in the module's environment (its env_shell).
- ``requirements``: cpu -> cpus, gpu -> gpus, memory/disk (GB) -> "N GB", time (hours) -> walltime "Nh",
  os -> os, site -> sites.
- ``data``: remote -> url, movement -> direction, transfer true/false/maybe -> yes/no/maybe. Temporary data
  (job_temp, dataset_temp, site_temp, no remote) lives under ``temp_url`` when given, else it is listed.
- ``depends`` by name or index -> names. Task names are made valid (letters, digits, dashes).

Everything else that holds a value (classes, resources, projects, batchsys, configs, container,
env_clear, compression, categories...) is listed in the notes with its JSON path, never dropped silently.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
from collections.abc import Iterator
from typing import Any

from iceprod_dag.common import expressions
from iceprod_dag.common.exceptions import ConfigError
from iceprod_dag.dataset.iceprod import parts
from iceprod_dag.dataset.iceprod.parts import RUN_CLASS_CODE, RUN_CLASS_PARAMETER

logger = logging.getLogger(__name__)

_TASK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
_DATASET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PARAM_NAME_RE = re.compile(expressions.PARAMETER_NAME_PATTERN)
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_RUNTIME_FUNCS_RE = re.compile(r"\$(system|args|options|metadata|environ)\(")
_TRANSFER = {"yes": "yes", "y": "yes", "1": "yes", "true": "yes", "maybe": "maybe"}
_TRANSFER.update({"no": "no", "n": "no", "0": "no", "false": "no"})
_TEMP_TYPES = {"job_temp": "$(dataset)/$(job)/", "dataset_temp": "$(dataset)/", "site_temp": ""}


def _uses_class(task: Any) -> bool:
    trays = task.get("trays") or [] if isinstance(task, dict) else []
    return any(m.get("running_class") for t in trays for m in t.get("modules") or [])


def looks_like_iceprod(data: Any) -> bool:
    """True for an IceProd dataset config (tasks made of trays), as opposed to one of our datasets."""
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        return False
    if "steering" in data or "version" in data and "jobs" not in data:
        return True
    return any(isinstance(t, dict) and "trays" in t for t in data["tasks"])


def convert(
    config: dict[str, Any], jobs: int | None = None, name: str | None = None, temp_url: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Return (our dataset dict, notes); each note names the JSON path of something not converted.

    ``jobs`` is used when the config has no ``jobs_submitted``; ``name`` defaults to ``iceprod-<dataset>``;
    ``temp_url`` is where IceProd's temporary data (job_temp...) lives, e.g. ``file:///scratch/tmp``.
    """
    problems = list(_shape_problems(config, _SHAPE, ""))
    if problems:
        raise ConfigError(problems)
    return _Converter(config, temp_url.rstrip("/") if temp_url else None).run(jobs, name)


#: the containers the converter walks, by JSON path: what each must be when present (and not null)
_OBJ, _LIST = "an object", "a list"
_DATA: dict[str, Any] = {"[]": _OBJ}
_PARAMS: dict[str, Any] = {"": _OBJ}
_SHAPE: dict[str, Any] = {
    "": _OBJ,
    "steering": {"": _OBJ, "parameters": _PARAMS, "data": {"": _LIST, **_DATA}},
    "options": {"": _OBJ},
    "tasks": {
        "": _LIST,
        "[]": {
            "": _OBJ,
            "depends": {"": _LIST},
            "requirements": {"": _OBJ},
            "parameters": _PARAMS,
            "data": {"": _LIST, **_DATA},
            "trays": {
                "": _LIST,
                "[]": {
                    "": _OBJ,
                    "parameters": _PARAMS,
                    "data": {"": _LIST, **_DATA},
                    "modules": {
                        "": _LIST,
                        "[]": {"": _OBJ, "parameters": _PARAMS, "data": {"": _LIST, **_DATA}},
                    },
                },
            },
        },
    },
}


def _shape_problems(value: Any, shape: Any, path: str) -> Iterator[str]:
    """``PATH: expected an object, got null`` for each container of the wrong type (list items must be
    present; other fields may be missing or null)."""
    if isinstance(shape, str):
        shape = {"": shape}
    want = shape.get("")
    if want is not None:
        ok = isinstance(value, dict) if want == _OBJ else isinstance(value, list)
        if not ok:
            got = "null" if value is None else type(value).__name__
            yield f"{path or '(top level)'}: expected {want}, got {got}"
            return
    if isinstance(value, list) and "[]" in shape:
        for i, item in enumerate(value):
            yield from _shape_problems(item, shape["[]"], f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, sub in shape.items():
            if key not in ("", "[]") and value.get(key) is not None:
                yield from _shape_problems(value[key], sub, f"{path}.{key}" if path else key)


class _Converter:
    def __init__(self, config: dict[str, Any], temp_url: str | None) -> None:
        self.config = config
        self.temp_url = temp_url
        self.notes: list[str] = []

    def note(self, path: str, message: str) -> None:
        self.notes.append(f"{path}: {message}")

    def unused(self, obj: dict[str, Any], path: str, keys: tuple[str, ...]) -> None:
        """Note every field among ``keys`` that holds a value we have no place for."""
        for key in keys:
            value = obj.get(key)
            if value not in (None, "", [], {}, False):
                where = f"{path}.{key}" if path else key
                self.note(where, f"not converted: {json.dumps(value)[:120]}")

    def run(self, jobs: int | None, name: str | None) -> tuple[dict[str, Any], list[str]]:
        cfg = self.config
        dataset_id = cfg.get("dataset", 0)
        if not isinstance(dataset_id, int) or isinstance(dataset_id, bool) or dataset_id < 0:
            self.note("dataset", f"not a dataset number: {dataset_id!r}; using 0")
            dataset_id = 0
        steering = cfg.get("steering") or {}
        options = cfg.get("options") or {}
        dataset: dict[str, Any] = {
            "name": self.dataset_name(name, dataset_id),
            "dataset_id": dataset_id,
            "description": str(cfg.get("description") or ""),
            "jobs": self.jobs(cfg, options, jobs),
        }
        if isinstance(options.get("priority"), int):
            dataset["priority"] = options["priority"]
        params = self.parameters(steering.get("parameters") or {}, "steering.parameters")
        for key, value in options.items():
            if key in ("jobs_submitted", "priority"):
                continue
            if key in params:
                self.note(f"options.{key}", "a steering parameter has the same name: option not converted")
            elif self.param_ok(key, f"options.{key}"):
                params[key] = self.param_value(value, f"options.{key}")
                self.note(f"options.{key}", "IceProd option converted to a parameter")
        if any(_uses_class(t) for t in cfg.get("tasks") or []):
            params[RUN_CLASS_PARAMETER] = RUN_CLASS_CODE
        dataset["parameters"] = params
        if cfg.get("categories"):
            self.note(
                "categories",
                f"IceProd dataset labels {cfg['categories']}, not concurrency limits: not converted",
            )
        self.unused(cfg, "", ("difplus", "parent_id", "groups"))
        self.unused(steering, "steering", ("batchsys", "resources", "system"))
        shared_data = self.data_list(steering.get("data"), "steering.data")

        tasks = cfg.get("tasks") or []
        self.task_names = self.name_tasks(tasks)
        dataset["tasks"] = [self.task(t, i, shared_data) for i, t in enumerate(tasks)]
        self.check_expressions(dataset)
        return dataset, self.notes

    # --- dataset-level fields ---------------------------------------------------------------------------

    def dataset_name(self, name: str | None, dataset_id: int) -> str:
        name = name or (f"iceprod-{dataset_id}" if dataset_id else "iceprod-dataset")
        clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-_.") or "iceprod-dataset"
        if not _DATASET_NAME_RE.match(clean):
            clean = "d" + clean
        return clean

    def jobs(self, cfg: dict[str, Any], options: dict[str, Any], jobs: int | None) -> int:
        for _path, value in (
            ("jobs_submitted", cfg.get("jobs_submitted")),
            ("options.jobs_submitted", options.get("jobs_submitted")),
        ):
            if isinstance(value, int) and value >= 1:
                return value
        if jobs is not None:
            return jobs
        self.note("jobs_submitted", "absent and no number of jobs given (--jobs): using 1")
        return 1

    def param_ok(self, key: str, path: str) -> bool:
        if not _PARAM_NAME_RE.match(key):
            self.note(
                path, f"parameter name {key!r} is not allowed ({expressions.PARAMETER_NAME_PATTERN}): dropped"
            )
            return False
        if key in expressions.BUILTIN_NAMES:
            self.note(path, f"parameter {key!r} has a built-in's name: $({key}) means the built-in here")
        return True

    def param_value(self, value: Any, path: str) -> Any:
        if isinstance(value, dict):
            self.note(path, "a dict value is not allowed: converted to its JSON text")
            return json.dumps(value)
        return value

    def parameters(self, params: dict[str, Any], path: str) -> dict[str, Any]:
        return {
            key: self.param_value(value, f"{path}.{key}")
            for key, value in params.items()
            if self.param_ok(key, f"{path}.{key}")
        }

    # --- tasks ------------------------------------------------------------------------------------------

    def name_tasks(self, tasks: list[Any]) -> list[str]:
        names: list[str] = []
        for i, task in enumerate(tasks):
            raw = str(task.get("name") or "") if isinstance(task, dict) else ""
            name = re.sub(r"[^A-Za-z0-9-]+", "-", raw).strip("-") or f"task{i}"
            if not name[0].isalpha():
                name = "t" + name
            base, n = name, 2
            while name in names:
                name, n = f"{base}-{n}", n + 1
            if raw and name != raw:
                self.note(
                    f"tasks[{i}].name", f"{raw!r} renamed {name!r} (task names are letters, digits, dashes)"
                )
            names.append(name)
        return names

    def task(self, task: dict[str, Any], index: int, shared_data: list[dict[str, Any]]) -> dict[str, Any]:
        path = f"tasks[{index}]"
        out: dict[str, Any] = {"name": self.task_names[index]}
        depends = self.depends_list(task.get("depends"), f"{path}.depends")
        if depends:
            out["depends"] = depends
        requirements = self.requirements(task.get("requirements") or {}, f"{path}.requirements")
        if requirements:
            out["requirements"] = requirements
        params = self.parameters(task.get("parameters") or {}, f"{path}.parameters")
        data = list(shared_data)
        data += self.data_list(task.get("data"), f"{path}.data")
        modules, iterations = self.trays(task.get("trays") or [], path, params, data)
        out["modules"] = modules or [self.empty_module(path)]
        if iterations > 1:
            out["iterations"] = iterations
        if params:
            out["parameters"] = params
        if data:
            out["data"] = data
        self.unused(
            task,
            path,
            ("batchsys", "classes", "resources", "projects", "container", "token_scopes", "task_files"),
        )
        return out

    def depends_list(self, depends: Any, path: str) -> list[str]:
        found = (self.depend(d, f"{path}[{i}]") for i, d in enumerate(depends or []))
        return [d for d in found if d]

    def depend(self, dep: Any, path: str) -> str | None:
        if isinstance(dep, int) or isinstance(dep, str) and dep.isdigit():
            if 0 <= int(dep) < len(self.task_names):
                return self.task_names[int(dep)]
        elif isinstance(dep, str):
            for task, name in zip(self.config.get("tasks") or [], self.task_names, strict=True):
                if isinstance(task, dict) and task.get("name") == dep:
                    return name
        self.note(path, f"depends on unknown task {dep!r}: dropped")
        return None

    def empty_module(self, path: str) -> dict[str, Any]:
        self.note(f"{path}.trays", "no module could be converted: the task runs /bin/true")
        return {"name": "empty", "executable": "/bin/true"}

    def requirements(self, req: dict[str, Any], path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in req.items():
            where = f"{path}.{key}"
            if value in (None, "", []):
                continue
            if key in ("cpu", "gpu"):
                number = parts.as_number(value)
                if isinstance(number, (int, float)) and number >= 0 and int(number) == number:
                    out[key + "s"] = int(number)
                    continue
            elif key in ("memory", "disk"):
                number = parts.as_number(value)
                if isinstance(number, (int, float)) and number >= 0:
                    out[key] = f"{parts.fmt(number)} GB"
                    continue
            elif key == "time":
                number = parts.as_number(value)
                if isinstance(number, (int, float)) and number > 0:
                    out["walltime"] = f"{parts.fmt(number)}h"
                    continue
            elif key == "os" and isinstance(value, list):
                out["os"] = [str(v) for v in value]
                continue
            elif key == "site" and isinstance(value, str):
                out["sites"] = [value]
                continue
            self.note(where, f"not converted: {value!r}")
        return out

    # --- trays and modules ------------------------------------------------------------------------------

    def trays(
        self, trays: list[Any], path: str, params: dict[str, Any], data: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], int]:
        counts = [max(1, int(t.get("iterations") or 1)) for t in trays]
        keep_iterations = len(trays) == 1
        modules: list[dict[str, Any]] = []
        for t, (tray, count) in enumerate(zip(trays, counts, strict=True)):
            tpath = f"{path}.trays[{t}]"
            self.merge_params(params, tray.get("parameters") or {}, f"{tpath}.parameters")
            self.unused(tray, tpath, ("classes", "resources", "projects"))
            tray_data = self.data_list(tray.get("data"), f"{tpath}.data")
            converted = [
                self.module(m, f"{tpath}.modules[{i}]", params, data)
                for i, m in enumerate(tray.get("modules") or [])
            ]
            if count == 1 or keep_iterations:
                modules += converted
                data += parts.per_iteration(tray_data, count)
            else:
                self.note(
                    f"{tpath}.iterations", f"{count} iterations unrolled with $(iter) replaced by its number"
                )
                for i in range(count):
                    modules += [parts.set_iter(m, i) for m in converted]
                data += parts.per_iteration(tray_data, count)
                self.check_iter_params(params, tpath)
        return modules, counts[0] if keep_iterations else 1

    def check_iter_params(self, params: dict[str, Any], path: str) -> None:
        everything = dict(self.config.get("steering", {}).get("parameters") or {}, **params)
        users = sorted(k for k, v in everything.items() if isinstance(v, str) and "$(iter)" in v)
        if users:
            self.note(path, f"parameters {users} use $(iter): unrolled iterations all see $(iter) = 0")

    def merge_params(self, params: dict[str, Any], new: dict[str, Any], path: str) -> None:
        for key, value in self.parameters(new, path).items():
            if key in params and params[key] != value:
                self.note(f"{path}.{key}", f"conflicts with another scope's {key!r}: the first one is kept")
            else:
                params[key] = value

    def module(
        self, mod: dict[str, Any], path: str, params: dict[str, Any], data: list[dict[str, Any]]
    ) -> dict[str, Any]:
        self.merge_params(params, mod.get("parameters") or {}, f"{path}.parameters")
        data += self.data_list(mod.get("data"), f"{path}.data")
        self.unused(mod, path, ("classes", "resources", "projects", "configs"))
        src = str(mod.get("src") or "")
        running_class = str(mod.get("running_class") or "")
        args = self.args(mod.get("args"), f"{path}.args")
        if src and _URL_RE.match(src):
            local = posixpath.basename(src.split("?")[0].split("#")[0])
            data.append({"url": src, "local": local, "direction": "input", "transfer": "yes"})
            src = local
        env_shell = str(mod.get("env_shell") or "").split()
        python = "python" if env_shell else "python3"  # IceProd's env_shells provide `python`
        if running_class:
            command = [python, "-c", f"$({RUN_CLASS_PARAMETER})", running_class, src] + args
            name = mod.get("name") or running_class.rsplit(".", 1)[-1]
        elif src:
            if src.endswith(".py"):
                command = [python, src] + args
            elif src.endswith(".sh"):
                command = ["/bin/sh", src] + args
            else:
                command = [src] + args
            name = mod.get("name") or posixpath.basename(src)
        else:
            self.note(path, "neither src nor running_class: runs /bin/true")
            command, name = ["/bin/true"], mod.get("name") or "empty"
        command = env_shell + command
        if mod.get("env_clear", True) and env_shell:
            self.note(f"{path}.env_clear", "the environment is not cleared (env_shell sets it up)")
        elif mod.get("env_clear", True):
            self.note(f"{path}.env_clear", "the environment is not cleared")
        out: dict[str, Any] = {"name": re.sub(r"\s+", "-", str(name)), "executable": command[0]}
        if command[1:]:
            out["args"] = command[1:]
        return out

    def args(self, args: Any, path: str) -> list[str]:
        """IceProd's rules for a script's args: a string is split, a dict gives --key=value (-k=value)."""
        if args in (None, "", [], {}):
            return []
        if isinstance(args, str) and args[:1] in ("{", "["):
            try:
                args = json.loads(args)
            except ValueError:
                self.note(path, "looks like JSON but is not: used as a plain string")
        if isinstance(args, str):
            return args.split()
        if isinstance(args, list):
            return [parts.arg_text(a) for a in args]
        if isinstance(args, dict):
            if set(args) == {"args", "kwargs"}:
                return self.args(args["args"], path) + self.args(args["kwargs"], path)
            out = []
            for key, value in args.items():
                flag = ("-%s" if len(str(key)) <= 1 else "--%s") % key
                out.append(flag if value is None else f"{flag}={parts.arg_text(value)}")
            return out
        self.note(path, f"args of type {type(args).__name__} not converted")
        return []

    # --- data ---------------------------------------------------------------------------------------------

    def data_list(self, entries: Any, path: str) -> list[dict[str, Any]]:
        found = (self.data(d, f"{path}[{i}]") for i, d in enumerate(entries or []))
        return [d for d in found if d]

    def data(self, entry: Any, path: str) -> dict[str, Any] | None:
        if not isinstance(entry, dict):
            self.note(path, "not a data entry: dropped")
            return None
        remote = str(entry.get("remote") or "")
        local = str(entry.get("local") or "")
        kind = entry.get("type", "permanent")
        if not remote and kind in _TEMP_TYPES:
            if not local:
                self.note(path, f"{kind} entry without local name: dropped")
                return None
            if not self.temp_url:
                self.note(
                    path, f"{kind} file {local!r} lives in IceProd's temporary storage: give a temp URL"
                )
                return None
            remote = f"{self.temp_url}/{_TEMP_TYPES[kind]}{local}"
        if not remote:
            self.note(path, "no remote URL: dropped")
            return None
        if not _URL_RE.match(remote):
            self.note(path, f"remote {remote!r} is relative to IceProd's data_url: kept as is")
        out: dict[str, Any] = {"url": remote}
        if local:
            out["local"] = local
        movement = entry.get("movement", "input")
        out["direction"] = movement if movement in ("input", "output", "both") else "input"
        if movement not in ("input", "output", "both"):
            self.note(f"{path}.movement", f"unknown movement {movement!r}: input assumed")
        transfer = entry.get("transfer", True)
        key = str(transfer).lower()  # True, 1, "y" and "yes" all mean yes
        out["transfer"] = _TRANSFER.get(key, "yes")
        if key not in _TRANSFER:
            self.note(f"{path}.transfer", f"unknown transfer {transfer!r}: yes assumed")
        if entry.get("compression"):
            self.note(f"{path}.compression", "files are not (de)compressed")
        return out

    def check_expressions(self, dataset: dict[str, Any]) -> None:
        """List expressions we cannot resolve: bad syntax, unknown names, run-time-only functions."""
        known = set(dataset["parameters"])
        for task in dataset["tasks"]:
            task_known = known | set(task.get("parameters") or {})
            for path, text in parts.strings(task, f"tasks[{task['name']}]"):
                self.check_text(path, text, task_known)
        for key, value in dataset["parameters"].items():
            for path, text in parts.strings(value, f"parameters.{key}"):
                self.check_text(path, text, known)

    def check_text(self, path: str, text: str, known: set[str]) -> None:
        if "$" not in text:
            return
        try:
            expressions.check_syntax(text)
            missing = expressions.references(text) - known
        except expressions.ExpressionError as exc:
            self.note(path, str(exc))
            return
        if missing:
            self.note(path, f"refers to unknown names {sorted(missing)}")
        if _RUNTIME_FUNCS_RE.search(text):
            self.note(path, "uses $system/$args/$metadata/$environ, which need values given at run time")
