"""Read a node's submit file the way DAGMan submits it: VARS macros, $(JOB)/$(RETRY), HTCondor's quoting rules.

htcondor2.Submit parses the file and expands macros, so the submit language (includes of other macros,
``$(var:default)``, ``$ENV()``...) is HTCondor's own. On top of it, as DAGMan does for a node: the macros JOB,
RETRY, DAG_STATUS and FAILED_COUNT are defined, VARS are *prepended* (a macro the file defines wins) unless the
VARS line said APPEND (the VARS value wins). What htcondor2 does not offer offline (turning ``arguments`` and
``environment`` into argv and a dict, resource units) is done here with HTCondor's rules, checked in the tests
against what a real schedd made of the same lines.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from pathlib import Path

import htcondor2

from iceprod_dag.common.exceptions import DagSyntaxError
from iceprod_dag.dagman.parser import read_text

log = logging.getLogger(__name__)


@dataclasses.dataclass
class SubmitDescription:
    """What the local engine needs from one node's submit file, macros expanded."""

    path: Path
    executable: str
    arguments: list[str]
    environment: dict[str, str]
    getenv: str | None = None
    request_cpus: int = 1
    request_memory_mb: int | None = None  # None: the file does not say
    request_disk_kb: int | None = None
    request_gpus: int = 0
    input: str | None = None
    output: str | None = None
    error: str | None = None
    log: str | None = None
    initialdir: str | None = None
    universe: str = "vanilla"
    queue_count: int = 1
    macros: dict[str, str] = dataclasses.field(default_factory=dict)  # every key, expanded


def split_arguments(value: str) -> list[str]:
    """HTCondor's ``arguments``: the new syntax when the value is double-quoted, else the old one."""
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return _split_new(value[1:-1].replace('""', '"'))
    # old syntax: whitespace separates, \" is a literal double quote, nothing else is special
    return value.replace('\\"', '"').split()


def _split_new(body: str) -> list[str]:
    # new syntax: whitespace separates; '...' groups ('' inside is one quote); "" was already one "
    args: list[str] = []
    cur: list[str] = []
    in_arg = False
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c == "'":
            in_arg = True
            i += 1
            while True:
                if i >= n:
                    raise ValueError(f"unbalanced single quote in arguments: {body!r}")
                if body[i] == "'":
                    if i + 1 < n and body[i + 1] == "'":
                        cur.append("'")
                        i += 2
                        continue
                    i += 1
                    break
                cur.append(body[i])
                i += 1
        elif c.isspace():
            if in_arg:
                args.append("".join(cur))
                cur, in_arg = [], False
            i += 1
        else:
            cur.append(c)
            in_arg = True
            i += 1
    if in_arg:
        args.append("".join(cur))
    return args


def parse_environment(value: str) -> dict[str, str]:
    """HTCondor's ``environment``: new syntax (double-quoted, space-separated, '' quoting) or old (a;b)."""
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        items = _split_new(value[1:-1].replace('""', '"'))
    else:
        items = [item for item in value.split(";") if item.strip()]
    env: dict[str, str] = {}
    for item in items:
        name, eq, val = item.partition("=")
        if not eq or not name.strip():
            raise ValueError(f"bad environment entry {item!r} (expected NAME=value)")
        env[name.strip()] = val
    return env


_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMGTP]?)B?\s*$", re.IGNORECASE)
_FACTOR = {"K": 1, "M": 1024, "G": 1024**2, "T": 1024**3, "P": 1024**4}  # in KiB


def parse_quantity(value: str, default_unit: str) -> int:
    """A request_memory/request_disk value in the default unit ("MB" or "KB"), rounded up like condor."""
    m = _UNIT.match(value)
    if not m:
        raise ValueError(f"cannot read the quantity {value!r}")
    number, unit = float(m.group(1)), m.group(2).upper()
    base_kib = {"KB": 1, "MB": 1024}[default_unit]
    kib = number * (_FACTOR[unit] if unit else base_kib)
    return int(-(-kib // base_kib))


def read_submit(
    path: Path | str,
    node: str | None = None,
    vars: Mapping[str, str] | None = None,
    vars_append: frozenset[str] | set[str] = frozenset(),
    retry: int = 0,
    dag_status: int = 0,
    failed_count: int = 0,
) -> SubmitDescription:
    """Read one node's submit file with its VARS; raises DagSyntaxError naming the file on anything unusable."""
    path = Path(path)
    text = read_text(path, "submit file")
    try:
        sub = htcondor2.Submit(text)
    except Exception as e:  # htcondor2 raises its own HTCondorException types
        raise DagSyntaxError(f"submit file does not parse: {e}", str(path)) from e
    defined = {k.lower() for k in sub.keys()}
    # DAGMan's node macros; like VARS they are set before the file, so a file defining them wins
    dagman = {"JOB": node or "", "RETRY": str(retry), "DAG_STATUS": str(dag_status)}
    dagman["FAILED_COUNT"] = str(failed_count)
    for key, value in dagman.items():
        if key.lower() not in defined:
            sub[key] = value
    for key, value in (vars or {}).items():
        if key in vars_append or key.lower() not in defined:
            sub[key] = value
    return _describe(path, sub)


def _describe(path: Path, sub: htcondor2.Submit) -> SubmitDescription:
    macros: dict[str, str] = {}
    for key in sub.keys():
        try:
            macros[key.lower()] = sub.expand(key)
        except KeyError:  # htcondor2 raises KeyError for a macro whose value is empty
            macros[key.lower()] = ""
        except Exception as e:
            raise DagSyntaxError(f"cannot expand {key!r}: {e}", str(path)) from e

    def get(key: str) -> str | None:
        v = macros.get(key)
        return v if v not in (None, "") else None

    qargs = (sub.getQArgs() or "").strip()
    if qargs and not qargs.isdigit():
        raise DagSyntaxError(f"queue {qargs!r} is not supported (only 'queue' or 'queue N')", str(path))
    executable = get("executable")
    if executable is None:
        raise DagSyntaxError("no executable in submit file", str(path))
    try:
        args = split_arguments(get("arguments") or get("args") or "")
        env = parse_environment(get("environment") or get("env") or "")
        memory = get("request_memory")
        disk = get("request_disk")
        desc = SubmitDescription(
            path=path,
            executable=executable,
            arguments=args,
            environment=env,
            getenv=get("getenv"),
            request_cpus=int(float(get("request_cpus") or 1)),
            request_memory_mb=parse_quantity(memory, "MB") if memory else None,
            request_disk_kb=parse_quantity(disk, "KB") if disk else None,
            request_gpus=int(float(get("request_gpus") or 0)),
            input=get("input"),
            output=get("output"),
            error=get("error"),
            log=get("log"),
            initialdir=get("initialdir") or get("initial_dir"),
            universe=(get("universe") or "vanilla").lower(),
            macros=macros,
        )
    except ValueError as e:
        raise DagSyntaxError(str(e), str(path)) from e
    desc.queue_count = int(qargs) if qargs else 1
    return desc
