"""What a batch system needs from one DAG node's attempt: the command line and the resources it asks for.

Reads the few keys of an HTCondor submit description that a batch job needs (executable, arguments,
request_*, walltime, environment), with the node's VARS and DAGMan's $(JOB)/$(RETRY) applied.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

from iceprod_dag.common.exceptions import ConfigError
from iceprod_dag.common.units import parse_duration_s, parse_size_mb

_MACRO = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.]*)\)")
_DEFAULT_WALLTIME_S = 3600


@dataclasses.dataclass(frozen=True)
class JobRequest:
    """One attempt of one node as a batch job: the command and its resource requests."""

    node: str
    attempt: int
    argv: tuple[str, ...]
    cpus: int = 1
    memory_mb: int = 1024
    disk_mb: int = 1024
    gpus: int = 0
    walltime_s: int = _DEFAULT_WALLTIME_S
    environment: tuple[tuple[str, str], ...] = ()

    def shape(self) -> tuple[object, ...]:
        """What must be equal for two requests to share one array job."""
        return (
            self.argv[:1],
            self.cpus,
            self.memory_mb,
            self.disk_mb,
            self.gpus,
            self.walltime_s,
            self.environment,
        )


def read_submit(path: Path) -> dict[str, str]:
    """The key = value pairs of a submit description (keys lower-cased, `+attr` kept with its plus)."""
    values: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read submit file: {exc}", path=str(path)) from None
    pending = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):  # continuation line
            pending = line[:-1] + " "
            continue
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("queue"):
            break
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{path}:{number}: expected 'key = value', got {line!r}", path=str(path))
        values[key.strip().lower()] = value.strip()
    return values


def expand(value: str, macros: dict[str, str], depth: int = 0) -> str:
    """Replace $(name) macros (case-insensitive, like HTCondor); unknown macros are left as they are."""
    if "$(" not in value:
        return value
    lowered = {k.lower(): v for k, v in macros.items()}

    def sub(match: re.Match[str]) -> str:
        name = match.group(1).lower()
        return lowered[name] if name in lowered else match.group(0)

    out = _MACRO.sub(sub, value)
    # a VARS value may itself hold a macro ($(RETRY) inside retry="$(RETRY)")
    return expand(out, lowered, depth + 1) if out != value and depth < 5 else out


def split_arguments(value: str) -> list[str]:
    """HTCondor arguments: the new syntax is double-quoted with single quotes grouping words."""
    value = value.strip()
    if "'" not in value and '""' not in value:  # the common case, without shlex's cost
        return value.strip('"').split()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return shlex.split(value[1:-1].replace('""', '"'))
    return value.split()


def _environment(value: str) -> tuple[tuple[str, str], ...]:
    value = value.strip()
    if not value:
        return ()
    if value.startswith('"') and value.endswith('"'):
        words = shlex.split(value[1:-1])
    else:
        words = value.split(";")
    pairs = []
    for word in words:
        key, sep, val = word.strip().partition("=")
        if sep and key:
            pairs.append((key, val))
    return tuple(pairs)


def job_request(
    node: str,
    attempt: int,
    submit: dict[str, str],
    node_vars: dict[str, str],
    memory_mb: int | None = None,
    where: str = "",
    site: str | None = None,
    walltime_s: int | None = None,
    disk_mb: int | None = None,
) -> JobRequest:
    """The batch job of one attempt: submit keys with VARS, $(JOB) and $(RETRY) expanded.

    memory_mb, walltime_s and disk_mb override the submit file's requests (the retry of an attempt killed
    over that limit asks for more); the pilot is told too, since it enforces them.
    """
    # DAGMan expands $(JOB) and $(RETRY) inside VARS values; then VARS are submit macros, and since submit
    # macros ignore case, VARS job="3" wins over the node name for $(job)
    dagman = {"JOB": node, "RETRY": str(attempt)}
    macros = {k.lower(): v for k, v in dagman.items()}
    macros.update({k.lower(): expand(v, dagman) for k, v in node_vars.items()})

    def get(key: str, default: str | None = None) -> str | None:
        raw = submit.get(key)
        return default if raw is None else expand(raw, macros)

    executable = get("executable")
    if not executable:
        raise ConfigError(f"{where or node}: submit description has no executable")
    argv = [executable, *split_arguments(get("arguments", "") or "")]
    try:
        walltime = get("+iceprodwalltime") or get("+walltime") or get("walltime") or get("+maxwalltime")
        req = JobRequest(
            node=node,
            attempt=attempt,
            argv=tuple(argv),
            cpus=int(float(get("request_cpus", "1") or 1)),
            memory_mb=memory_mb or parse_size_mb(get("request_memory", "1024") or "1024"),
            disk_mb=disk_mb or parse_size_mb(_kib_to_mb(get("request_disk"))),
            gpus=int(float(get("request_gpus", "0") or 0)),
            walltime_s=walltime_s
            or (parse_duration_s(walltime.strip('"')) if walltime else _DEFAULT_WALLTIME_S),
            environment=_environment(get("environment", "") or ""),
        )
    except ValueError as exc:
        raise ConfigError(f"{where or node}: {exc}") from None
    if argv[0].endswith(".pyz"):  # only the pilot knows --memory-mb, --walltime, --disk and --site
        extra = ["--memory-mb", str(memory_mb)] if memory_mb else []
        extra += ["--walltime", f"{walltime_s}s"] if walltime_s else []
        extra += ["--disk", f"{disk_mb}MB"] if disk_mb else []
        if site and "--site" not in argv:
            extra += ["--site", site]
        req = dataclasses.replace(req, argv=(*req.argv, *extra))
    return req


def _kib_to_mb(value: str | None) -> str:
    # HTCondor's request_disk without a unit is KiB, unlike request_memory
    if not value:
        return "1024"
    value = value.strip()
    return f"{value}K" if re.fullmatch(r"\d+(\.\d+)?", value) else value
