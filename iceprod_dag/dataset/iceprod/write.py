"""Write a converted IceProd dataset as YAML, with what could not be converted listed in a header comment."""

from __future__ import annotations

from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the class runner's code) as readable literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dataset_yaml(dataset: dict[str, Any], notes: list[str], source: str) -> str:
    """The dataset as YAML text; deterministic (same input, same bytes)."""
    header = [f"# Converted from the IceProd dataset config {source} by `iceprod-dag import-iceprod`."]
    if notes:
        header.append("# Not converted (check these by hand):")
        header += [f"#   {note}" for note in notes]
    body = yaml.dump(dataset, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)
    return "\n".join(header) + "\n" + body
