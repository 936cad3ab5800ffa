"""Parse a DAGMan DAG file into a Dag, following condor_dagman's own parser (parse.cpp) rule by rule.

Like DAGMan it reads in two passes, so PARENT/VARS/... may name nodes defined further down: pass one takes the
JOB and FINAL lines, pass two everything else in file order (with ALL_NODES, the last line in the file wins).
ALL_NODES never touches the FINAL node (DAGMan skips it). Missing submit files are not checked here.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from iceprod_dag.common.exceptions import DagSyntaxError
from iceprod_dag.common.gcpause import gc_paused
from iceprod_dag.dagman.model import Dag, Node, Script
from iceprod_dag.dagman.rescue import find_rescue

log = logging.getLogger(__name__)

ALL_NODES = "ALL_NODES"
_RESERVED = {"PARENT", "CHILD", ALL_NODES}
# DAGMan keywords we deliberately do not run; each is refused with its own message.
UNSUPPORTED = {
    "SPLICE", "SUBDAG", "INCLUDE", "SUBMIT-DESCRIPTION", "SET_JOB_ATTR", "ENV", "SAVE_POINT_FILE",
    "PROVISIONER", "SERVICE", "REJECT", "CONNECT", "PIN_IN", "PIN_OUT", "DATA",
}  # fmt: skip
_PASS2 = {
    "SCRIPT", "PARENT", "RETRY", "ABORT-DAG-ON", "DOT", "VARS", "PRIORITY", "CATEGORY", "MAXJOBS", "CONFIG",
    "NODE_STATUS_FILE", "JOBSTATE_LOG", "PRE_SKIP", "DONE",
}  # fmt: skip
# name="value": names are alphanumerics, '_' and '.', with an optional leading '+'; \\ and \" are the escapes
_VAR_RE = re.compile(r'\s*(\+?[A-Za-z0-9_.]+)\s*=\s*"((?:[^"\\]|\\.)*)"')
_VARS_LINE_RE = re.compile(r'(?:\s*\+?[A-Za-z0-9_.]+\s*=\s*"(?:[^"\\]|\\.)*")+\s*')
_ESCAPE_RE = re.compile(r"\\(.)")
_INT_RE = re.compile(r"[+-]?\d+")
_NODE_VALUE = {
    "PRIORITY": ("priority", "value"),
    "CATEGORY": ("category", "name"),
    "PRE_SKIP": ("pre_skip", "code"),
}


def _int(token: str, what: str, path: str, line: int) -> int:
    # strtol semantics: a leading integer is enough ("3x" is 3), nothing numeric is an error
    m = _INT_RE.match(token)
    if not m:
        raise DagSyntaxError(f"invalid {what} {token!r}", path, line)
    return int(m.group())


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, stripped text) of each logical line; a trailing backslash continues a line."""
    raw = text.split("\n")
    if "\\\n" not in text and not text.endswith("\\"):
        return [(i, s.strip()) for i, s in enumerate(raw, 1)]
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(raw):
        start, s = i + 1, raw[i].strip()
        while s.endswith("\\") and not s.startswith("#") and i + 1 < len(raw):
            i += 1
            s = s[:-1] + raw[i].strip()
        out.append((start, s))
        i += 1
    return out


