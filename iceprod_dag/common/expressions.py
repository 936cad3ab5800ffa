"""IceProd's expression language, resolved per job: ``$(job)``, ``$(NAME)``, ``$eval(...)`` and more.

Standard library only and Python >= 3.8: the pilot imports this module on workers.

Grammar (the same text IceProd accepts)::

    $(NAME)              a built-in (job, dataset, dataset_id, dataset_name, task, iter, jobs_submitted)
                         or a parameter; built-ins win, so a parameter cannot shadow $(job)
    $steering(NAME)      same as $(NAME)
    $eval(ARITHMETIC)    + - * / // % ** parentheses, unary +/-, ints and floats; parsed with `ast` and a
                         whitelist of node types, never Python eval. Python's number rules, like IceProd's:
                         5//2 is 2, 4/2 is 2.0
    $sprintf('FMT', A..) Python %-formatting; numeric strings become numbers when the format needs them
    $choice(A, B, ...)   IceProd picks at random; we pick by a stable hash of (dataset id, job, the call's
                         text), so reruns and every task of one job see the same choice
    $sum/$min/$max/$len(LIST)   a reduction of a JSON list
    $system(N) $args(N) $options(N) $metadata(N) $environ(N)
                         look N up in ``Context.extra["system"|"args"|"options"|"metadata"|"environ"]``

NAME may itself hold expressions (``$steering(IceModelTarball::$(iter))``). Inner expressions are resolved
first. A string that is exactly one expression resolves to the raw value (``"$(job)"`` -> ``7``); otherwise
values are substituted as text. ``\\$`` is a literal ``$``; a ``$`` not followed by ``(`` or ``word(`` is
literal too, so shell text like ``$HOME`` passes through.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import math
import operator
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple, Union

from iceprod_dag.common.exceptions import ExpressionError

#: names every expression can see without a parameter of that name
BUILTIN_NAMES = frozenset({"job", "dataset", "dataset_id", "dataset_name", "task", "iter", "jobs_submitted"})

#: names a parameter may have; IceProd's `CORSIKA::run` style included (kept in step with the schema)
PARAMETER_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_:.-]*$"

_LOOKUP_FUNCTIONS = {"system", "args", "options", "metadata", "environ"}
FUNCTIONS = frozenset(
    {"steering", "eval", "sprintf", "choice", "sum", "min", "max", "len"} | _LOOKUP_FUNCTIONS
)

_FUNC_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\(")
_MAX_POW_BITS = 4096  # bigger results are refused: $eval(9**9**9) must not hang a worker
_MAX_EVAL_CHARS = 2000  # longer $eval bodies are refused: 3,000 terms would exhaust Python's recursion
_MAX_FORMAT_WIDTH = 1000  # $sprintf('%999999999d') must not build a gigabyte string


class Context:
    """What an expression can see for one job of one task; treat it as immutable (use ``replace``)."""

    def __init__(
        self,
        job: int = 0,
        dataset_id: int = 0,
        parameters: Optional[Mapping[str, Any]] = None,
        task: str = "",
        iteration: int = 0,
        jobs: int = 1,
        dataset_name: str = "",
        extra: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.job = job
        self.dataset_id = dataset_id
        self.parameters = dict(parameters or {})
        self.task = task
        self.iteration = iteration
        self.jobs = jobs
        self.dataset_name = dataset_name
        self.extra = dict(extra or {})
        self._cache: Dict[str, Any] = {}  # resolved parameters: parameters reuse each other a lot

    def replace(self, **changes: Any) -> Context:
        """A copy with some fields changed (e.g. ``ctx.replace(iteration=2)``), with a fresh cache."""
        names = ("job", "dataset_id", "parameters", "task", "iteration", "jobs", "dataset_name", "extra")
        fields = {name: getattr(self, name) for name in names}
        fields.update(changes)
        return Context(**fields)

    def builtin(self, name: str) -> Any:
        return {
            "job": self.job,
            "dataset": self.dataset_id,
            "dataset_id": self.dataset_id,
            "dataset_name": self.dataset_name,
            "task": self.task,
            "iter": self.iteration,
            "jobs_submitted": self.jobs,
        }[name]


# --- parsing: text -> a tree of Text / Ref / Call nodes -------------------------------------------------


class _Text:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _Call:
    """``$func(args)``; func is "" for ``$(name)``. args: one list of nodes per comma-separated argument."""

    __slots__ = ("func", "args", "source")

    def __init__(self, func: str, args: List[List[Any]], source: str) -> None:
        self.func = func
        self.args = args
        self.source = source

    def body(self) -> List[Any]:
        """All arguments joined back with their commas (for functions taking one argument)."""
        nodes: List[Any] = []
        for i, arg in enumerate(self.args):
            if i:
                nodes.append(_Text(","))
            nodes.extend(arg)
        return nodes


_Node = Union[_Text, _Call]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> ExpressionError:
        return ExpressionError(f"{message} in {self.text!r}")

    def nodes(self, inside: bool = False, start: int = 0) -> List[List[_Node]]:
        """Text with expressions, split at top-level commas when ``inside`` a call's parentheses.

        Outside expressions parentheses and quotes are plain text (shell commands keep theirs); inside,
        parentheses must balance and quotes protect parentheses and commas.
        """
        text = self.text
        args: List[List[_Node]] = [[]]
        buf: List[str] = []
        depth = 0
        quote = ""
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == "\\" and text.startswith("\\$", self.pos):
                buf.append("$")
                self.pos += 2
                continue
            if ch == "$":
                call = self.call()
                if call is not None:
                    _flush(buf, args[-1])
                    args[-1].append(call)
                    continue
            self.pos += 1
            if inside:
                if quote:
                    quote = "" if ch == quote else quote
                elif ch in "'\"":
                    quote = ch
                elif ch == "(":
                    depth += 1
                elif ch == ")":
                    if depth == 0:
                        _flush(buf, args[-1])
                        return args
                    depth -= 1
                elif ch == "," and depth == 0:
                    _flush(buf, args[-1])
                    args.append([])
                    continue
            buf.append(ch)
        if inside:
            what = "quote" if quote else "parenthesis"
            raise self.error(f"unclosed {what} in {text[start : start + 40]!r}... (position {start})")
        _flush(buf, args[-1])
        return args

    def call(self) -> Optional[_Call]:
        """At a ``$``: parse ``$(...)`` or ``$func(...)``; None when the ``$`` is plain text."""
        text, start = self.text, self.pos
        if text.startswith("$(", start):
            func, self.pos = "", start + 2
        else:
            match = _FUNC_RE.match(text, start + 1)
            if not match:
                return None
            func = match.group(1)
            if func not in FUNCTIONS:
                raise self.error(f"unknown function ${func}(...) (known: {', '.join(sorted(FUNCTIONS))})")
            self.pos = match.end()
        args = self.nodes(inside=True, start=start)
        return _Call(func, args, text[start : self.pos])


def _flush(buf: List[str], nodes: List[Any]) -> None:
    if buf:
        nodes.append(_Text("".join(buf)))
        del buf[:]


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Tuple[_Node, ...]:
    return tuple(_Parser(text).nodes()[0])


# --- evaluation ------------------------------------------------------------------------------------------


class _Resolver:
    """Resolves one top-level string; ``chain`` is the list of parameters being resolved (cycle check)."""

    def __init__(self, ctx: Context, text: str, chain: Tuple[str, ...]) -> None:
        self.ctx = ctx
        self.text = text
        self.chain = chain

    def error(self, message: str) -> ExpressionError:
        where = f" (in parameter {self.chain[-1]!r})" if self.chain else ""
        return ExpressionError(f"{message} in {self.text!r}{where}")

    def nodes(self, nodes: List[_Node]) -> Any:
        """One expression alone gives its raw value; anything else is text."""
        if len(nodes) == 1 and isinstance(nodes[0], _Call):
            return self.call(nodes[0])
        return "".join(self.text_of(n) for n in nodes)

    def text_of(self, node: _Node) -> str:
        if isinstance(node, _Text):
            return node.text
        return to_text(self.call(node), node.source)

    def call(self, call: _Call) -> Any:
        func = call.func
        if func in ("", "steering"):
            name = to_text(self.nodes(call.body()), call.source).strip()
            if not name:
                raise self.error(f"empty name in {call.source!r}")
            return self.lookup(name)
        if func == "eval":
            return self.eval(to_text(self.nodes(call.body()), call.source), call.source)
        if func == "sprintf":
            return self.sprintf(call)
        if func == "choice":
            return self.choice(call)
        if func in ("sum", "min", "max", "len"):
            return self.reduce(func, self.nodes(call.body()), call.source)
        return self.extra(func, to_text(self.nodes(call.body()), call.source).strip(), call.source)

    def lookup(self, name: str) -> Any:
        if name in BUILTIN_NAMES:
            return self.ctx.builtin(name)
        params = self.ctx.parameters
        if name not in params:
            raise self.error(f"unknown name {name!r}")
        return self.parameter(name, params[name])

    def parameter(self, name: str, value: Any) -> Any:
        if name in self.chain:
            cycle = " -> ".join(self.chain[self.chain.index(name) :] + (name,))
            raise ExpressionError(f"parameters refer to each other in a cycle: {cycle}")
        cache = self.ctx._cache
        if name not in cache:
            cache[name] = _resolve(value, self.ctx, self.chain + (name,))
        return cache[name]

    def extra(self, func: str, name: str, source: str) -> Any:
        space = "args" if func == "options" else func
        table = self.ctx.extra.get(space) or {}
        if name not in table:
            raise self.error(f"${func}({name}) is not available here (no {space!r} value named {name!r})")
        return self.parameter(f"{space}:{name}", table[name])

    def eval(self, body: str, source: str) -> Union[int, float]:
        try:
            return _arith(_parse_arith(body))
        except ExpressionError as exc:
            raise self.error(f"{source!r}: {exc}") from None
        except (ArithmeticError, ValueError, RecursionError) as exc:
            raise self.error(f"{source!r}: {_short(body)!r} failed: {exc}") from None

    def arg_values(self, call: _Call) -> List[Any]:
        """Arguments of $sprintf/$choice: resolved, stripped, one level of quotes removed."""
        values = []
        for arg in call.args:
            nodes = _strip_nodes(arg)
            value = self.nodes(nodes)
            if isinstance(value, str):
                value = _unquote(value.strip())
            values.append(value)
        return values

    def sprintf(self, call: _Call) -> str:
        values = self.arg_values(call)
        fmt, args = str(values[0]), values[1:]
        try:
            specs = _format_specs(fmt)
        except ExpressionError as exc:
            raise self.error(f"{call.source!r}: {exc}") from None
        conversions = [s[-1] for s in specs if s != "%%"]
        if len(conversions) != len(args):
            raise self.error(
                f"{call.source!r}: format {fmt!r} takes {len(conversions)} values, got {len(args)}"
            )
        try:
            cast = tuple(_cast(conv, arg) for conv, arg in zip(conversions, args))  # noqa: B905 (3.8)
            return fmt % cast
        except (TypeError, ValueError) as exc:
            raise self.error(f"{call.source!r}: {exc}") from None

    def choice(self, call: _Call) -> Any:
        values = self.arg_values(call)
        if not values or values == [""]:
            raise self.error(f"{call.source!r}: nothing to choose from")
        key = f"{self.ctx.dataset_id}:{self.ctx.job}:{call.source}".encode()
        index = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % len(values)
        return values[index]

    def reduce(self, func: str, value: Any, source: str) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value.replace("'", '"'))
            except ValueError:
                raise self.error(f"{source!r}: {value!r} is not a list") from None
        if not isinstance(value, list):
            raise self.error(f"{source!r}: {value!r} is not a list")
        reducers: Dict[str, Callable[[Any], Any]] = {"sum": sum, "min": min, "max": max, "len": len}
        reducer = reducers[func]
        try:
            return reducer(value)
        except (TypeError, ValueError) as exc:
            raise self.error(f"{source!r}: {exc}") from None


_BINOPS: Dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARYOPS: Dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _arith(node: ast.AST, compute: bool = True) -> Union[int, float]:
    """Evaluate a whitelisted arithmetic tree; anything else (names, calls, strings...) is refused.
    With compute=False only check it: a syntax check must not hang on 9**9**9."""
    # bool is an int subclass but not a number here
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _arith(node.left, compute), _arith(node.right, compute)
        if not compute:
            return 0
        if isinstance(node.op, ast.Pow) and _pow_too_big(left, right):
            raise ExpressionError(f"{_short(str(left))}**{_short(str(right))} is too large")
        result = _BINOPS[type(node.op)](left, right)
        if isinstance(result, int) and result.bit_length() > _MAX_POW_BITS:
            raise ExpressionError(f"a result of more than {_MAX_POW_BITS} bits is too large")
        return result
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARYOPS:
        return _UNARYOPS[type(node.op)](_arith(node.operand, compute))
    raise ExpressionError(f"only numbers and + - * / // % ** are allowed, not {type(node).__name__}")


def _pow_too_big(base: Union[int, float], exp: Union[int, float]) -> bool:
    if isinstance(base, float) or isinstance(exp, float) or exp <= 0 or abs(base) <= 1:
        return False
    return exp * math.log2(abs(base)) > _MAX_POW_BITS


_SPEC_RE = re.compile(r"%%|%(?:\([^)]*\))?[#0\- +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?[diouxXeEfFgGcrsa]")
_WIDTH_RE = re.compile(r"(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[diouxXeEfFgGcrsa]$")


def _format_specs(fmt: str) -> List[str]:
    """The % conversions of a $sprintf format; widths and precisions above _MAX_FORMAT_WIDTH (or ``*``)
    are refused."""
    specs: List[str] = _SPEC_RE.findall(fmt)
    for spec in specs:
        match = _WIDTH_RE.search(spec)
        for part in match.groups() if match else ():
            if part == "*" or (part and len(part) > 4) or (part and int(part) > _MAX_FORMAT_WIDTH):
                raise ExpressionError(
                    f"format {_short(fmt)!r}: widths and precisions are numbers up to {_MAX_FORMAT_WIDTH}"
                )
    return specs


def _parse_arith(body: str) -> ast.AST:
    """The expression tree of an $eval body (not yet checked to be arithmetic); ExpressionError when it
    cannot be parsed or is longer than _MAX_EVAL_CHARS."""
    body = body.strip()
    if len(body) > _MAX_EVAL_CHARS:
        raise ExpressionError(f"an $eval body may have at most {_MAX_EVAL_CHARS} characters, got {len(body)}")
    try:
        return ast.parse(body, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        detail = exc.msg if isinstance(exc, SyntaxError) else type(exc).__name__
        raise ExpressionError(f"{_short(body)!r} is not arithmetic ({detail})") from None


def _short(text: str, keep: int = 60) -> str:
    """Long inputs shortened in messages (an error about a 4,000-digit number need not repeat it)."""
    return text if len(text) <= keep else f"{text[: keep // 2]}...{text[-keep // 2 :]} ({len(text)} chars)"


def _cast(conversion: str, value: Any) -> Any:
    """Make a value fit its % conversion, like IceProd: "42" for %d becomes 42."""
    if conversion in "diouxXc" and conversion != "c" or conversion == "c" and not isinstance(value, str):
        return _number(value, integer=True)
    if conversion in "eEfFgG":
        return _number(value, integer=False)
    if conversion in "sa":
        return to_text(value, "")
    return value


def _number(value: Any, integer: bool) -> Union[int, float]:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return int(value) if integer and isinstance(value, float) else value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    return int(number) if integer else number


def _strip_nodes(nodes: List[_Node]) -> List[_Node]:
    """Drop whitespace-only text around an argument so ``$sprintf('%d', $(job))`` keeps $(job) raw."""
    out = list(nodes)
    while out and isinstance(out[0], _Text) and not out[0].text.strip():
        out.pop(0)
    while out and isinstance(out[-1], _Text) and not out[-1].text.strip():
        out.pop()
    return out


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def to_text(value: Any, source: str) -> str:
    """How a value reads when substituted into text (IceProd's rules: str(), JSON for lists and dicts)."""
    if isinstance(value, str):
        return value
    if value is None:
        raise ExpressionError(f"{source!r} has no value (null)")
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


# --- public API -----------------------------------------------------------------------------------------


def _resolve(value: Any, ctx: Context, chain: Tuple[str, ...]) -> Any:
    if isinstance(value, str):
        if "$" not in value:
            return value
        try:
            return _Resolver(ctx, value, chain).nodes(list(_parse(value)))
        except RecursionError:
            raise ExpressionError(f"{_short(value)!r}: expressions nested too deep") from None
    if isinstance(value, (list, tuple)):
        return [_resolve(v, ctx, chain) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, ctx, chain) for k, v in value.items()}
    return value


