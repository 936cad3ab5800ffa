"""HTCondor's submit-language values, read with condor_submit's rules: ``arguments``, ``environment``, resource
quantities and the executable's path. Checked in the tests against what a real schedd made of the same lines.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path

import classad2

log = logging.getLogger(__name__)


def resolve_executable(executable: str, submit_dir: Path | str) -> str:
    """condor_submit's executable: relative to the submit file's folder; a bare name missing there is on PATH."""
    if os.path.isabs(executable):
        return executable
    return _in_folder(executable, str(submit_dir))


@functools.lru_cache(maxsize=1024)  # one stat per folder and name, not one per node
def _in_folder(executable: str, folder: str) -> str:
    path = os.path.join(folder, executable)
    if not os.path.exists(path) and "/" not in executable:
        return executable  # like transfer_executable = false: the worker's PATH finds it
    return path


def split_arguments(value: str) -> list[str]:
    """HTCondor's ``arguments``: the new syntax when the value is double-quoted, else the old one."""
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return _split_new(value[1:-1].replace('""', '"'))
    # old syntax: whitespace separates, \" is a literal double quote, nothing else is special
    return value.replace('\\"', '"').split()


def _split_new(body: str) -> list[str]:
    # new syntax: whitespace separates; '...' groups ('' inside is one quote); "" was already one "
    if "'" not in body:
        return body.split()
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


@functools.lru_cache(maxsize=4096)  # the same few values, node after node
def request_quantity(value: str | None, unit: str) -> int | None:
    """A request_memory/request_disk: a quantity, or a ClassAd expression of constants; None if neither.

    An expression over job attributes (``ifThenElse(MemoryUsage =!= undefined, ...)``) only has a value in
    the schedd: read offline, the file asks for nothing in particular.
    """
    if value is None:
        return None
    try:
        return parse_quantity(value, unit)
    except ValueError:
        pass
    try:
        number = classad2.ExprTree(value).eval()
    except Exception:  # classad2 raises its own types for text that is no expression
        number = None
    if isinstance(number, bool) or not isinstance(number, int | float):
        log.debug("request %r has no value outside the schedd", value)
        return None
    return int(-(-number // 1))
