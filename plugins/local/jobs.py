"""Turn a node's submit file (with its VARS) into the process the executor runs.

Follows condor_submit where it matters locally: a relative executable is found from the submit directory
(the node's DIR), output/error/log paths from ``initialdir``; ``arguments`` in the old (space separated) or
new (double-quoted, single quotes group) syntax; ``request_memory`` in MB unless it carries a unit.
Submit files are parsed once per (file, VARS) pair, so a 100,000-node DAG of one task parses a template
once and only substitutes the per-node VARS.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from iceprod_dag.common import names
from iceprod_dag.common.exceptions import DagSyntaxError
from iceprod_dag.dagman.engine.executor import Launch
from iceprod_dag.dagman.model import Dag, Node

_UNITS = {"k": 1 / 1024, "kb": 1 / 1024, "m": 1, "mb": 1, "g": 1024, "gb": 1024, "t": 1024**2, "tb": 1024**2}


_MACRO = re.compile(r"\$\(([A-Za-z0-9_.+]+)\)")


def read_submit(path: Path) -> dict[str, str]:
    """``key = value`` commands of a submit file up to ``queue`` (keys lower-cased, macros unexpanded)."""
    desc: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower().split(None, 1)[0] == "queue":
            break
        key, sep, value = line.partition("=")
        if sep:
            desc[key.strip().lower()] = value.strip()
    return desc


#: the submit commands a local run uses; the others (requirements, +attributes...) are not expanded
USED = ("executable", "arguments", "args", "initialdir", "output", "error", "log", "request_cpus",
        "request_memory", "environment")  # fmt: skip


def expand_submit(
    desc: dict[str, str], variables: dict[str, str], keys: tuple[str, ...] | None = None
) -> dict[str, str]:
    """Substitute $(var) from the node's VARS and the file itself; $(Cluster)/$(Process) and unknown
    macros stay (Launch.set_cluster does the first two). iceprod_dag.dagman.submitdesc is the full reader."""
    lookup = {k.lower(): v for k, v in variables.items()}
    lookup.update({k: v for k, v in desc.items() if k not in lookup})

    def expand(value: str, depth: int = 0) -> str:
        def one(m: re.Match[str]) -> str:
            got = lookup.get(m.group(1).lower())
            return m.group(0) if got is None or depth > 8 else expand(got, depth + 1)

        return _MACRO.sub(one, value) if "$(" in value else value

    return {k: expand(v) for k, v in desc.items() if keys is None or k in keys}


def split_arguments(text: str) -> list[str]:
    """condor_submit's ``arguments``: new syntax if double-quoted, else split on whitespace."""
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1].replace('""', '"')
        lexer = shlex.shlex(inner, posix=True)
        lexer.whitespace_split = True
        lexer.quotes = "'"
        lexer.escape = ""
        return list(lexer)
    return text.split()


def memory_mb(value: str | None) -> int:
    """request_memory in MB: a bare number is MB, or with a K/M/G/T unit."""
    if not value:
        return 0
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", str(value))
    if not m:
        return 0  # an expression we cannot evaluate locally: no reservation
    return int(float(m.group(1)) * _UNITS.get(m.group(2).lower() or "m", 1))


def is_pilot(argv: list[str]) -> bool:
    """Whether a job runs our pilot zipapp (directly, or through a Python interpreter)."""
    head = argv[:2]
    return any(os.path.basename(a) == names.PILOT_ZIPAPP for a in head)


class JobFactory:
    """Builds the Launch of one attempt of a node, caching parsed submit files."""

    def __init__(self, dag: Dag, run_dir: Path) -> None:
        self.dag = dag
        self.run_dir = run_dir
        self._files: dict[str, dict[str, str]] = {}  # submit file -> its raw commands, read once
        self._env = dict(os.environ)
        self._exes: dict[tuple[str, str], str] = {}
        self._split: dict[str, list[str]] = {}

    def submit_dir(self, node: Node) -> Path:
        base = self.dag.directory
        return base / node.directory if node.directory else base

    def description(self, node: Node, attempt: int) -> tuple[dict[str, str], list[str]]:
        """The node's submit commands (VARS expanded) and its split arguments."""
        sub = self.submit_dir(node) / node.submit_file
        vars_ = {
            k: v.replace("$(RETRY)", str(attempt)).replace("$(JOB)", node.name) for k, v in node.vars.items()
        }
        raw = self._files.get(str(sub))
        if raw is None:
            try:
                raw = self._files[str(sub)] = read_submit(sub)
            except OSError as exc:
                raise DagSyntaxError(f"node {node.name}: cannot read submit file {sub}: {exc}") from exc
        desc = expand_submit(raw, vars_, USED)
        raw_args = raw.get("arguments", raw.get("args", ""))
        split = self._split.get(raw_args)
        if split is None:
            split = self._split[raw_args] = split_arguments(raw_args)
        # split once per template, then expand per node (the same as condor_submit unless a value has spaces)
        args = [expand_submit({"a": a}, vars_)["a"] if "$(" in a else a for a in split]
        if any(c in a for a in args for c in " \t'\""):
            args = split_arguments(desc.get("arguments", desc.get("args", "")))
        return desc, args

    def __call__(self, node: Node, attempt: int) -> Launch:
        desc, args = self.description(node, attempt)
        subdir = self.submit_dir(node)
        initialdir = subdir / desc["initialdir"] if desc.get("initialdir") else subdir
        executable = desc.get("executable")
        if not executable:
            raise DagSyntaxError(f"node {node.name}: submit file {node.submit_file} has no executable")
        exe = self._executable(subdir, executable)
        argv = [exe, *args]
        cpus = int(float(desc.get("request_cpus", "1") or 1))
        env = self._environment(desc)
        info: dict[str, Any] = {
            "submit_file": node.submit_file,
            "Cmd": exe,
            "Args": " ".join(argv[1:]),
            "Iwd": str(initialdir),
            "pilot": is_pilot(argv),
            "UserLog": desc.get("log"),
        }
        if info["pilot"] and argv[0] == exe and exe.endswith(names.PILOT_ZIPAPP):
            argv.insert(0, sys.executable)  # run by its own process (no in-engine pilot): needs no x bit
        return Launch(
            argv=argv,
            cwd=str(initialdir),
            env=env,
            stdout=self._path(initialdir, desc.get("output")),
            stderr=self._path(initialdir, desc.get("error")),
            cpus=max(1, cpus),
            memory_mb=memory_mb(desc.get("request_memory")),
            info=info,
        )

    def _executable(self, subdir: Path, executable: str) -> str:
        key = (str(subdir), executable)
        exe = self._exes.get(key)
        if exe is None:
            exe = executable if os.path.isabs(executable) else str(subdir / executable)
            if not os.path.exists(exe) and "/" not in executable:
                exe = executable  # a bare name: found on PATH, like transfer_executable = false
            self._exes[key] = exe
        return exe

    @staticmethod
    def _path(initialdir: Path, value: str | None) -> str | None:
        if not value or value == "/dev/null":
            return None
        return value if os.path.isabs(value) else str(initialdir / value)

    def _environment(self, desc: dict[str, str]) -> dict[str, str] | None:
        text = desc.get("environment")
        if not text:
            return None  # inherit
        env = dict(self._env)
        text = text.strip()
        if text.startswith('"') and text.endswith('"'):
            pairs = split_arguments(text)
        else:
            pairs = text.split(";")
        for pair in pairs:
            k, sep, v = pair.strip().partition("=")
            if sep:
                env[k] = v
        return env
