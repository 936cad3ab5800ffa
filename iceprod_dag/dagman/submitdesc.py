"""Read a node's submit file the way DAGMan submits it: the one submit-file reader of every site.

htcondor2.Submit parses the file and expands macros, so the submit language (macros of macros,
``$(var:default)``, ``$ENV()``, ``if``...) is HTCondor's own. On top of it, as DAGMan's dagman_submit.cpp does
for a node: JOB, RETRY, DAG_STATUS, FAILED_COUNT and DAG_PARENT_NAMES are defined and VARS *prepended* (a macro
the file defines wins); dag_node_name, DAGManJobId and VARS ... APPEND are set after the file (they win). Each
file is parsed once (``template``, keyed by path and mtime) and expanded per node. Turning values into argv,
environment and quantities follows condor_submit's rules (iceprod_dag.dagman.submitsyntax).
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path

import htcondor2

from iceprod_dag.common.exceptions import DagSyntaxError
from iceprod_dag.dagman.model import Node
from iceprod_dag.dagman.parser import read_text
from iceprod_dag.dagman.submitsyntax import parse_environment, request_quantity, split_arguments


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


@dataclasses.dataclass(frozen=True)
class NodeMacros:
    """What DAGMan gives a node's submit file when it submits the node (dagman_submit.cpp).

    Before the file is read (so a macro the file defines wins): JOB, RETRY, DAG_STATUS, FAILED_COUNT,
    DAG_PARENT_NAMES (the parents, comma-separated, when there are any), then the node's VARS. After the file
    (these win): dag_node_name, DAGManJobId (when DAGMan runs as a job) and VARS given with APPEND.
    """

    node: str = ""
    retry: int = 0
    dag_status: int = 0
    failed_count: int = 0
    parents: tuple[str, ...] = ()
    dagman_job_id: int | None = None
    vars: Mapping[str, str] = dataclasses.field(default_factory=dict)
    vars_append: frozenset[str] = frozenset()

    def prepended(self) -> dict[str, str]:
        """Macros set before the file, by lower-cased name (macro names ignore case; later ones win)."""
        out = {"job": self.node, "retry": str(self.retry), "dag_status": str(self.dag_status)}
        out["failed_count"] = str(self.failed_count)
        if self.parents:
            out["dag_parent_names"] = ",".join(self.parents)
        for k, v in self.vars.items():
            if k not in self.vars_append:
                out[k.lower()] = self_reference(k, v, out.get(k.lower(), ""))
        return out

    def appended(self) -> dict[str, str]:
        """Macros set after the file, by lower-cased name."""
        out = {"dag_node_name": self.node}
        if self.dagman_job_id is not None:
            out["dagmanjobid"] = str(self.dagman_job_id)
        out.update((k.lower(), v) for k, v in self.vars.items() if k in self.vars_append)
        return out


def self_reference(name: str, value: str, previous: str) -> str:
    """A macro defined in terms of itself (``retry = $(RETRY)``) takes its previous value, as in a submit file."""
    if "$(" not in value:
        return value
    return re.sub(rf"\$\({re.escape(name)}\)", lambda _: previous, value, flags=re.IGNORECASE)


def _cycle(defs: Mapping[str, str]) -> str | None:
    """A macro that refers back to itself through others (htcondor2 would loop forever expanding it)."""
    state: dict[str, int] = {}  # 1: being visited, 2: done

    def visit(name: str) -> str | None:
        state[name] = 1
        for ref in _REF.findall(defs[name]):
            ref = ref.lower()
            if ref not in defs or state.get(ref) == 2:
                continue
            if state.get(ref) == 1 or visit(ref):
                return ref
        state[name] = 2
        return None

    for name in defs:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def _referenced(names: set[str], pre: Mapping[str, str], post: Mapping[str, str]) -> set[str]:
    """names, plus the macros the node's own macros among them refer to (VARS name="$(JOB)"), transitively."""
    need = set(names)
    pending = [v for k, v in (*pre.items(), *post.items()) if k in need and "$(" in v]
    while pending:
        for ref in _ANY_REF.findall(pending.pop()):
            ref = ref.lower()
            if ref not in need:
                need.add(ref)
                value = post.get(ref, pre.get(ref, ""))
                if "$(" in value:
                    pending.append(value)
    return need


#: the live job macros: left as $(Cluster)/$(ClusterId) text for the site to fill in when it knows the id
_LIVE = {"cluster": "$(DOLLAR)(Cluster)", "clusterid": "$(DOLLAR)(ClusterId)"}
_REF = re.compile(r"\$\(([A-Za-z0-9_.]+)\)")
#: every name a value may refer to: $(name), $(name:default), $ENV(name), $Fpn(name), $INT(name)...
_ANY_REF = re.compile(r"\$[A-Za-z_]*\(\s*([A-Za-z0-9_.]+)")
#: submit-language statements evaluated while the file is read: such a file is read again for every node
_PARSE_TIME = re.compile(
    r"^\s*(if|elif|else|endif|include|error|warning)\b(?!\s*=)|@=", re.IGNORECASE | re.MULTILINE
)
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_.+]+)\s*=(.*)$", re.MULTILINE)