def resolve(value: Any, ctx: Context) -> Any:
    """Resolve the expressions of a value for one job: strings, and lists and dicts recursively.

    Raises ExpressionError naming the unknown name, the bad expression or the parameter cycle.
    """
    return _resolve(value, ctx, ())


def references(value: str) -> Set[str]:
    """Names of parameters a string refers to (built-ins left out). Names computed from expressions
    (``$(IceModelTarball::$(iter))``) cannot be known before a job runs and are left out too."""
    found: Set[str] = set()
    if "$" in value:
        _collect(list(_parse(value)), found)
    return found


def _collect(nodes: List[_Node], found: Set[str]) -> None:
    for node in nodes:
        if not isinstance(node, _Call):
            continue
        for arg in node.args:
            _collect(arg, found)
        if node.func in ("", "steering"):
            body = node.body()
            if all(isinstance(n, _Text) for n in body):
                name = "".join(n.text for n in body).strip()
                if name and name not in BUILTIN_NAMES:
                    found.add(name)


def check_syntax(text: str) -> None:
    """Raise ExpressionError for malformed expressions: unclosed parentheses or quotes, unknown
    ``$function(...)``, ``$eval`` bodies that are not arithmetic (inner expressions count as numbers)."""
    if "$" in text:
        try:
            _check(list(_parse(text)), text)
        except RecursionError:
            raise ExpressionError(f"{_short(text)!r}: expressions nested too deep") from None


def _check(nodes: List[_Node], text: str) -> None:
    for node in nodes:
        if not isinstance(node, _Call):
            continue
        for arg in node.args:
            _check(arg, text)
        if node.func == "sprintf" and node.args and all(isinstance(n, _Text) for n in node.args[0]):
            _format_specs("".join(n.text for n in node.args[0] if isinstance(n, _Text)))
        if node.func == "eval":
            body = "".join(n.text if isinstance(n, _Text) else "1" for n in node.body())
            try:
                _arith(_parse_arith(body), compute=False)
            except ExpressionError as exc:
                raise ExpressionError(f"{_short(node.source)!r}: {exc} in {_short(text)!r}") from None
