"""Load YAML while remembering the line of every value, so errors can name file, line and field; and refuse,
naming the place, what no dataset needs: other encodings than UTF-8, deep nesting, alias bombs, huge files."""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from iceprod_dag.common.exceptions import ConfigError
from iceprod_dag.dataset.limits import InputLimits, from_settings

PathKey = tuple[str | int, ...]


class LineMap:
    """Maps a field path like ("tasks", 1, "requirements", "memory") to its 1-based line in the file."""

    def __init__(self) -> None:
        self._lines: dict[PathKey, int] = {}

    def add(self, path: PathKey, line: int) -> None:
        self._lines[path] = line

    def known(self) -> bool:
        """Whether any line is recorded (data parsed by this module, not given as plain JSON)."""
        return bool(self._lines)

    def line(self, path: Iterable[str | int]) -> int | None:
        """The line of the path, or of its nearest ancestor that has one."""
        key = tuple(path)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return self._lines.get((), None)


def decode_text(raw: bytes, filename: str) -> str:
    """UTF-8 text of a document (a UTF-8 BOM is allowed); anything else is a ConfigError naming file and line."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise ConfigError(f"{filename}:1: the file is UTF-16 or UTF-32; save it as UTF-8", path=filename)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{filename}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            path=filename,
        ) from None


def read_document(path: str | Path, limits: InputLimits | None = None) -> str:
    """The text of a document file, refused (ConfigError naming the file) when unreadable, too big or not
    UTF-8; the size is checked before the file is read."""
    limits = limits or from_settings()
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(limits.max_document_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", path=str(path)) from exc
    check_size(len(raw), str(path), limits)
    return decode_text(raw, str(path))


def check_size(size: int, filename: str, limits: InputLimits) -> None:
    if size > limits.max_document_bytes:
        raise ConfigError(
            f"{filename}: more than {limits.max_document_bytes} bytes"
            f" (the limit ICEPROD_DAG_MAX_DOCUMENT_BYTES)",
            path=filename,
        )


def _check_shape(text: str, limits: InputLimits) -> None:
    """Walk the YAML events once (no recursion, nothing built) and refuse, naming the line, a document
    nested too deep, an alias to a node that contains it, or one whose aliases expand past the limit."""
    stack: list[list[Any]] = []  # [anchor, expanded values inside] of each open list or map
    sizes: dict[str, int] = {}  # expanded values of each finished anchored node
    total = 0  # expanded values of the whole document so far
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark else 0
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= limits.max_nesting:
                raise ConfigError(
                    f"line {line}: lists and maps nested more than {limits.max_nesting} deep"
                    f" (the limit ICEPROD_DAG_MAX_NESTING)"
                )
            stack.append([event.anchor, 0])
            size = 1
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, inside = stack.pop()
            if anchor is not None:
                sizes[anchor] = inside + 1
            if stack:
                stack[-1][1] += inside + 1
            continue
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes:
                raise ConfigError(
                    f"line {line}: alias *{event.anchor} is not defined before it or refers to a node that contains it"
                )
            size = sizes[event.anchor]
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        else:
            continue
        if stack and not isinstance(event, yaml.CollectionStartEvent):
            stack[-1][1] += size
        total += size
        if total > limits.max_yaml_values:
            raise ConfigError(
                f"line {line}: more than {limits.max_yaml_values} values once aliases are expanded"
                f" (the limit ICEPROD_DAG_MAX_YAML_VALUES)"
            )


def check_data(data: Any, source: str, limits: InputLimits) -> None:
    """The nesting and size limits for data that came as JSON rather than through this loader."""
    todo: list[tuple[Any, int]] = [(data, 0)]
    count = 0
    while todo:
        value, depth = todo.pop()
        count += 1
        if count > limits.max_yaml_values:
            raise ConfigError(
                f"{source}: more than {limits.max_yaml_values} values (ICEPROD_DAG_MAX_YAML_VALUES)"
            )
        if isinstance(value, (dict, list)):
            if depth >= limits.max_nesting:
                raise ConfigError(
                    f"{source}: lists and maps nested more than {limits.max_nesting} deep (ICEPROD_DAG_MAX_NESTING)"
                )
            items = value.values() if isinstance(value, dict) else value
            todo.extend((item, depth + 1) for item in items)


def _construct(node: yaml.Node, path: PathKey, lines: LineMap, loader: yaml.SafeLoader) -> Any:
    lines.add(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "map"
                raise ConfigError(f"line {key_node.start_mark.line + 1}: a {kind} cannot be a key")
            key = _scalar(key_node, loader)
            if key in result:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            # a key's own line is where errors about the key (unknown field) point
            lines.add((*path, key), key_node.start_mark.line + 1)
            result[key] = _construct(value_node, (*path, key), lines, loader)
            lines.add((*path, key), key_node.start_mark.line + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), lines, loader) for i, item in enumerate(node.value)]
    return _scalar(node, loader)


def _scalar(node: yaml.Node, loader: yaml.SafeLoader) -> Any:
    try:
        return loader.construct_object(node, deep=True)
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        value = str(node.value)
        shown = value if len(value) <= 40 else f"{value[:20]}...({len(value)} characters)"
        reason = str(exc).split(";")[0]
        raise ConfigError(f"line {node.start_mark.line + 1}: cannot read {shown}: {reason}") from None


def load_yaml_with_lines(
    text: str, filename: str = "<string>", limits: InputLimits | None = None
) -> tuple[Any, LineMap]:
    """Parse YAML text into plain data plus a LineMap; a syntax error or a document past the input limits
    (iceprod_dag.dataset.limits) names file and line."""
    limits = limits or from_settings()
    check_size(len(text.encode("utf-8", errors="surrogatepass")), filename, limits)
    lines = LineMap()
    loader: yaml.SafeLoader | None = None
    try:
        _check_shape(text, limits)
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None, lines
        return _construct(node, (), lines, loader), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{filename}:{mark.line + 1}" if mark else filename
        raise ConfigError(f"{where}: invalid YAML: {exc.problem or exc}", path=filename) from exc
    except yaml.reader.ReaderError as exc:  # a NUL byte or another character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(
            f"{filename}:{line}: invalid YAML: character #x{exc.character:04x} is not allowed", path=filename
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}: invalid YAML: {exc}", path=filename) from exc
    except ConfigError as exc:
        raise ConfigError(
            [f"{filename}:{p.removeprefix('line ')}" for p in exc.problems], path=filename
        ) from exc
    finally:
        if loader is not None:
            loader.dispose()