class SubmitTemplate:
    """One submit file parsed once; ``describe`` gives one node's description with DAGMan's macros.

    A file of plain ``key = value`` lines is kept as one htcondor2.Submit: per node, the node's macros are set
    on it, the keys whose value can depend on them are expanded, and the macros are taken back off. Keys that
    cannot depend on a node (no macro, or macros the file defines and no node can override) are expanded once.
    A file with statements that run while it is read (``if``, ``include``...) or a macro that refers to itself
    sees the node's macros only if they are there while it is read: it is parsed again per node, after them.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = read_text(path, "submit file")
        self._sub = self._parse(self.text)
        self._lock = threading.Lock()
        qargs = (self._sub.getQArgs() or "").strip()
        if qargs and not qargs.isdigit():
            raise DagSyntaxError(f"queue {qargs!r} is not supported (only 'queue' or 'queue N')", str(path))
        self.queue_count = int(qargs) if qargs else 1
        self._raw = {k.lower(): (k, v) for k, v in self._sub.items()}
        self.reparse = bool(_PARSE_TIME.search(self.text)) or any(
            re.search(rf"\$\({re.escape(k)}[):]", v, re.IGNORECASE) for k, v in _ASSIGN.findall(self.text)
        )
        for name, value in _LIVE.items():
            if name not in self._raw:
                self._sub[name] = value
        looped = _cycle({k: v for k, (_, v) in self._raw.items()})
        if looped:
            raise DagSyntaxError(f"macro {looped!r} refers to itself", str(path))
        self._deps = {key: self._closure(key, set()) for key in self._raw}
        self._dynamic = [(key, orig) for key, (orig, _) in self._raw.items() if self._deps[key] is None]
        self._refs = {n.lower() for _, v in self._raw.values() for n in _ANY_REF.findall(v)}
        self._static = {
            key: self._expand(self._sub, orig)
            for key, (orig, _) in self._raw.items()
            if self._deps[key] is not None
        }

    def _parse(self, text: str) -> htcondor2.Submit:
        try:
            return htcondor2.Submit(text)
        except Exception as e:  # htcondor2 raises its own HTCondorException types
            raise DagSyntaxError(f"submit file does not parse: {e}", str(self.path)) from e

    def _closure(self, key: str, seen: set[str]) -> frozenset[str] | None:
        """The file's macros key's value refers to, transitively; None if a node can change its value."""
        if key in seen:
            return None  # a cycle: let htcondor2 report it per node
        value = self._raw[key][1]
        if "$" in _REF.sub("", value):
            return None  # $(x:default), $ENV(), $$(), $RANDOM_CHOICE()...: expanded per node
        deps = {key}
        for name in _REF.findall(value):
            name = name.lower()
            if name not in self._raw:
                return None  # a macro the node may define (VARS, JOB...) or a built-in one
            sub = self._closure(name, seen | {key})
            if sub is None:
                return None
            deps |= sub
        return frozenset(deps)

    def _expand(self, sub: htcondor2.Submit, key: str) -> str:
        try:
            return str(sub.expand(key))
        except KeyError:  # htcondor2 raises KeyError for a macro whose value is empty
            return ""
        except Exception as e:
            raise DagSyntaxError(f"cannot expand {key!r}: {e}", str(self.path)) from e

    def describe(self, macros: NodeMacros) -> SubmitDescription:
        """One node's submit description, macros expanded as DAGMan's submission would."""
        pre, post = macros.prepended(), macros.appended()
        raw = self._raw
        for name, value in post.items():
            previous = raw[name][1] if name in raw else pre.get(name, "")
            post[name] = self_reference(name, value, previous)
        refs = self._refs
        if any("$(" in v for v in (*pre.values(), *post.values())):
            refs = _referenced(refs, pre, post)
            defs = {k: v for k, (_, v) in raw.items()}
            defs.update((k, v) for k, v in pre.items() if k not in raw)
            defs.update(post)
            looped = _cycle(defs)
            if looped:
                raise DagSyntaxError(f"node {macros.node}: macro {looped!r} refers to itself", str(self.path))
        if self.reparse:
            head = "".join(f"{k} = {v}\n" for k, v in pre.items())
            sub = self._parse(head + self.text)
            defined = {k.lower() for k in sub.keys()}
            for name, value in _LIVE.items():
                if name not in defined:
                    sub[name] = value
            for name, value in post.items():
                sub[name] = value
            return _describe(
                self.path, {k.lower(): self._expand(sub, k) for k in sub.keys()}, self.queue_count
            )
        with self._lock:  # the one Submit object is lent to one node at a time
            return self._describe_plain(pre, post, refs)

    def _describe_plain(self, pre: dict[str, str], post: dict[str, str], refs: set[str]) -> SubmitDescription:
        sub, raw = self._sub, self._raw
        # only what the file refers to can change an expansion: setting the rest would be wasted work
        todo = [(k, v) for k, v in pre.items() if k in refs and k not in raw and k not in post]
        todo += [(k, v) for k, v in post.items() if k in refs or k in raw]
        for name, value in todo:
            sub[name] = value
        try:
            expanded = dict(self._static)
            for key, orig in self._dynamic:
                expanded[key] = self._expand(sub, orig)
            overridden = {k for k, _ in todo if k in raw}  # appended over the file's own definition
            if overridden:
                for key, (orig, _) in raw.items():
                    deps = self._deps[key]
                    if deps is not None and not deps.isdisjoint(overridden):
                        expanded[key] = self._expand(sub, orig)
        finally:
            for name, _ in todo:  # back to the file's own value, or undefined (an empty macro is undefined)
                sub[name] = raw[name][1] if name in raw else _LIVE.get(name, "")
        return _describe(self.path, expanded, self.queue_count)


_TEMPLATES: dict[str, tuple[tuple[int, int], SubmitTemplate]] = {}
_MAX_TEMPLATES = 1024


def template(path: Path | str) -> SubmitTemplate:
    """The parsed submit file at path, read again only when the file changed (mtime or size)."""
    key = str(path)
    try:
        st = os.stat(key)
    except OSError as e:
        raise DagSyntaxError(f"cannot read submit file: {e.strerror}", key) from e
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _TEMPLATES.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    if len(_TEMPLATES) >= _MAX_TEMPLATES:
        _TEMPLATES.pop(next(iter(_TEMPLATES)))
    tpl = SubmitTemplate(Path(key))
    _TEMPLATES[key] = (stamp, tpl)
    return tpl


def read_submit(
    path: Path | str,
    node: str | None = None,
    vars: Mapping[str, str] | None = None,
    vars_append: frozenset[str] | set[str] = frozenset(),
    retry: int = 0,
    dag_status: int = 0,
    failed_count: int = 0,
    parents: tuple[str, ...] = (),
    dagman_job_id: int | None = None,
) -> SubmitDescription:
    """Read one node's submit file with DAGMan's macros; raises DagSyntaxError naming the file if unusable."""
    macros = NodeMacros(
        node=node or "",
        retry=retry,
        dag_status=dag_status,
        failed_count=failed_count,
        parents=tuple(parents),
        dagman_job_id=dagman_job_id,
        vars=vars or {},
        vars_append=frozenset(vars_append),
    )
    return template(path).describe(macros)


def read_node_submit(
    path: Path | str,
    node: Node,
    retry: int = 0,
    dag_status: int = 0,
    failed_count: int = 0,
    dagman_job_id: int | None = None,
) -> SubmitDescription:
    """A DAG node's submit file (at path) as DAGMan submits this attempt of it: its name, VARS and parents."""
    macros = NodeMacros(
        node=node.name,
        retry=retry,
        dag_status=dag_status,
        failed_count=failed_count,
        parents=tuple(node.parents),
        dagman_job_id=dagman_job_id,
        vars=node.vars,
        vars_append=node.vars_append,
    )
    return template(path).describe(macros)


def _describe(path: Path, macros: dict[str, str], queue_count: int) -> SubmitDescription:
    def get(key: str) -> str | None:
        v = macros.get(key)
        return v if v not in (None, "") else None

    executable = get("executable")
    if executable is None:
        raise DagSyntaxError("no executable in submit file", str(path))
    try:
        memory = get("request_memory")
        disk = get("request_disk")
        return SubmitDescription(
            path=path,
            executable=executable,
            arguments=split_arguments(get("arguments") or get("args") or ""),
            environment=parse_environment(get("environment") or get("env") or ""),
            getenv=get("getenv"),
            request_cpus=int(float(get("request_cpus") or 1)),
            request_memory_mb=request_quantity(memory, "MB"),
            request_disk_kb=request_quantity(disk, "KB"),
            request_gpus=int(float(get("request_gpus") or 0)),
            input=get("input"),
            output=get("output"),
            error=get("error"),
            log=get("log"),
            initialdir=get("initialdir") or get("initial_dir"),
            universe=(get("universe") or "vanilla").lower(),
            queue_count=queue_count,
            macros=macros,
        )
    except ValueError as e:
        raise DagSyntaxError(str(e), str(path)) from e
