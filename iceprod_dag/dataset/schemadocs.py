"""Generate the configuration reference (docs/config.md) from the schemas: one table row per parameter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from iceprod_dag.dataset.schema import DATASET_SCHEMA, load_schema

#: schemas documented, in order: (file in config/, title of its section)
DOCUMENTED = [
    (DATASET_SCHEMA, "Dataset (`config/examples/*.yaml`)"),
    ("site.schema.yaml", "Site (`config/sites/*.yaml`)"),
]


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow a local $ref, keeping the referring schema's own description and default."""
    ref = schema.get("$ref")
    if not ref:
        return schema
    target: Any = root
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    merged = dict(_resolve(target, root))
    merged.update({k: v for k, v in schema.items() if k != "$ref"})
    return merged


def _type_name(schema: dict[str, Any], root: dict[str, Any]) -> str:
    schema = _resolve(schema, root)
    if "enum" in schema:
        return " \\| ".join(json.dumps(v) for v in schema["enum"])
    if "anyOf" in schema:
        kinds = []
        for option in schema["anyOf"]:
            kinds.append(option.get("format") or _type_name(option, root))
        return " or ".join(dict.fromkeys(kinds))
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array" and "items" in schema:
        return f"list of {_type_name(schema['items'], root)}"
    return str(kind)


def _rows(schema: dict[str, Any], root: dict[str, Any], prefix: str) -> Iterator[tuple[str, str, str, str]]:
    schema = _resolve(schema, root)
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        prop_resolved = _resolve(prop, root)
        path = f"{prefix}{name}"
        default = prop_resolved.get("default")
        default_text = (
            "required" if name in required else ("" if default is None else f"`{json.dumps(default)}`")
        )
        description = " ".join(str(prop_resolved.get("description", "")).split())
        yield path, _type_name(prop, root), default_text, description
        if prop_resolved.get("type") == "object" and "properties" in prop_resolved:
            yield from _rows(prop_resolved, root, path + ".")
        items = prop_resolved.get("items")
        if isinstance(items, dict) and "properties" in _resolve(items, root):
            yield from _rows(items, root, path + "[].")
        extra = prop_resolved.get("additionalProperties")
        if isinstance(extra, dict) and "properties" in _resolve(extra, root):
            yield from _rows(extra, root, path + ".NAME.")


def _section(file_name: str, title: str) -> str:
    root = load_schema(file_name)
    lines = [f"## {title}", "", " ".join(str(root.get("description", "")).split()), ""]
    lines += ["| parameter | type | default | description |", "| --- | --- | --- | --- |"]
    for path, kind, default, description in _rows(root, root, ""):
        cell = description.replace("|", "\\|")
        lines.append(f"| `{path}` | {kind} | {default} | {cell} |")
    return "\n".join(lines) + "\n"


def generate_docs() -> str:
    """The whole configuration reference as Markdown; docs/config.md must equal this (a test checks)."""
    parts = [
        "# Configuration reference",
        "",
        "Generated from the schemas in `config/` by `iceprod-dag config docs`; do not edit by hand.",
        "",
    ]
    for file_name, title in DOCUMENTED:
        try:
            parts.append(_section(file_name, title))
        except FileNotFoundError:
            continue
    parts.append(_limits_section())
    return "\n".join(parts)


def _limits_section() -> str:
    from iceprod_dag.dataset.limits import LIMITS, PREFIX

    lines = [
        "## Input limits",
        "",
        "Bounds on one document, shared by the command line and the web server (`iceprod_dag.dataset.limits`);"
        " a document past one is refused with exit 2 or a 400 naming the file and line. Set each with the"
        " environment variable, or for `iceprod-dag serve` also with the key in its config file (`max_jobs`...).",
        "",
        "| setting | default | bounds |",
        "| --- | --- | --- |",
    ]
    lines += [f"| `{PREFIX}{key}` | {default} | {doc} |" for key, (_attr, default, doc) in LIMITS.items()]
    return "\n".join(lines) + "\n"
