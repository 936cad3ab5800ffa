"""The documented JSON schemas in config/, and a validator that reports every problem with its field path."""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Iterator
from typing import Any

import jsonschema
import yaml

from iceprod_dag.common import units

DATASET_SCHEMA = "dataset.schema.yaml"

FORMAT_CHECKER = jsonschema.FormatChecker()


@FORMAT_CHECKER.checks("size", raises=ValueError)
def _is_size(value: object) -> bool:
    if isinstance(value, str):
        units.parse_size_mb(value)
    return True


@FORMAT_CHECKER.checks("duration", raises=ValueError)
def _is_duration(value: object) -> bool:
    if isinstance(value, str):
        units.parse_duration_s(value)
    return True


@functools.cache
def load_schema(name: str = DATASET_SCHEMA) -> dict[str, Any]:
    """A schema shipped in the iceprod_dag.config package (the repository's config/ folder)."""
    text = importlib.resources.files("iceprod_dag.config").joinpath(name).read_text(encoding="utf-8")
    schema: dict[str, Any] = yaml.safe_load(text)
    return schema


def default(definition: str, field: str, name: str = DATASET_SCHEMA) -> Any:
    """The documented default of ``field`` in the schema's ``$defs/definition``: the one place it is written."""
    return load_schema(name)["$defs"][definition]["properties"][field]["default"]


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = load_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=FORMAT_CHECKER)


def _message(error: jsonschema.ValidationError) -> str:
    """A one-line message in our words for a jsonschema error."""
    if error.validator == "anyOf":
        # a size or duration given as a string: the format checker's message says what was expected
        for sub in error.context or ():
            if sub.validator == "format" and sub.cause is not None:
                return str(sub.cause)
        best = jsonschema.exceptions.best_match(error.context or [])
        if best is not None:
            return _message(best)
    if error.validator == "format" and error.cause is not None:
        return str(error.cause)
    if error.validator == "type":
        expected: Any = error.validator_value  # the schema's "type": a name or a list of names
        names = expected if isinstance(expected, list) else [expected]
        return f"expected {' or '.join(names)}, got {type(error.instance).__name__} {error.instance!r}"
    if error.validator == "enum":
        values: Any = error.validator_value  # the schema's "enum" list
        choices = ", ".join(repr(c) for c in values)
        return f"expected one of {choices}, got {error.instance!r}"
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    if error.validator == "pattern":
        return f"{error.instance!r} does not match the pattern {error.validator_value!r}"
    return error.message


def iter_problems(data: Any, name: str = DATASET_SCHEMA) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Yield (field path, message) for every schema violation; unknown fields get their own path each."""
    for error in _validator(name).iter_errors(data):
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            schema: Any = error.schema  # the object schema that failed: a mapping here
            allowed = set((schema.get("properties") or {}).keys())
            for key in error.instance:
                if key not in allowed:
                    hint = _closest(str(key), allowed)
                    yield (
                        (*path, key),
                        f"unknown field {key!r}" + (f" (did you mean {hint!r}?)" if hint else ""),
                    )
            continue
        if error.validator == "propertyNames":
            yield (
                path,
                f"invalid name {error.instance!r}: {_message(error.context[0]) if error.context else ''}",
            )
            continue
        yield path, _message(error)


def _closest(word: str, choices: set[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return match[0] if match else None


def format_path(path: tuple[str | int, ...]) -> str:
    """("tasks", 1, "requirements") -> "tasks[1].requirements"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"
