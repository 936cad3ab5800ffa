"""Load a task spec (docs/contracts.md) and resolve it for one job: modules, data, requirements, settings.

The spec is written once per task with its expressions unresolved; the pilot resolves them here for its job
index (and each iteration) through ``iceprod_dag.common.expressions``. Every problem is a ConfigError naming the
spec file and the field, so the attempt exits PERMANENT and DAGMan does not retry it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import ConfigError
from iceprod_dag.common.units import parse_duration_s, parse_size_mb

SPEC_FORMAT = 1
DIRECTIONS = ("input", "output", "both")
TRANSFERS = ("yes", "maybe", "no")


@dataclass
class Resources:
    """An amount of cpus, memory, disk, gpus and wall time: a job's request or a pilot's envelope.

    ``None`` means unlimited (no memory limit, no wall time limit...).
    """

    cpus: float = 1
    memory_mb: Optional[float] = None
    disk_mb: Optional[float] = None
    gpus: int = 0
    walltime_s: Optional[float] = None

    def fits_in(self, free: "Resources") -> bool:
        """True when this request fits in ``free`` (unlimited fields always fit)."""
        pairs = [
            (self.cpus, free.cpus),
            (self.memory_mb, free.memory_mb),
            (self.disk_mb, free.disk_mb),
            (self.gpus, free.gpus),
            (self.walltime_s, free.walltime_s),
        ]
        return all(have is None or (need or 0) <= have + 1e-9 for need, have in pairs)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class PilotSettings:
    """The ``pilot`` section of a spec: headroom, sampling and transfer behaviour."""

    memory_allowance: float = 0.25
    #: a job killed over a limit asks next time for this much times the peak it reached
    learn_factor: float = 1.5
    sample_interval_s: float = 1.0
    kill_grace_s: float = 5.0
    transfer_retries: int = 3
    transfer_backoff_s: float = 1.0
    transfer_timeout_s: float = 300.0
    stderr_tail_lines: int = 40
    keep_workdir: bool = False


@dataclass
class ModuleSpec:
    """One resolved module: a command run in the job's work dir."""

    name: str
    executable: str
    args: List[str]
    env: Dict[str, str]
    iteration: int = 0


@dataclass
class DataSpec:
    """One resolved file to stage: ``local`` is relative to the job's work dir."""

    url: str
    local: str
    direction: str = "input"
    transfer: str = "yes"
    checksum: Optional[str] = None


@dataclass
class JobSpec:
    """Everything the pilot needs to run one attempt of one job, with every expression resolved."""

    dataset: str
    dataset_id: Optional[int]
    task: str
    job: int
    attempt: int
    modules: List[ModuleSpec]
    data: List[DataSpec]
    request: Resources
    settings: PilotSettings
    source: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def node(self) -> str:
        return names.node_name(self.task, self.job)


def load_spec(path: str) -> Dict[str, Any]:
    """Read a task spec file; a missing or malformed file is a ConfigError naming it."""
    try:
        with open(path, encoding="utf-8") as handle:
            spec = json.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read task spec: {exc.strerror or exc}", path=path) from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}", path=path) from exc
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: a task spec must be a JSON object", path=path)
    if spec.get("format", SPEC_FORMAT) != SPEC_FORMAT:
        raise ConfigError(f"{path}: format {spec.get('format')!r} is not supported (expected 1)", path=path)
    for key in ("dataset", "task"):
        if not isinstance(spec.get(key), dict):
            raise ConfigError(f"{path}: field '{key}' must be an object", path=path)
    return spec


def _number(value: Any, where: str, parse: Any = float) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)  # numbers are already in MiB / seconds; keep fractions (tests use 0.3 s)
    try:
        return float(parse(value))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def requirements(spec: Dict[str, Any], memory_mb: Optional[float] = None, where: str = "spec") -> Resources:
    """The resource request of a task (``memory_mb`` overrides the memory, as on a retry)."""
    req = spec.get("task", {}).get("requirements") or {}
    if not isinstance(req, dict):
        raise ConfigError(f"{where}: task.requirements must be an object")
    res = Resources(
        cpus=_number(req.get("cpus", 1), f"{where}: task.requirements.cpus") or 1,
        memory_mb=_number(req.get("memory_mb"), f"{where}: task.requirements.memory_mb", parse_size_mb),
        disk_mb=_number(req.get("disk_mb"), f"{where}: task.requirements.disk_mb", parse_size_mb),
        gpus=int(_number(req.get("gpus", 0), f"{where}: task.requirements.gpus") or 0),
        walltime_s=_number(req.get("walltime_s"), f"{where}: task.requirements.walltime_s", parse_duration_s),
    )
    if memory_mb is not None:
        res.memory_mb = float(memory_mb)
    return res