class _Parser:
    def __init__(self, dag: Dag, path: str) -> None:
        self.dag = dag
        self.path = path
        self.edges: dict[tuple[str, str], int] = {}

    def err(self, msg: str, line: int) -> DagSyntaxError:
        return DagSyntaxError(msg, self.path, line)

    # ---- pass 1
    def node_line(self, kw: str, line: str, lineno: int) -> None:
        parts = line.split()
        nodes = self.dag.nodes
        if len(parts) == 3 and kw == "JOB":  # the common "JOB name file": same checks, less work
            name, submit = parts[1], parts[2]
            if (
                name not in nodes
                and "+" not in name
                and submit[0] not in '"{'
                and name.upper() not in _RESERVED
            ):
                nodes[name] = Node(name, submit, line=lineno)
                return
        parts = line.split(None, 2)
        if len(parts) < 3:
            raise self.err(
                f"{kw} needs a node name and a submit file: {kw} name file [DIR d] [NOOP] [DONE]", lineno
            )
        name, rest = parts[1], parts[2]
        if rest.startswith('"'):
            end = rest.find('"', 1)
            if end < 0:
                raise self.err("missing closing quote around the submit file name", lineno)
            submit, opts = rest[1:end], rest[end + 1 :].split()
        else:
            submit, *opts = rest.split()
        if submit.startswith("{"):
            raise self.err(f"inline submit descriptions ({kw} {name} {{...}}) are not supported", lineno)
        if name.upper() in _RESERVED:
            raise self.err(f"node name {name!r} is a reserved word", lineno)
        if "+" in name:
            raise self.err(f"node name {name!r} contains the illegal character '+'", lineno)
        if name in self.dag.nodes:
            raise self.err(f"duplicate node name {name!r} (first defined at line {nodes[name].line})", lineno)
        node = Node(name, submit, line=lineno)
        i = 0
        if i < len(opts) and opts[i].upper() == "DIR":
            if i + 1 >= len(opts):
                raise self.err("no directory after DIR", lineno)
            node.directory = opts[i + 1].strip('"')
            i += 2
        if i < len(opts) and opts[i].upper() == "NOOP":
            node.noop, i = True, i + 1
        if i < len(opts) and opts[i].upper() == "DONE":
            node.done, i = True, i + 1
        if i < len(opts):
            raise self.err(
                f"invalid parameter {opts[i]!r} on {kw} line (order: [DIR d] [NOOP] [DONE])", lineno
            )
        if kw == "FINAL":
            if self.dag.final is not None:
                raise self.err(f"second FINAL node {name!r} (the DAG has {self.dag.final!r})", lineno)
            node.final = True
            node.done = False  # DAGMan never marks the FINAL node done
            self.dag.final = name
        nodes[name] = node

    # ---- pass 2
    def targets(self, name: str, lineno: int, kw: str) -> list[Node]:
        if name.upper() == ALL_NODES:
            return [n for n in self.dag.nodes.values() if not n.final]
        node = self.dag.nodes.get(name)
        if node is None:
            raise self.err(f"{kw}: unknown node {name!r}", lineno)
        if node.final and kw in ("RETRY", "PRIORITY", "CATEGORY", "ABORT-DAG-ON"):
            raise self.err(f"the FINAL node {name!r} cannot have a {kw} specification", lineno)
        return [node]

    def expect(self, tokens: list[str], n_min: int, n_max: int, usage: str, lineno: int) -> None:
        if len(tokens) < n_min:
            raise self.err(f"missing value; usage: {usage}", lineno)
        if len(tokens) > n_max:
            raise self.err(f"extra token {tokens[n_max]!r}; usage: {usage}", lineno)

    # ---- pass 2
    def command(self, kw: str, line: str, lineno: int) -> None:
        if kw == "VARS":
            return self.vars(line, lineno)
        if kw == "PARENT":
            return self.parent(line, lineno)
        if kw == "SCRIPT":
            return self.script(line, lineno)
        t = line.split()
        if kw == "RETRY":
            usage = "RETRY node|ALL_NODES n [UNLESS-EXIT v]"
            self.expect(t, 3, 5, usage, lineno)
            n = _int(t[2], "RETRY value", self.path, lineno)
            if n < 0:
                raise self.err(f"RETRY value {n} cannot be negative", lineno)
            unless = None
            if len(t) > 3:
                if t[3].upper() != "UNLESS-EXIT" or len(t) != 5 or not _INT_RE.fullmatch(t[4]):
                    raise self.err(f"bad RETRY option {' '.join(t[3:])!r}; usage: {usage}", lineno)
                unless = int(t[4]) or None  # DAGMan treats UNLESS-EXIT 0 as no UNLESS-EXIT
            for node in self.targets(t[1], lineno, kw):
                node.retry, node.unless_exit = n, unless
        elif kw in _NODE_VALUE:  # PRIORITY, CATEGORY, PRE_SKIP: "KW node|ALL_NODES value"
            attr, what = _NODE_VALUE[kw]
            self.expect(t, 3, 3, f"{kw} node|ALL_NODES {what}", lineno)
            value = t[2] if attr == "category" else _int(t[2], f"{kw} {what}", self.path, lineno)
            for node in self.targets(t[1], lineno, kw):
                setattr(node, attr, value)
        elif kw == "MAXJOBS":
            self.expect(t, 3, 3, "MAXJOBS category value", lineno)
            v = _int(t[2], "MAXJOBS value", self.path, lineno)
            if v < 0:
                raise self.err("MAXJOBS value must be non-negative", lineno)
            self.dag.max_jobs[t[1]] = v
        elif kw == "ABORT-DAG-ON":
            usage = "ABORT-DAG-ON node|ALL_NODES value [RETURN v]"
            self.expect(t, 3, 5, usage, lineno)
            value = _int(t[2], "ABORT-DAG-ON node value", self.path, lineno)
            ret = None
            if len(t) > 3:
                if t[3].upper() != "RETURN" or len(t) != 5:
                    raise self.err(f"bad ABORT-DAG-ON option {' '.join(t[3:])!r}; usage: {usage}", lineno)
                ret = _int(t[4], "ABORT-DAG-ON RETURN value", self.path, lineno)
                if not 0 <= ret <= 255:
                    raise self.err(f"ABORT-DAG-ON RETURN value {ret} must be between 0 and 255", lineno)
            for node in self.targets(t[1], lineno, kw):
                node.abort_dag_on = (value, ret)
        elif kw == "DONE":
            self.expect(t, 2, 2, "DONE node", lineno)
            done = self.dag.nodes.get(t[1])
            if done is None:
                raise self.err(f"DONE: unknown node {t[1]!r}", lineno)
            if done.final:
                raise self.err(f"the FINAL node {t[1]!r} cannot be set to DONE", lineno)
            done.done = True
        elif kw == "NODE_STATUS_FILE":
            self.expect(t, 2, 4, "NODE_STATUS_FILE file [min-update-seconds] [ALWAYS-UPDATE]", lineno)
            self.dag.node_status_file = t[1]
            self.dag.node_status_interval = _int(t[2], "update time", self.path, lineno) if len(t) > 2 else 60
            if len(t) > 3:
                if t[3].upper() != "ALWAYS-UPDATE":
                    raise self.err(f"invalid parameter {t[3]!r} on NODE_STATUS_FILE line", lineno)
                self.dag.node_status_always_update = True
        elif kw == "JOBSTATE_LOG":
            self.expect(t, 2, 2, "JOBSTATE_LOG file", lineno)
            self.dag.jobstate_log = t[1]
        elif kw == "CONFIG":
            self.expect(t, 2, 2, "CONFIG file", lineno)
            self.dag.config_file = t[1]
        elif kw == "DOT":
            self.dot(t, lineno)

    def dot(self, t: list[str], lineno: int) -> None:
        if len(t) < 2:
            raise self.err("missing DOT file name", lineno)
        i = 2
        while i < len(t):
            opt = t[i].upper()
            if opt in ("UPDATE", "DONT-UPDATE"):
                self.dag.dot_update = opt == "UPDATE"
            elif opt in ("OVERWRITE", "DONT-OVERWRITE"):
                self.dag.dot_overwrite = opt == "OVERWRITE"
            elif opt == "INCLUDE":
                if i + 1 >= len(t):
                    raise self.err("missing DOT INCLUDE file name", lineno)
                i += 1
                self.dag.dot_include = t[i]
            # DAGMan ignores any other token on a DOT line
            i += 1
        self.dag.dot_file = t[1]

    def vars(self, line: str, lineno: int) -> None:
        parts = line.split(None, 2)
        if len(parts) < 3:
            raise self.err('VARS needs a node name and name="value" pairs', lineno)
        rest = parts[2]
        append = False
        if rest.startswith("PREPEND"):  # case-sensitive prefix test, as DAGMan does
            rest = rest[7:]
        elif rest.startswith("APPEND"):
            append, rest = True, rest[6:]
        if _VARS_LINE_RE.fullmatch(rest) is None:
            raise self.err(f'bad VARS pairs {rest.strip()[:60]!r}: expected name="value" ...', lineno)
        pairs = _VAR_RE.findall(rest)
        if "\\" in rest or "+" in rest or "ueue" in rest.lower():  # rare: escapes, +attr, queue* names
            pairs = [self.pair(name, value, lineno) for name, value in pairs]
        one = self.dag.nodes.get(parts[1])  # a defined node is never ALL_NODES (a reserved word)
        for node in (one,) if one is not None else self.targets(parts[1], lineno, "VARS"):
            node.vars.update(pairs)
            if append:
                node.vars_append = node.vars_append.union(n for n, _ in pairs)

    def pair(self, name: str, value: str, lineno: int) -> tuple[str, str]:
        if "\\" in value:
            for esc in _ESCAPE_RE.findall(value):  # escapes pair up left to right: a\\b is a, \\, b
                if esc not in '\\"':
                    raise self.err(
                        f"unknown escape sequence '\\{esc}' in VARS value (only \\\\ and \\\")", lineno
                    )
            value = _ESCAPE_RE.sub(r"\1", value)
        if name.lower().startswith("queue"):
            raise self.err(f"illegal VARS macro name {name!r}: names cannot begin with 'queue'", lineno)
        return ("My." + name[1:] if name.startswith("+") else name), value

    def parent(self, line: str, lineno: int) -> None:
        t = line.split()
        if len(t) == 4 and t[2].upper() == "CHILD":  # the common one-to-one line
            p, c = t[1], t[3]
            nodes = self.dag.nodes
            pnode, cnode = nodes.get(p), nodes.get(c)
            if pnode is not None and cnode is not None and not pnode.final and not cnode.final and p != c:
                if (p, c) not in self.edges:
                    self.edges[(p, c)] = lineno
                    pnode.children.append(c)
                    cnode.parents.append(p)
                return
        upper = [x.upper() for x in t]
        if "CHILD" not in upper:
            raise self.err("expected CHILD token; usage: PARENT p1 [p2 ...] CHILD c1 [c2 ...]", lineno)
        k = upper.index("CHILD")
        parents, children = dict.fromkeys(t[1:k]), dict.fromkeys(t[k + 1 :])  # ordered, de-duplicated
        if not parents:
            raise self.err("missing parent node names", lineno)
        if not children:
            raise self.err("missing child node names", lineno)
        nodes = self.dag.nodes
        for name in (*parents, *children):
            node = nodes.get(name)
            if node is None:
                raise self.err(f"PARENT/CHILD: unknown node {name!r}", lineno)
            if node.final:
                raise self.err(f"the FINAL node {name!r} cannot have parents or children", lineno)
        edges = self.edges
        for p in parents:
            pnode = nodes[p]
            for c in children:
                if (p, c) in edges:
                    continue
                if p == c:
                    raise self.err(f"node {p!r} cannot be its own parent (cycle: {p} -> {p})", lineno)
                edges[(p, c)] = lineno
                pnode.children.append(c)
                nodes[c].parents.append(p)

    def script(self, line: str, lineno: int) -> None:
        usage = "SCRIPT [DEFER status time] [DEBUG file STDOUT|STDERR|ALL] PRE|POST|HOLD node exe args..."
        toks = list(re.finditer(r"\S+", line))
        i, defer_status, defer_time, debug_file, debug_type = 1, None, None, None, None

        def tok(k: int) -> str:
            if k >= len(toks):
                raise self.err(f"incomplete SCRIPT line; usage: {usage}", lineno)
            return toks[k].group()

        if tok(i).upper() == "DEFER":
            defer_status = _int(tok(i + 1), "DEFER status", self.path, lineno)
            defer_time = _int(tok(i + 2), "DEFER time", self.path, lineno)
            if defer_status <= 0 or defer_time < 0:
                raise self.err("DEFER status must be > 0 and time >= 0", lineno)
            i += 3
        if tok(i).upper() == "DEBUG":
            debug_file, debug_type = tok(i + 1), tok(i + 2).upper()
            if debug_type not in ("STDOUT", "STDERR", "ALL"):
                raise self.err(f"unknown SCRIPT DEBUG stream {debug_type!r} (STDOUT, STDERR or ALL)", lineno)
            i += 3
        kind = tok(i).upper()
        if kind not in ("PRE", "POST", "HOLD"):
            raise self.err(f"SCRIPT type must be PRE, POST or HOLD, not {tok(i)!r}; usage: {usage}", lineno)
        name = tok(i + 1)
        if i + 2 >= len(toks):
            raise self.err(f"SCRIPT {kind} for node {name!r} has no script file name", lineno)
        command = line[toks[i + 2].start() :]
        for node in self.targets(name, lineno, "SCRIPT"):
            script = Script(kind, command, defer_status, defer_time, debug_file, debug_type)
            if kind == "PRE":
                node.pre = script
            elif kind == "POST":
                node.post = script
            else:
                log.warning("%s:%d: SCRIPT HOLD of %s is parsed, never run", self.path, lineno, node.name)

    # ---- checks
    def check_cycles(self) -> None:
        cycle = self.dag.find_cycle()
        if cycle:
            line = self.edges.get((cycle[-1], cycle[0]), 0)
            raise self.err("the DAG has a cycle: " + " -> ".join([*cycle, cycle[0]]), line)


