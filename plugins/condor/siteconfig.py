"""Load and check an HTCondor site configuration (config/sites/*.yaml, schema config/site.schema.yaml).

Everything is checked before anything is submitted: the schema first, then the parts JSON Schema cannot
judge (ClassAd expressions, attribute names, submit commands), each problem naming file, line and field.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import classad2

from iceprod_dag.common import units
from iceprod_dag.common.exceptions import ConfigError
from iceprod_dag.dataset.schema import format_path, iter_problems
from iceprod_dag.dataset.yamlsource import LineMap, load_yaml_with_lines, read_document

SITE_SCHEMA = "site.schema.yaml"

#: submit commands a site config may add; job-defining ones (executable, arguments, transfer) stay ours
ALLOWED_SUBMIT_COMMANDS = frozenset(
    {
        "priority",
        "concurrency_limits",
        "request_gpus",
        "gpus_minimum_capability",
        "gpus_maximum_capability",
        "gpus_minimum_memory",
        "gpus_minimum_runtime",
        "periodic_hold",
        "periodic_hold_reason",
        "periodic_hold_subcode",
        "periodic_release",
        "periodic_remove",
        "job_max_vacate_time",
        "rank",
        "max_retries",
        "allowed_execute_duration",
        "allowed_job_duration",
        "nice_user",
        "want_graceful_removal",
        "max_transfer_input_mb",
        "max_transfer_output_mb",
        "job_lease_duration",
        "accounting_group_user",
    }
)
#: submit commands whose value is a ClassAd expression, parsed before submission
EXPRESSION_COMMANDS = frozenset({"periodic_hold", "periodic_release", "periodic_remove", "rank"})
ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: attributes HTCondor computes itself; setting them from a config is always a mistake
RESERVED_ATTRIBUTES = frozenset(
    a.lower()
    for a in (
        "ClusterId",
        "ProcId",
        "JobStatus",
        "Owner",
        "User",
        "QDate",
        "Iwd",
        "Cmd",
        "Args",
        "DAGManJobId",
        "DAGNodeName",
        "RequestMemory",
        "RequestCpus",
        "RequestDisk",
    )
)


@dataclasses.dataclass(frozen=True)
class SiteConfig:
    """A checked site configuration; fields mirror config/site.schema.yaml."""

    name: str = "condor"
    schedd: str | None = None
    collector: str | None = None
    run_root: str | None = None
    accounting_group: str | None = None
    accounting_group_user: str | None = None
    project_name: str | None = None
    desired_sites: tuple[str, ...] = ()
    requirements: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    container_image: str | None = None
    container_attribute: str = "SingularityImage"
    credentials: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    extra_attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    submit_commands: Mapping[str, str] = dataclasses.field(default_factory=dict)
    remove_held_after_s: int = 1800
    memory_retry: bool = True
    dagman: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    source: str = "<defaults>"


def classad_text(value: Any) -> str:
    """A YAML scalar as ClassAd expression text: booleans and numbers as literals, strings as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_expression(text: str) -> str | None:
    """None if text parses as one ClassAd expression, else the parser's complaint."""
    try:
        classad2.ExprTree(text)
    except Exception as exc:  # classad2 raises ClassAdException/ValueError depending on the input
        return f"not a valid ClassAd expression: {text!r} ({exc})"
    return None


def _semantic_problems(data: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """What the schema cannot check: expression syntax, attribute names, allowed submit commands."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for name, value in (data.get("extra_attributes") or {}).items():
        path = ("extra_attributes", name)
        bare = name[3:] if name.startswith("My.") else name.lstrip("+")
        if not ATTRIBUTE_NAME.match(bare):
            problems.append((path, f"invalid ClassAd attribute name {name!r}"))
        elif bare.lower() in RESERVED_ATTRIBUTES:
            problems.append(
                (path, f"attribute {bare!r} is set by HTCondor or iceprod-dag, not by a site config")
            )
        elif (why := check_expression(classad_text(value))) is not None:
            problems.append((path, why + " (quote strings: '\"value\"')"))
    for name, value in (data.get("submit_commands") or {}).items():
        path = ("submit_commands", name)
        if name.lower() not in ALLOWED_SUBMIT_COMMANDS:
            problems.append(
                (
                    path,
                    f"unknown or disallowed submit command {name!r}; allowed: "
                    + ", ".join(sorted(ALLOWED_SUBMIT_COMMANDS)),
                )
            )
        elif name.lower() in EXPRESSION_COMMANDS and (why := check_expression(classad_text(value))):
            problems.append((path, why))
    expr = (data.get("requirements") or {}).get("expression")
    if isinstance(expr, str) and (why := check_expression(expr)):
        problems.append((("requirements", "expression"), why))
    return problems


def _where(source: str, lines: LineMap | None, path: tuple[str | int, ...]) -> str:
    line = lines.line(path) if lines else None
    return f"{source}:{line}" if line else source


def site_config_from_mapping(
    data: Mapping[str, Any] | None, source: str = "<site config>", lines: LineMap | None = None
) -> SiteConfig:
    """Check a parsed site configuration and build a SiteConfig; ConfigError lists every problem."""
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of site settings", path=source)
    data = dict(data or {})
    problems = list(iter_problems(data, SITE_SCHEMA))
    if not problems:
        problems = _semantic_problems(data)
    if problems:
        raise ConfigError(
            [f"{_where(source, lines, p)}: {format_path(p)}: {msg}" for p, msg in problems], path=source
        )
    return SiteConfig(
        name=data.get("name", "condor"),
        schedd=data.get("schedd"),
        collector=data.get("collector"),
        run_root=data.get("run_root"),
        accounting_group=data.get("accounting_group"),
        accounting_group_user=data.get("accounting_group_user"),
        project_name=data.get("project_name"),
        desired_sites=tuple(data.get("desired_sites", ())),
        requirements=dict(data.get("requirements") or {}),
        container_image=data.get("container_image"),
        container_attribute=data.get("container_attribute", "SingularityImage"),
        credentials=dict(data.get("credentials") or {}),
        extra_attributes={k: classad_text(v) for k, v in (data.get("extra_attributes") or {}).items()},
        submit_commands={k: classad_text(v) for k, v in (data.get("submit_commands") or {}).items()},
        remove_held_after_s=units.parse_duration_s(data.get("remove_held_after", "30m")),
        memory_retry=bool(data.get("memory_retry", True)),
        dagman=dict(data.get("dagman") or {}),
        source=source,
    )


def packaged_site_file(name: str) -> Path | None:
    """config/sites/<name>.yaml as shipped with the package, if it exists."""
    ref = importlib.resources.files("iceprod_dag.config").joinpath("sites", f"{name}.yaml")
    return Path(str(ref)) if ref.is_file() else None


def load_site_config(spec: str | Path | None) -> SiteConfig:
    """A site config from a file path or the name of a shipped one (osg, chtc, local-condor); None: defaults."""
    if spec is None:
        return SiteConfig()
    path = Path(spec)
    if not path.exists():
        shipped = packaged_site_file(str(spec)) if "/" not in str(spec) else None
        if shipped is None:
            raise ConfigError(f"{spec}: no such site configuration file or shipped site name", path=str(spec))
        path = shipped
    data, lines = load_yaml_with_lines(read_document(path), str(path))
    if data is not None and not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of site settings, got {type(data).__name__}", path=str(path)
        )
    return site_config_from_mapping(data, str(path), lines)
