"""Load YAML while remembering the line of every value, so errors can name file, line and field."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from iceprod_dag.common.exceptions import ConfigError

PathKey = tuple[str | int, ...]


class LineMap:
    """Maps a field path like ("tasks", 1, "requirements", "memory") to its 1-based line in the file."""

    def __init__(self) -> None:
        self._lines: dict[PathKey, int] = {}

    def add(self, path: PathKey, line: int) -> None:
        self._lines[path] = line

    def line(self, path: Iterable[str | int]) -> int | None:
        """The line of the path, or of its nearest ancestor that has one."""
        key = tuple(path)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return self._lines.get((), None)


def _construct(node: yaml.Node, path: PathKey, lines: LineMap, loader: yaml.SafeLoader) -> Any:
    lines.add(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in result:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            # a key's own line is where errors about the key (unknown field) point
            lines.add((*path, key), key_node.start_mark.line + 1)
            result[key] = _construct(value_node, (*path, key), lines, loader)
            lines.add((*path, key), key_node.start_mark.line + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), lines, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml_with_lines(text: str, filename: str = "<string>") -> tuple[Any, LineMap]:
    """Parse YAML text into plain data plus a LineMap; a syntax error names file and line."""
    loader = yaml.SafeLoader(text)
    lines = LineMap()
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        return _construct(node, (), lines, loader), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{filename}:{mark.line + 1}" if mark else filename
        raise ConfigError(f"{where}: invalid YAML: {exc.problem or exc}", path=filename) from exc
    except ConfigError as exc:
        raise ConfigError(
            [f"{filename}:{p.removeprefix('line ')}" for p in exc.problems], path=filename
        ) from exc
    finally:
        loader.dispose()