def read_text(path: Path, what: str) -> str:
    """A DAG or submit file as text; DagSyntaxError naming the file and line if unreadable, not UTF-8 or
    holding a NUL byte (a binary file given by mistake)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DagSyntaxError(f"cannot read {what}: {e.strerror}", str(path)) from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DagSyntaxError(
            f"not UTF-8 text (byte 0x{raw[e.start]:02x}): not a {what}?", str(path), line
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        raise DagSyntaxError(f"a NUL byte: not a {what}?", str(path), text.count("\n", 0, nul) + 1)
    return text


def _parse_into(dag: Dag, path: Path, allow_nodes: bool) -> _Parser:
    text = read_text(path, "DAG file")
    p = _Parser(dag, str(path))
    later: list[tuple[int, str, str]] = []
    for lineno, line in _logical_lines(text):
        if not line or line[0] == "#":
            continue
        kw = line.split(None, 1)[0].upper()
        if kw == "JOB" or kw == "FINAL":
            if not allow_nodes:
                raise p.err(f"{kw} lines in a rescue DAG are not supported (only partial ones)", lineno)
            p.node_line(kw, line, lineno)
        elif kw in _PASS2:
            later.append((lineno, kw, line))
        elif kw in UNSUPPORTED:
            raise p.err(f"the {kw} keyword is not supported by iceprod-dag", lineno)
        else:
            raise p.err(f"unknown keyword {line.split(None, 1)[0]!r}", lineno)
    vars_, parent, command = p.vars, p.parent, p.command
    for lineno, kw, line in later:
        if kw == "VARS":
            vars_(line, lineno)
        elif kw == "PARENT":
            parent(line, lineno)
        else:
            command(kw, line, lineno)
    return p


def parse_dag(path: Path | str) -> Dag:
    """Parse a DAG file; raises DagSyntaxError naming file and line for anything DAGMan would refuse."""
    path = Path(path)
    dag = Dag(path=path)
    with gc_paused():
        p = _parse_into(dag, path, allow_nodes=True)
        p.check_cycles()
    log.debug("parsed %s: %d nodes, %d edges", path, len(dag.nodes), len(p.edges))
    return dag


def apply_rescue(dag: Dag, rescue: Path | str) -> Dag:
    """Apply a partial rescue DAG (DONE and RETRY lines...) on top of its parsed DAG, as DAGMan does."""
    rescue = Path(rescue)
    with gc_paused():
        _parse_into(dag, rescue, allow_nodes=False)
    dag.rescue_file = rescue
    return dag


def load_rescue(dag_path: Path | str) -> Dag:
    """Parse a DAG and apply its newest rescue DAG (<dag>.rescueNNN), if any: what a resubmit runs."""
    dag = parse_dag(dag_path)
    found = find_rescue(dag_path)
    if found is not None:
        log.info("applying rescue DAG %s", found)
        apply_rescue(dag, found)
    return dag