def settings(spec: Dict[str, Any], where: str = "spec") -> PilotSettings:
    """The pilot settings of a spec, defaults for what it leaves out; unknown keys are an error."""
    raw = spec.get("pilot") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: field 'pilot' must be an object")
    out = PilotSettings()
    for key, value in raw.items():
        if not hasattr(out, key):
            raise ConfigError(f"{where}: pilot.{key} is not a pilot setting")
        kind = type(getattr(out, key))
        try:
            setattr(out, key, kind(value) if kind is not bool else bool(value))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: pilot.{key}: expected {kind.__name__}, got {value!r}") from exc
    return out


def _context(spec: Dict[str, Any], job: int, iteration: int) -> Any:
    # imported here so that loading a spec (and the worksource's packing) does not need the expression engine
    from iceprod_dag.common.expressions import Context, resolve

    dataset, task = spec["dataset"], spec["task"]
    params = dict(dataset.get("parameters") or {})
    params.update(task.get("parameters") or {})
    ctx = Context(
        job=job,
        dataset_id=dataset.get("dataset_id") or 0,
        parameters=params,  # resolved lazily by the engine: parameters may refer to $(job) and each other
        task=task.get("name") or "",
        iteration=iteration,
        jobs=dataset.get("jobs") or 1,
        dataset_name=dataset.get("name") or "",
    )
    return ctx, resolve


def _modules(raw: Any, where: str) -> List[Dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: task.modules must be a non-empty list")
    for i, mod in enumerate(raw):
        if not isinstance(mod, dict) or not mod.get("executable"):
            raise ConfigError(f"{where}: task.modules[{i}] needs an 'executable'")
        if not isinstance(mod.get("args", []), list) or not isinstance(mod.get("env", {}), dict):
            raise ConfigError(f"{where}: task.modules[{i}]: 'args' must be a list and 'env' an object")
    return raw


def _data(raw: Any, where: str) -> List[DataSpec]:
    out = []
    for i, item in enumerate(raw or []):
        if not isinstance(item, dict) or not item.get("url"):
            raise ConfigError(f"{where}: task.data[{i}] needs a 'url'")
        direction = item.get("direction", "input")
        transfer = str(item.get("transfer", "yes")).lower()
        transfer = {"true": "yes", "false": "no"}.get(transfer, transfer)
        if direction not in DIRECTIONS:
            raise ConfigError(f"{where}: task.data[{i}].direction must be one of {', '.join(DIRECTIONS)}")
        if transfer not in TRANSFERS:
            raise ConfigError(f"{where}: task.data[{i}].transfer must be one of {', '.join(TRANSFERS)}")
        url = str(item["url"])
        local = item.get("local") or os.path.basename(url.rstrip("/").split("?")[0])
        if not local or os.path.isabs(local) or ".." in local.replace("\\", "/").split("/"):
            raise ConfigError(f"{where}: task.data[{i}].local must be a relative path inside the work dir")
        out.append(DataSpec(url, str(local), direction, transfer, item.get("checksum") or None))
    return out


def resolve_job(
    spec: Dict[str, Any], job: int, attempt: int = 0, memory_mb: Optional[float] = None, source: str = "spec"
) -> JobSpec:
    """Resolve a loaded spec for one job index: every module of every iteration, the data and the request."""
    dataset, task = spec["dataset"], spec["task"]
    jobs = dataset.get("jobs")
    if job < 0 or (isinstance(jobs, int) and job >= jobs):
        raise ConfigError(f"{source}: job {job} is outside the dataset's {jobs} jobs")
    if not task.get("name"):
        raise ConfigError(f"{source}: task.name is missing")
    raw_modules = _modules(task.get("modules"), source)
    iterations = task.get("iterations", 1)
    if not isinstance(iterations, int) or iterations < 1:
        raise ConfigError(f"{source}: task.iterations must be a positive integer")
    modules = []
    try:
        ctx, resolve = _context(spec, job, 0)
        data = _data(resolve(task.get("data") or [], ctx), source)
        for iteration in range(iterations):
            if iteration:
                ctx, resolve = _context(spec, job, iteration)
            for i, mod in enumerate(raw_modules):
                mod = resolve(mod, ctx)
                modules.append(
                    ModuleSpec(
                        name=str(mod.get("name") or f"module{i}"),
                        executable=str(mod["executable"]),
                        args=[str(a) for a in mod.get("args", [])],
                        env={str(k): str(v) for k, v in (mod.get("env") or {}).items()},
                        iteration=iteration,
                    )
                )
    except ConfigError:
        raise
    except Exception as exc:  # ExpressionError and friends: name the spec
        raise ConfigError(f"{source}: cannot resolve the task for job {job}: {exc}") from exc
    return JobSpec(
        dataset=str(dataset.get("name", "")),
        dataset_id=dataset.get("dataset_id"),
        task=str(task["name"]),
        job=job,
        attempt=attempt,
        modules=modules,
        data=data,
        request=requirements(spec, memory_mb, source),
        settings=settings(spec, source),
        source=source,
    )


def load_job(path: str, job: int, attempt: int = 0, memory_mb: Optional[float] = None) -> JobSpec:
    """Load a spec file and resolve it for one job."""
    return resolve_job(load_spec(path), job, attempt, memory_mb, source=path)
